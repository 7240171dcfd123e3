#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
///
/// Element types: `<f8`, `<f4` and the integers `<i1 … <i8`, `<u1 … <u8`, `|b1`, all converted to
/// `Double`. Only little-endian data is read; a big-endian file (`>f8`) is refused by name.
/// C order and Fortran order (`fortran_order: True`) are both read, the latter transposed into
/// row-major order. The file is streamed a chunk at a time.
///
/// A dataset file is 2-D, n × (d + 1), with the target one of its columns (the last by default):
///
/// ```swift
/// let data = try NPYReader.readDataset(path: "train.npy", target: nil)
/// // or features and targets apart:
/// let data = try NPYReader.readDataset(features: "X.npy", targets: "y.npy")
/// ```
///
/// Errors name the file and the byte offset:
/// `X.npy:byte 128: the data is truncated: shape (100, 5) of '<f8' needs 4000 bytes, found 3992`.
public enum NPYReader {
    /// Reads an array of any shape; `values` are in row-major (C) order whatever the file's order.
    public static func readArray(path: String) throws -> (shape: [Int], values: [Double]) {
        try readArray(source: ReaderFile(path: path), name: path)
    }

    /// Reads an array from the bytes of an `.npy` file; `source` is the name used in messages.
    public static func readArray(bytes: [UInt8], source: String = "memory") throws -> (shape: [Int], values: [Double]) {
        try readArray(source: MemoryBytes(bytes), name: source)
    }

    /// Reads a 2-D array, n × (d + 1), as a dataset.
    ///
    /// - Parameter target: the target column as a 0-based index (an `.npy` file has no column
    ///   names); `nil` means the last column.
    public static func readDataset(path: String, target: String?) throws -> Dataset<Double> {
        try readDataset(source: ReaderFile(path: path), name: path, target: target)
    }

    /// Reads a dataset from the bytes of an `.npy` file; `source` is the name used in messages.
    public static func readDataset(bytes: [UInt8], source: String = "memory", target: String? = nil) throws -> Dataset<Double> {
        try readDataset(source: MemoryBytes(bytes), name: source, target: target)
    }

