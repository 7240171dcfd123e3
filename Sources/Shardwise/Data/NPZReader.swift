/// Reads scipy's sparse `.npz` files (`scipy.sparse.save_npz`) in CSR format.
///
/// The file is a zip archive (deflate by default, stored with `compressed=False`) of `.npy`
/// members: `format.npy` (the string `csr`), `shape.npy` (rows, columns), `indptr.npy` (rows + 1
/// offsets), `indices.npy` (a column per nonzero) and `data.npy` (the values). `indptr` and
/// `indices` may be int32 or int64, `data` float32 or float64; any other format (csc, coo, bsr,
/// dia…) or dtype is refused, naming the member. The members go through the same `.npy` header
/// parser as `NPYReader`, and the arrays through `CSRMatrix`'s validation (an unsorted row is
/// sorted; a column twice in a row is an error, which scipy would sum).
///
/// ```swift
/// let x = try NPZReader.readCSR(path: "X.npz", as: Float.self)
/// ```
///
/// Errors name the file and the member: `X.npz:format.npy: the matrix is stored as 'csc'; …`.
public enum NPZReader {
    /// Reads a CSR matrix from a `.npz` file.
    public static func readCSR<Scalar: BLASScalar>(path: String, as _: Scalar.Type = Double.self) throws -> CSRMatrix<Scalar> {
        try readCSR(archive: ZipArchive(source: RandomAccessFile(path: path), file: path))
    }

    /// Reads a CSR matrix from the bytes of a `.npz` file; `source` is the name used in messages.
    public static func readCSR<Scalar: BLASScalar>(bytes: [UInt8], source: String = "memory", as _: Scalar.Type = Double.self) throws -> CSRMatrix<Scalar> {
        try readCSR(archive: ZipArchive(source: MemoryRandomAccess(bytes), file: source))
    }

    static func readCSR<Scalar: BLASScalar>(archive: ZipArchive) throws -> CSRMatrix<Scalar> {
        let file = archive.file
        func fail(_ member: String, _ message: String) -> DataError { .malformed(file: file, location: member, message: message) }
        func member(_ name: String) throws -> [UInt8] {
            guard let m = archive.member(named: name) else {
                let names = archive.members.map(\.name).joined(separator: ", ")
                throw fail(name, "missing: a scipy sparse .npz holds format.npy, shape.npy, indptr.npy, indices.npy and data.npy; this archive holds \(names.isEmpty ? "nothing" : names)")
            }
            return try archive.extract(m)
        }

        let format = try text(member("format.npy"), name: "\(file):format.npy")
        guard format == "csr" else {
            throw fail("format.npy", "the matrix is stored as '\(format)'; only CSR ('csr') is read: save it with scipy.sparse.save_npz(path, X.tocsr())")
        }
        let (shapeDims, shapeValues) = try NPYReader.readArray(bytes: member("shape.npy"), source: "\(file):shape.npy")
        guard shapeDims == [2], let rows = Int(exactly: shapeValues[0]), let columns = Int(exactly: shapeValues[1]),
              rows >= 0, columns >= 0 else {
            throw fail("shape.npy", "expected two non-negative integers (rows, columns), found shape \(NPYHeader.text(of: shapeDims)) holding \(shapeValues)")
        }
        guard columns <= CSRMatrix<Scalar>.maximumColumns else {
            throw fail("shape.npy", "\(columns) columns is more than 32-bit column indices can name (at most \(CSRMatrix<Scalar>.maximumColumns))")
        }

        let offsets: [Int64] = try integers(member("indptr.npy"), file: file, member: "indptr.npy", count: rows + 1,
                                            what: "rows + 1 = \(rows + 1) row offsets") { Int64($0) }
        let indices: [Int32] = try integers(member("indices.npy"), file: file, member: "indices.npy", count: nil,
                                            what: "a column index per nonzero") { Int32(exactly: $0) }
        let values: [Scalar] = try floats(member("data.npy"), file: file, member: "data.npy", count: indices.count)
        do {
            return try CSRMatrix(rows: rows, columns: columns, rowOffsets: offsets, columnIndices: indices, values: values)
        } catch {
            let culprit: String
            switch error {
            case .offsetCount, .firstOffset, .decreasingOffsets, .lastOffset: culprit = "indptr.npy"
            case .lengthMismatch: culprit = "data.npy"
            case .negativeShape, .tooManyColumns: culprit = "shape.npy"
            case .columnOutOfRange, .duplicateColumn: culprit = "indices.npy"
            }
            throw fail(culprit, "\(error)")
        }
    }