    /// Reads features (2-D, n × d) and targets (1-D of n, or n × 1) from two files.
    public static func readDataset(features: String, targets: String) throws -> Dataset<Double> {
        let file = try ReaderFile(path: features)
        let header = try NPYHeader.read(from: file, name: features)
        try checkSize(of: header, in: file, name: features)
        guard header.shape.count == 2 else {
            throw DataError.malformed(file: features, location: "byte \(header.shapeOffset)",
                                      message: "expected a 2-D array of features, found shape \(header.shapeText)")
        }
        let x = try readMatrix(source: file, header: header, name: features, targetColumn: nil).x
        let (shape, y) = try readArray(path: targets)
        guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
            throw DataError.invalid("\(targets): expected a 1-D array of targets (or n × 1), found shape \(NPYHeader.text(of: shape))")
        }
        guard y.count == x.rows else {
            throw DataError.invalid("\(features) has \(x.rows) rows but \(targets) has \(y.count) targets")
        }
        return Dataset(x: x, y: y, featureNames: nil, source: features)
    }

    // MARK: Implementation

    static func readArray(source: some ChunkSource, name: String) throws -> (shape: [Int], values: [Double]) {
        let header = try NPYHeader.read(from: source, name: name)
        try checkSize(of: header, in: source, name: name)
        var values = [Double](repeating: 0, count: header.count)
        var order = ElementOrder(shape: header.shape, fortran: header.fortranOrder)
        try values.withUnsafeMutableBufferPointer { out in
            try decode(source: source, header: header, name: name) { chunk in
                for v in chunk {
                    out[order.rowMajorIndex] = v
                    order.advance()
                }
            }
        }
        return (header.shape, values)
    }

    static func readDataset(source: some ChunkSource, name: String, target: String?) throws -> Dataset<Double> {
        let header = try NPYHeader.read(from: source, name: name)
        try checkSize(of: header, in: source, name: name)
        guard header.shape.count == 2 else {
            throw DataError.malformed(
                file: name, location: "byte \(header.shapeOffset)",
                message: "expected a 2-D array (rows × columns, the target one of the columns), found shape \(header.shapeText)")
        }
        let columns = header.shape[1]
        guard columns >= 2 else {
            throw DataError.malformed(
                file: name, location: "byte \(header.shapeOffset)",
                message: "expected at least 2 columns (features and a target), found shape \(header.shapeText)")
        }
        var targetColumn = columns - 1
        if let target {
            guard let index = Int(target.trimmingSpaces()) else {
                throw DataError.invalid("\(name): target '\(target)' is not a column index; an .npy file has no column names")
            }
            guard index >= 0 && index < columns else {
                throw DataError.invalid(
                    "\(name): target column \(index) is out of range: the array has \(columns) columns (0…\(columns - 1))")
            }
            targetColumn = index
        }
        let (x, y) = try readMatrix(source: source, header: header, name: name, targetColumn: targetColumn)
        return Dataset(x: x, y: y, featureNames: nil, source: name)
    }

    /// Streams a 2-D array into X, taking `targetColumn` (if any) out into y.
    static func readMatrix(
        source: some ChunkSource, header: NPYHeader, name: String, targetColumn: Int?
    ) throws -> (x: Matrix<Double>, y: [Double]) {
        let n = header.shape[0], m = header.shape[1]
        let t = targetColumn ?? -1
        let d = targetColumn == nil ? m : m - 1
        var x = Matrix<Double>(rows: n, columns: d)
        var y = [Double](repeating: 0, count: targetColumn == nil ? 0 : n)
        var i = 0, j = 0
        let fortran = header.fortranOrder
        try x.withUnsafeMutableBufferPointer { xs in
            try y.withUnsafeMutableBufferPointer { ys in
                try decode(source: source, header: header, name: name) { chunk in
                    for v in chunk {
                        if j == t { ys[i] = v } else { xs[i * d + (j < t || t < 0 ? j : j - 1)] = v }
                        if fortran {
                            i += 1
                            if i == n { i = 0; j += 1 }
                        } else {
                            j += 1
                            if j == m { j = 0; i += 1 }
                        }
                    }
                }
            }
        }
        return (x, y)
    }

    /// Before anything is allocated: the header's shape must describe exactly the bytes the file
    /// holds (a header claiming (50, 40000000000) in a 1.7 KB file is an error here, not an abort
    /// in the allocator), and the array as `Double` must fit in memory.
    static func checkSize(of header: NPYHeader, in source: some ChunkSource, name: String) throws {
        let totalBytes = header.count * header.element.size   // no overflow: NPYHeader.read checked
        if let fileSize = source.knownSize {
            let available = fileSize - header.dataOffset
            if available < totalBytes {
                let needs = totalBytes >= 1 << 20 ? "\(totalBytes) bytes (\(MemoryBudget.format(totalBytes)))" : "\(totalBytes) bytes"
                throw DataError.malformed(
                    file: name, location: "byte \(header.dataOffset)",
                    message: "the data is truncated: shape \(header.shapeText) of '\(header.descr)' needs \(needs), found \(available)")
            }
            if available > totalBytes {
                throw DataError.malformed(
                    file: name, location: "byte \(header.dataOffset + totalBytes)",
                    message: "\(available - totalBytes) bytes follow the data that shape \(header.shapeText) of '\(header.descr)' describes; expected the end of the file")
            }
        }
        try MemoryBudget.check(elements: header.count, bytesPerElement: MemoryLayout<Double>.stride,
                               what: "\(name): shape \(header.shapeText) as float64")
    }

    /// Reads the data after the header a chunk at a time, converts it to `Double` and hands each
    /// chunk to `body` in file order. Refuses NaN/Inf, short data and trailing bytes.
    static func decode(
        source: some ChunkSource, header: NPYHeader, name: String,
        _ body: (UnsafeBufferPointer<Double>) throws -> Void
    ) throws {
        let size = header.element.size
        let totalBytes = header.count * size
        try checkSize(of: header, in: source, name: name)
        let chunkElements = max(1, (1 << 20) / size)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkElements * size, alignment: 16)
        defer { raw.deallocate() }
        let converted = UnsafeMutableBufferPointer<Double>.allocate(capacity: chunkElements)
        defer { converted.deallocate() }

        var done = 0   // elements handed on
        while done < header.count {
            let want = min(chunkElements, header.count - done)
            let got = try readFully(source, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<(want * size)]))
            guard got == want * size else {
                throw DataError.malformed(
                    file: name, location: "byte \(header.dataOffset)",
                    message: "the data is truncated: shape \(header.shapeText) of '\(header.descr)' needs \(totalBytes) bytes, found \(done * size + got)")
            }
            let out = UnsafeMutableBufferPointer(rebasing: converted[0..<want])
            header.element.convert(UnsafeRawBufferPointer(rebasing: raw[0..<got]), into: out)
            if header.element.kind == .float {
                for k in 0..<want where !out[k].isFinite {
                    let element = done + k
                    throw DataError.nonFinite(
                        file: name,
                        location: "byte \(header.dataOffset + element * size) (element \(header.position(ofFileElement: element)))")
                }
            }
            try body(UnsafeBufferPointer(out))
            done += want
        }
        if source.knownSize == nil {
            var probe: UInt8 = 0
            if try withUnsafeMutableBytes(of: &probe, { try source.readSome(into: $0) }) > 0 {
                throw DataError.malformed(
                    file: name, location: "byte \(header.dataOffset + totalBytes)",
                    message: "more bytes follow the data that shape \(header.shapeText) of '\(header.descr)' describes; expected the end of the file")
            }
        }
    }

    /// Reads until `buffer` is full or the source ends; returns the bytes read.
    static func readFully(_ source: some ChunkSource, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let got = try source.readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if got == 0 { break }
            filled += got
        }
        return filled
    }
}

/// Walks the elements of an array in file order and yields each one's row-major index.
struct ElementOrder {
    private let shape: [Int]
    private let strides: [Int]   // row-major strides
    private let fortran: Bool
    private var index: [Int]
    private(set) var rowMajorIndex = 0

    init(shape: [Int], fortran: Bool) {
        self.shape = shape
        self.fortran = fortran
        var strides = [Int](repeating: 1, count: shape.count)
        for a in stride(from: shape.count - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * shape[a + 1] }
        self.strides = strides
        index = [Int](repeating: 0, count: shape.count)
    }

    @inline(__always)
    mutating func advance() {
        guard fortran && shape.count > 1 else { rowMajorIndex += 1; return }
        // Fortran order: the first axis runs fastest.
        var a = 0
        while a < shape.count {
            index[a] += 1
            rowMajorIndex += strides[a]
            if index[a] < shape[a] { return }
            rowMajorIndex -= strides[a] * index[a]
            index[a] = 0
            a += 1
        }
    }
}

/// What an element type in a `descr` is and how to turn it into `Double`.
struct NPYElement: Equatable {
    enum Kind { case float, signed, unsigned, bool }
    var kind: Kind
    var size: Int

    func convert(_ raw: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Double>) {
        let count = out.count
        switch (kind, size) {
        case (.float, 8):
            for k in 0..<count { out[k] = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self))) }
        case (.float, 4):
            for k in 0..<count { out[k] = Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: k * 4, as: UInt32.self)))) }
        case (.signed, 8):
            for k in 0..<count { out[k] = Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: k * 8, as: Int64.self))) }
        case (.signed, 4):
            for k in 0..<count { out[k] = Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: k * 4, as: Int32.self))) }
        case (.signed, 2):
            for k in 0..<count { out[k] = Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: k * 2, as: Int16.self))) }
        case (.signed, _):
            for k in 0..<count { out[k] = Double(Int8(bitPattern: raw[k])) }
        case (.unsigned, 8):
            for k in 0..<count { out[k] = Double(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self))) }
        case (.unsigned, 4):
            for k in 0..<count { out[k] = Double(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: k * 4, as: UInt32.self))) }
        case (.unsigned, 2):
            for k in 0..<count { out[k] = Double(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: k * 2, as: UInt16.self))) }
        case (.unsigned, _), (.bool, _):
            for k in 0..<count { out[k] = Double(raw[k]) }
        case (.float, _):
            out.update(repeating: .nan)   // unreachable: the header accepts only f4 and f8
        }
    }
}