    /// A 0-d or 1-element string array (`|S3` bytes, or `<U3` UTF-32), without its NUL padding.
    static func text(_ bytes: [UInt8], name: String) throws -> String {
        let source = MemoryBytes(bytes)
        let (entries, dictionaryOffset, dataOffset) = try NPYHeader.readDictionary(from: source, name: name)
        guard let descrEntry = entries.first(where: { $0.key == "descr" }), case .string(let descr) = descrEntry.value else {
            throw DataError.malformed(file: name, location: "byte \(dictionaryOffset)", message: "the header has no string 'descr'")
        }
        let chars = Array(descr)
        guard chars.count >= 3, chars[1] == "S" || chars[1] == "U", let width = Int(String(chars[2...])), width >= 0,
              width <= 1 << 16 else {
            throw DataError.malformed(file: name, location: "byte \(dictionaryOffset)",
                                      message: "expected a string dtype such as '|S3' or '<U3', found '\(descr)'")
        }
        let body = bytes.count >= dataOffset ? Array(bytes[dataOffset...]) : []
        if chars[1] == "S" {
            return String(decoding: body.prefix(width).prefix { $0 != 0 }, as: UTF8.self)
        }
        var scalars = String.UnicodeScalarView()
        var k = 0
        while k + 4 <= min(body.count, 4 * width) {
            let v = UInt32(body[k]) | UInt32(body[k + 1]) << 8 | UInt32(body[k + 2]) << 16 | UInt32(body[k + 3]) << 24
            guard v != 0, let scalar = Unicode.Scalar(v) else { break }
            scalars.append(scalar)
            k += 4
        }
        return String(scalars)
    }

    /// A 1-D little-endian int32 or int64 member, converted by `convert` (nil: out of range).
    static func integers<T>(_ bytes: [UInt8], file: String, member: String, count: Int?, what: String,
                            _ convert: (Int64) -> T?) throws -> [T] {
        try withArray(bytes, file: file, member: member, count: count, what: what) { header, data in
            guard header.element.kind == .signed, header.element.size == 4 || header.element.size == 8 else {
                throw DataError.malformed(file: file, location: member,
                                          message: "dtype '\(header.descr)' is not supported; expected int32 ('<i4') or int64 ('<i8')")
            }
            let wide = header.element.size == 8
            var out: [T] = []
            out.reserveCapacity(header.count)
            for k in 0..<header.count {
                let v = wide ? Int64(littleEndian: data.loadUnaligned(fromByteOffset: k * 8, as: Int64.self))
                             : Int64(Int32(littleEndian: data.loadUnaligned(fromByteOffset: k * 4, as: Int32.self)))
                guard let t = convert(v) else {
                    throw DataError.malformed(file: file, location: member, message: "element \(k) is \(v), out of range for \(T.self)")
                }
                out.append(t)
            }
            return out
        }
    }

    /// A 1-D little-endian float32 or float64 member, every value finite.
    static func floats<Scalar: BLASScalar>(_ bytes: [UInt8], file: String, member: String, count: Int) throws -> [Scalar] {
        try withArray(bytes, file: file, member: member, count: count, what: "a value per column index (\(count))") { header, data in
            guard header.element.kind == .float else {
                throw DataError.malformed(file: file, location: member,
                                          message: "dtype '\(header.descr)' is not supported; expected float32 ('<f4') or float64 ('<f8')")
            }
            let wide = header.element.size == 8
            var out: [Scalar] = []
            out.reserveCapacity(header.count)
            for k in 0..<header.count {
                let v = wide ? Double(bitPattern: UInt64(littleEndian: data.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self)))
                             : Double(Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: k * 4, as: UInt32.self))))
                guard v.isFinite else { throw DataError.nonFinite(file: file, location: "\(member), element \(k)") }
                out.append(Scalar(v))
            }
            return out
        }
    }

    /// Calls `body` with a member's NPY header (1-D, `count` elements when given, data exactly as
    /// long as the shape says) and its data bytes.
    private static func withArray<R>(_ bytes: [UInt8], file: String, member: String, count: Int?, what: String,
                                     _ body: (NPYHeader, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let source = MemoryBytes(bytes)
        let name = "\(file):\(member)"
        let header = try NPYHeader.read(from: source, name: name)
        try NPYReader.checkSize(of: header, in: source, name: name)
        guard header.shape.count == 1 else {
            throw DataError.malformed(file: file, location: member, message: "expected a 1-D array of \(what), found shape \(header.shapeText)")
        }
        if let count, header.count != count {
            throw DataError.malformed(file: file, location: member, message: "expected \(what), found \(header.count)")
        }
        return try bytes.withUnsafeBytes { raw in try body(header, UnsafeRawBufferPointer(rebasing: raw[header.dataOffset...])) }
    }
}