/// The parsed header of an `.npy` file.
struct NPYHeader {
    var descr: String
    var element: NPYElement
    var fortranOrder: Bool
    var shape: [Int]
    /// Elements in the array (the product of the shape).
    var count: Int
    /// Where the data starts.
    var dataOffset: Int
    /// Where the shape is written in the header, for messages about it.
    var shapeOffset: Int

    var shapeText: String { Self.text(of: shape) }

    /// NumPy's spelling of a shape: `(3, 4)`, `(5,)`, `()`.
    static func text(of shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// The position of the k-th element in file order, as NumPy would index it: `(i, j)`.
    func position(ofFileElement k: Int) -> String {
        guard !shape.isEmpty else { return "()" }
        var rest = k
        var index = [Int](repeating: 0, count: shape.count)
        let axes = fortranOrder ? Array(shape.indices) : Array(shape.indices.reversed())
        for a in axes where shape[a] > 0 {
            index[a] = rest % shape[a]
            rest /= shape[a]
        }
        return Self.text(of: index)
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]   // \x93NUMPY

    /// Reads and checks the preamble and header dictionary, leaving `source` at the data.
    static func read(from source: some ChunkSource, name: String) throws -> NPYHeader {
        func fail(_ offset: Int, _ message: String) -> DataError {
            .malformed(file: name, location: "byte \(offset)", message: message)
        }
        let (dictionary, dictionaryOffset, dataOffset) = try readDictionary(from: source, name: name)
        func entry(_ key: String) throws -> (PythonLiteral, Int) {
            guard let found = dictionary.first(where: { $0.key == key }) else {
                throw fail(dictionaryOffset, "the header has no '\(key)'; expected the keys 'descr', 'fortran_order' and 'shape'")
            }
            return (found.value, found.offset)
        }

        let (descrValue, descrOffset) = try entry("descr")
        guard case .string(let descr) = descrValue else {
            throw fail(descrOffset, "structured or non-string dtype descr is not supported; expected a simple dtype such as '<f8'")
        }
        let element = try parseDescr(descr) { fail(descrOffset, $0) }

        let (orderValue, orderOffset) = try entry("fortran_order")
        guard case .bool(let fortranOrder) = orderValue else {
            throw fail(orderOffset, "'fortran_order' must be True or False")
        }

        let (shapeValue, shapeOffset) = try entry("shape")
        guard case .tuple(let dims) = shapeValue else {
            throw fail(shapeOffset, "'shape' must be a tuple of integers such as (3, 4)")
        }
        var shape: [Int] = []
        var count = 1
        for dim in dims {
            guard case .int(let n) = dim, n >= 0 else {
                throw fail(shapeOffset, "'shape' must be a tuple of non-negative integers such as (3, 4)")
            }
            shape.append(n)
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else { throw fail(shapeOffset, "shape \(text(of: shape)) has too many elements") }
            count = product
        }
        guard !count.multipliedReportingOverflow(by: element.size).overflow else {
            throw fail(shapeOffset, "shape \(Self.text(of: shape)) has too many elements")
        }
        return NPYHeader(descr: descr, element: element, fortranOrder: fortranOrder, shape: shape, count: count,
                         dataOffset: dataOffset, shapeOffset: shapeOffset)
    }

    /// The preamble and the header dictionary (entries with their file offsets), leaving `source`
    /// at the data; whatever the dtype (`.npz` members such as scipy's `format.npy` hold strings).
    static func readDictionary(
        from source: some ChunkSource, name: String
    ) throws -> (entries: [(key: String, value: PythonLiteral, offset: Int)], dictionaryOffset: Int, dataOffset: Int) {
        func fail(_ offset: Int, _ message: String) -> DataError {
            .malformed(file: name, location: "byte \(offset)", message: message)
        }
        var preamble = [UInt8](repeating: 0, count: 8)
        let got = try preamble.withUnsafeMutableBytes { try NPYReader.readFully(source, into: $0) }
        if got == 0 { throw fail(0, "the file is empty; expected the NPY magic string \\x93NUMPY") }
        let seen = preamble.prefix(min(got, 6))
        guard Array(seen) == Array(magic.prefix(seen.count)) else {
            let hex = seen.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            throw fail(0, "not an NPY file: expected the magic string \\x93NUMPY, found bytes \(hex.joined(separator: " "))")
        }
        guard got == 8 else { throw fail(got, "the header is truncated: expected 8 bytes of preamble, the file ends at byte \(got)") }
        let major = preamble[6], minor = preamble[7]
        let lengthBytes: Int
        switch major {
        case 1: lengthBytes = 2
        case 2, 3: lengthBytes = 4
        default: throw fail(6, "unsupported NPY format version \(major).\(minor); expected 1.0, 2.0 or 3.0")
        }
        var lengthField = [UInt8](repeating: 0, count: lengthBytes)
        let gotLength = try lengthField.withUnsafeMutableBytes { try NPYReader.readFully(source, into: $0) }
        guard gotLength == lengthBytes else {
            throw fail(8 + gotLength, "the header is truncated: expected a \(lengthBytes)-byte header length at byte 8")
        }
        let headerLength = lengthField.reversed().reduce(0) { $0 << 8 | Int($1) }
        let headerStart = 8 + lengthBytes
        if let size = source.knownSize, headerStart + headerLength > size {
            throw fail(size, "the header is truncated: expected \(headerLength) header bytes from byte \(headerStart), the file ends at byte \(size)")
        }
        guard headerLength <= 1 << 24 else {
            throw fail(8, "header length \(headerLength) is implausible; expected a few hundred bytes")
        }
        var headerBytes = [UInt8](repeating: 0, count: headerLength)
        let gotText = try headerBytes.withUnsafeMutableBytes { try NPYReader.readFully(source, into: $0) }
        guard gotText == headerLength else {
            throw fail(headerStart + gotText, "the header is truncated: expected \(headerLength) header bytes from byte \(headerStart), found \(gotText)")
        }

        var parser = PythonLiteralParser(bytes: headerBytes, base: headerStart, file: name)
        let (dictionary, dictionaryOffset) = try parser.parseHeaderDictionary()
        return (dictionary, dictionaryOffset, headerStart + headerLength)
    }

    /// `<f8` and friends. Big-endian and unusual types are refused by name.
    static func parseDescr(_ descr: String, fail: (String) -> DataError) throws -> NPYElement {
        let chars = Array(descr)
        guard chars.count >= 3, let size = Int(String(chars[2...])) else {
            throw fail("unsupported dtype '\(descr)'; expected float64 ('<f8') or float32 ('<f4')")
        }
        let kind: NPYElement.Kind
        switch (chars[1], size) {
        case ("f", 4), ("f", 8): kind = .float
        case ("i", 1), ("i", 2), ("i", 4), ("i", 8): kind = .signed
        case ("u", 1), ("u", 2), ("u", 4), ("u", 8): kind = .unsigned
        case ("b", 1): kind = .bool
        default:
            throw fail("unsupported dtype '\(descr)'; expected float64 ('<f8') or float32 ('<f4') (or a little-endian integer type)")
        }
        switch chars[0] {
        case "<", "=", "|": break   // `=` is native order: little-endian on every platform Shardwise runs on
        case ">" where size == 1: break
        case ">":
            throw fail("big-endian dtype '\(descr)' is not supported; expected little-endian '<\(chars[1])\(size)' (convert with a.astype('<\(chars[1])\(size)'))")
        default:
            throw fail("unsupported dtype '\(descr)'; expected a byte order '<' or '|' first")
        }
        return NPYElement(kind: kind, size: size)
    }
}

/// The values a `.npy` header dictionary may hold.
enum PythonLiteral: Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([PythonLiteral])
}

/// A parser for the small Python literal that is an `.npy` header:
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
struct PythonLiteralParser {
    let bytes: [UInt8]
    /// File offset of `bytes[0]`, so that errors point into the file.
    let base: Int
    let file: String
    var position = 0

    init(bytes: [UInt8], base: Int, file: String) {
        self.bytes = bytes
        self.base = base
        self.file = file
    }

    private func fail(_ message: String, at offset: Int? = nil) -> DataError {
        .malformed(file: file, location: "byte \(base + (offset ?? position))", message: message)
    }

    /// The top-level dictionary as (key, value, file offset of the value); only whitespace may follow it.
    mutating func parseHeaderDictionary() throws -> ([(key: String, value: PythonLiteral, offset: Int)], Int) {
        skipSpace()
        let start = base + position
        guard peek() == UInt8(ascii: "{") else { throw fail("the header is not a dictionary; expected '{'") }
        position += 1
        var entries: [(key: String, value: PythonLiteral, offset: Int)] = []
        while true {
            skipSpace()
            if peek() == UInt8(ascii: "}") { position += 1; break }
            guard case .string(let key) = try value() else { throw fail("expected a quoted key in the header dictionary") }
            skipSpace()
            try expect(":")
            skipSpace()
            let offset = base + position
            entries.append((key, try value(), offset))
            skipSpace()
            if peek() == UInt8(ascii: ",") { position += 1; continue }
            skipSpace()
            guard peek() == UInt8(ascii: "}") else { throw fail("expected ',' or '}' in the header dictionary") }
        }
        skipSpace()
        guard position == bytes.count || bytes[position...].allSatisfy({ $0 == 0 }) else {
            throw fail("unexpected text after the header dictionary; expected spaces and a newline")
        }
        return (entries, start)
    }

    private mutating func value(depth: Int = 0) throws -> PythonLiteral {
        guard depth < 32 else { throw fail("the header nests too deeply") }
        skipSpace()
        guard let c = peek() else { throw fail("the header ends early; expected a value") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try string(quote: c))
        case UInt8(ascii: "("):
            return .tuple(try sequence(close: ")", depth: depth))
        case UInt8(ascii: "["):
            return .list(try sequence(close: "]", depth: depth))
        case UInt8(ascii: "{"):
            position += 1
            var items: [PythonLiteral] = []
            while true {
                skipSpace()
                if peek() == UInt8(ascii: "}") { position += 1; return .dict(items) }
                items.append(try value(depth: depth + 1))
                skipSpace()
                try expect(":")
                items.append(try value(depth: depth + 1))
                skipSpace()
                if peek() == UInt8(ascii: ",") { position += 1 } else if peek() != UInt8(ascii: "}") {
                    throw fail("expected ',' or '}'")
                }
            }
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .int(try integer())
        default:
            let start = position
            while let b = peek(), (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") { position += 1 }
            switch String(decoding: bytes[start..<position], as: UTF8.self) {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw fail("unexpected text in the header; expected a string, number, tuple, True or False", at: start)
            }
        }
    }

    private mutating func sequence(close: Unicode.Scalar, depth: Int) throws -> [PythonLiteral] {
        position += 1
        var items: [PythonLiteral] = []
        while true {
            skipSpace()
            if peek() == UInt8(ascii: close) { position += 1; return items }
            items.append(try value(depth: depth + 1))
            skipSpace()
            if peek() == UInt8(ascii: ",") { position += 1 } else if peek() != UInt8(ascii: close) {
                throw fail("expected ',' or '\(close)'")
            }
        }
    }

    private mutating func string(quote: UInt8) throws -> String {
        let start = position
        position += 1
        var out: [UInt8] = []
        while let b = peek() {
            position += 1
            if b == quote { return String(decoding: out, as: UTF8.self) }
            if b == UInt8(ascii: "\\"), let next = peek() { out.append(next); position += 1; continue }
            out.append(b)
        }
        throw fail("unterminated string in the header", at: start)
    }

    private mutating func integer() throws -> Int {
        let start = position
        var negative = false
        if let s = peek(), s == UInt8(ascii: "-") || s == UInt8(ascii: "+") { negative = s == UInt8(ascii: "-"); position += 1 }
        var value = 0, digits = 0
        while let b = peek(), b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
            let (t, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = t.addingReportingOverflow(Int(b - UInt8(ascii: "0")))
            guard !o1 && !o2 else { throw fail("integer too large in the header", at: start) }
            value = s
            digits += 1
            position += 1
        }
        guard digits > 0 else { throw fail("expected an integer", at: start) }
        if let b = peek(), b == UInt8(ascii: "L") || b == UInt8(ascii: "l") { position += 1 }   // Python 2 long
        return negative ? -value : value
    }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        guard peek() == UInt8(ascii: c) else { throw fail("expected '\(c)'") }
        position += 1
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipSpace() {
        while let b = peek(), b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { position += 1 }
    }
}

/// Writes NumPy `.npy` files (format 1.0, or 2.0 when the header needs it), for tests and for
/// handing data to Python.
///
/// ```swift
/// try NPYWriter.write(shape: [2, 3], values: [1, 2, 3, 4, 5, 6], to: "a.npy")
/// // numpy: np.load("a.npy") → array([[1., 2., 3.], [4., 5., 6.]])
/// ```
public enum NPYWriter {
    /// Element types the writer produces (little-endian).
    public enum DType: String, Sendable, CaseIterable {
        case float64 = "<f8"
        case float32 = "<f4"
        case int64 = "<i8"
        case int32 = "<i4"
    }

    /// The bytes of an `.npy` file holding `values` (row-major) with `shape`.
    ///
    /// - Parameter fortranOrder: write the elements column-major with `fortran_order: True`
    ///   (the same array, laid out as Fortran would).
    /// - Throws: `DataError.invalid` when the count does not match the shape, or a value does not
    ///   fit an integer type exactly.
    public static func encode(
        shape: [Int], values: [Double], dtype: DType = .float64, fortranOrder: Bool = false
    ) throws -> [UInt8] {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw DataError.invalid("NPY shape \(NPYHeader.text(of: shape)) does not hold \(values.count) values")
        }
        var dict = "{'descr': '\(dtype.rawValue)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(NPYHeader.text(of: shape)), }"
        var version: UInt8 = 1
        var preamble = 10
        if dict.utf8.count + 1 + preamble > 65535 { version = 2; preamble = 12 }
        let padding = (64 - (preamble + dict.utf8.count + 1) % 64) % 64
        dict += String(repeating: " ", count: padding) + "\n"
        var out = NPYHeader.magic + [version, 0]
        let length = dict.utf8.count
        if version == 1 {
            out += [UInt8(length & 0xFF), UInt8(length >> 8)]
        } else {
            out += (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) }
        }
        out += Array(dict.utf8)
        out.reserveCapacity(out.count + values.count * 8)

        var order = ElementOrder(shape: shape, fortran: fortranOrder)
        for _ in 0..<values.count {
            let v = values[order.rowMajorIndex]
            order.advance()
            switch dtype {
            case .float64: append(v.bitPattern.littleEndian, to: &out)
            case .float32: append(Float(v).bitPattern.littleEndian, to: &out)
            case .int64:
                guard let i = Int64(exactly: v) else { throw DataError.invalid("\(v) is not an exact int64") }
                append(i.littleEndian, to: &out)
            case .int32:
                guard let i = Int32(exactly: v) else { throw DataError.invalid("\(v) is not an exact int32") }
                append(i.littleEndian, to: &out)
            }
        }
        return out
    }

    /// Writes `values` (row-major) with `shape` to `path`.
    public static func write(
        shape: [Int], values: [Double], dtype: DType = .float64, fortranOrder: Bool = false, to path: String
    ) throws {
        let bytes = try encode(shape: shape, values: values, dtype: dtype, fortranOrder: fortranOrder)
        try writeFile(bytes, to: path)
    }

    /// Writes a dataset as one n × (d + 1) array, the target last — what `NPYReader.readDataset`
    /// reads back by default.
    public static func write(_ data: Dataset<Double>, dtype: DType = .float64, to path: String) throws {
        let n = data.rows, d = data.features
        var values = [Double](repeating: 0, count: n * (d + 1))
        data.x.withUnsafeBufferPointer { xs in
            for i in 0..<n {
                for j in 0..<d { values[i * (d + 1) + j] = xs[i * d + j] }
                values[i * (d + 1) + d] = data.y[i]
            }
        }
        try write(shape: [n, d + 1], values: values, dtype: dtype, to: path)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value) { out.append(contentsOf: $0) }
    }

    static func writeFile(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataError.invalid("\(path): cannot create: " + String(cString: strerror(errno))) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var written = 0
            while written < raw.count {
                let n = posixWrite(fd, base + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DataError.invalid("\(path): cannot write: " + String(cString: strerror(errno)))
                }
                written += n
            }
        }
    }
}

/// `write(2)`, out of reach of `NPYWriter.write` overloads.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
