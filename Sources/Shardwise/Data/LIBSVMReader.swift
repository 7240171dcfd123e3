#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the sparse LIBSVM / SVMlight text format: into a dense dataset (`read`, for small files),
/// or straight into CSR without ever densifying (`readSparse`, in `LIBSVMReader+Sparse.swift`).
/// Both paths are one parser (`scan`).
///
/// Each line is `label index:value index:value …` with 1-based, strictly increasing indices;
/// absent indices are zeros. A `qid:N` pair (SVMlight ranking) is ignored, and so is everything
/// after `#`; blank and comment-only lines are skipped. The feature count is the largest index
/// seen, unless `features` fixes it (as scikit-learn's `n_features` does, so that a test file
/// that happens to lack the last feature gets the same width as its training file).
///
/// ```swift
/// let data = try LIBSVMReader.read(path: "a9a.svm")
/// ```
///
/// Errors name the file and the line: `a9a.svm:line 12: feature indices must increase: 3 after 5`.
public enum LIBSVMReader {
    /// The largest dense matrix a file may expand to (2³¹ elements, 16 GiB of `Double`): an index
    /// typed with a few extra digits should not take the machine's memory with it.
    public static let maxDenseElements = 1 << 31

    /// Reads a LIBSVM/SVMlight file.
    ///
    /// - Parameters:
    ///   - features: the number of features; an index above it is an error. `nil` uses the largest
    ///     index in the file.
    public static func read(path: String, features: Int? = nil) throws -> Dataset<Double> {
        let file = try ReaderFile(path: path)
        return try parse(source: file, name: path, features: features)
    }

    /// Parses LIBSVM text held in memory; `source` is the name used in messages.
    public static func parse(text: String, source: String = "memory", features: Int? = nil) throws -> Dataset<Double> {
        try parse(source: MemoryBytes(Array(text.utf8)), name: source, features: features)
    }

    static func parse(
        source: some ChunkSource, name: String, features: Int?, chunkSize: Int = 1 << 20,
        maxRecordBytes: Int = RecordSplitter<MemoryBytes>.defaultMaxRecordBytes
    ) throws -> Dataset<Double> {
        let rows = try scan(source: source, name: name, features: features, chunkSize: chunkSize,
                            maxRecordBytes: maxRecordBytes, as: Double.self)
        let d = rows.width
        let n = rows.labels.count
        // The width comes from one index in the file: a typo there ("40000000:1") must not take
        // the machine's memory, nor reach BLAS or LAPACK with a matrix that cannot exist.
        let widthSource = features == nil ? "the largest index, \(d), is on line \(rows.widestLine)" : "features = \(d)"
        let (cells, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow && cells <= maxDenseElements else {
            throw DataError.malformed(
                file: name, location: "line \(rows.widestLine)",
                message: "index \(d) makes the dense matrix \(n) × \(d), more than the \(maxDenseElements) elements allowed")
        }
        try MemoryBudget.check(elements: cells, bytesPerElement: MemoryLayout<Double>.stride,
                               what: "\(name): the dense matrix \(n) × \(d) (\(widthSource))")
        var x = Matrix<Double>(rows: n, columns: d)
        x.withUnsafeMutableBufferPointer { out in
            var k = 0
            for r in 0..<n {
                let rowBase = r * d
                while k < Int(rows.offsets[r + 1]) {
                    out[rowBase + Int(rows.indices[k])] = rows.values[k]
                    k += 1
                }
            }
        }
        return Dataset(x: x, y: rows.labels, featureNames: nil, source: name, rowLines: rows.lines)
    }

    /// What one pass over a LIBSVM file yields: its rows in CSR form (0-based columns, strictly
    /// increasing within a row, each below `width`), the labels, and the line of each row.
    struct ScannedRows<Scalar: BLASScalar> {
        var labels: [Scalar] = []
        var lines: [Int] = []
        var offsets: [Int64] = [0]
        var indices: [Int32] = []
        var values: [Scalar] = []
        /// The matrix's column count: `features` when given, else the largest index.
        var width = 0
        /// The line holding the largest index, for messages about the width.
        var widestLine = 0
    }

    /// The one parser behind both paths (dense `read`, sparse `readSparse`): streams the file a
    /// chunk at a time and checks every number before it can index or size anything.
    static func scan<Scalar: BLASScalar>(
        source: some ChunkSource, name: String, features: Int?, chunkSize: Int = 1 << 20,
        maxRecordBytes: Int = RecordSplitter<MemoryBytes>.defaultMaxRecordBytes, as _: Scalar.Type
    ) throws -> ScannedRows<Scalar> {
        if let features, features < 0 { throw DataError.invalid("feature count must be non-negative, got \(features)") }
        let scope = NumericLocaleScope()
        defer { scope.end() }

        var out = ScannedRows<Scalar>()
        var widest = 0
        let qid: (UInt8, UInt8, UInt8) = (UInt8(ascii: "q"), UInt8(ascii: "i"), UInt8(ascii: "d"))

        let lines = RecordSplitter(source: source, name: name, quoting: false, chunkSize: chunkSize, maxRecordBytes: maxRecordBytes)
        while let (line, number) = try lines.next() {
            var end = line.count
            if let base = line.baseAddress, let hash = memchr(base, Int32(UInt8(ascii: "#")), line.count) {
                end = base.distance(to: hash.assumingMemoryBound(to: UInt8.self))
            }
            var tokenIndex = 0
            var previous = 0
            /// The checks every index passes, whichever path parsed it (before its value is read).
            func check(_ index: Int) throws {
                guard index >= 1 else {
                    throw DataError.malformed(file: name, location: "line \(number)",
                                              message: "feature index \(index) is not allowed: indices start at 1")
                }
                guard index <= Int(Int32.max) else {
                    throw DataError.malformed(file: name, location: "line \(number)",
                                              message: "feature index \(index) is too large")
                }
                guard index > previous else {
                    throw DataError.malformed(file: name, location: "line \(number)",
                                              message: "feature indices must increase: \(index) after \(previous)")
                }
                if let features, index > features {
                    throw DataError.malformed(file: name, location: "line \(number)",
                                              message: "feature index \(index) exceeds the \(features) features expected")
                }
            }
            func append(_ index: Int, _ value: Double) {
                previous = index
                if index > widest { widest = index; out.widestLine = number }
                out.indices.append(Int32(index - 1))
                out.values.append(Scalar(value))
            }
            var i = 0
            while i < end {
                while i < end && isSpace(line[i]) { i += 1 }
                guard i < end else { break }
                if tokenIndex > 0, let (index, value, next) = plainPair(line, from: i, end: end) {
                    try check(index)
                    append(index, value)
                    tokenIndex += 1
                    i = next
                    continue
                }
                let tokenStart = i
                var colon = -1
                while i < end && !isSpace(line[i]) {
                    if line[i] == UInt8(ascii: ":") && colon < 0 { colon = i }
                    i += 1
                }
                let token = UnsafeBufferPointer(rebasing: line[tokenStart..<i])
                defer { tokenIndex += 1 }

                if tokenIndex == 0 {
                    switch DecimalParser.parse(token) {
                    case .value(let v): out.labels.append(Scalar(v))
                    case .nonFinite: throw DataError.nonFinite(file: name, location: "line \(number), label")
                    case .notANumber:
                        throw DataError.malformed(file: name, location: "line \(number)",
                                                  message: "'\(text(token))' is not a label; expected a number first on the line")
                    }
                    continue
                }
                guard colon >= 0 else {
                    throw DataError.malformed(file: name, location: "line \(number)",
                                              message: "'\(text(token))' is not an index:value pair")
                }
                let key = UnsafeBufferPointer(rebasing: line[tokenStart..<colon])
                let valueBytes = UnsafeBufferPointer(rebasing: line[(colon + 1)..<i])
                guard let index = integer(key) else {
                    if key.count == 3 && (key[0], key[1], key[2]) == qid { continue }
                    throw DataError.malformed(
                        file: name, location: "line \(number)",
                        message: "'\(text(key))' in '\(text(token))' is not a feature index; expected a positive integer")
                }
                try check(index)
                let value: Double
                switch DecimalParser.parse(valueBytes) {
                case .value(let v): value = v
                case .nonFinite: throw DataError.nonFinite(file: name, location: "line \(number), feature \(index)")
                case .notANumber:
                    throw DataError.malformed(
                        file: name, location: "line \(number)",
                        message: "'\(text(valueBytes))' in '\(text(token))' is not a number")
                }
                append(index, value)
            }
            if tokenIndex > 0 {
                out.offsets.append(Int64(out.indices.count))
                out.lines.append(number)
            }
        }

        guard !out.labels.isEmpty else {
            throw DataError.malformed(file: name, location: "line 1",
                                      message: "no data; expected lines of 'label index:value …'")
        }
        out.width = features ?? widest
        guard out.width > 0 else {
            throw DataError.malformed(file: name, location: "line 1",
                                      message: "no index:value pairs in the file; expected at least one feature")
        }
        return out
    }

    /// The common pair, `digits:[-]digits[.digits]` followed by a space or the end, parsed in one
    /// pass: the index, the value (exactly rounded: at most 15 digits, so one division by a power
    /// of ten that is itself exact), and where the pair ends. nil for anything else — a sign, an
    /// exponent, `qid`, a malformed pair — which the general path then parses (and names if bad).
    @inline(__always)
    static func plainPair(_ p: UnsafeBufferPointer<UInt8>, from start: Int, end: Int) -> (Int, Double, Int)? {
        var i = start
        var index = 0, indexDigits = 0
        while i < end, case let d = p[i] &- UInt8(ascii: "0"), d < 10, indexDigits < 10 {
            index = index * 10 + Int(d)
            indexDigits += 1
            i += 1
        }
        guard indexDigits > 0, i < end, p[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        let negative = i < end && p[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0, scale = 0
        while i < end, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
            mantissa = mantissa &* 10 &+ UInt64(d)
            digits += 1
            i += 1
        }
        if i < end && p[i] == UInt8(ascii: ".") {
            i += 1
            while i < end, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                digits += 1
                scale += 1
                i += 1
            }
        }
        guard digits > 0, digits <= 15, i == end || isSpace(p[i]) else { return nil }
        let magnitude = Double(mantissa) / DecimalParser.powersOfTen[scale]
        return (index, negative ? -magnitude : magnitude, i)
    }

    @inline(__always)
    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D }

    private static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let s = String(decoding: bytes, as: UTF8.self)
        return s.count > 40 ? String(s.prefix(40)) + "…" : s
    }

    /// An optionally signed decimal integer, nil when malformed or beyond `Int`.
    private static func integer(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = 0
        var negative = false
        if i < bytes.count && (bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+")) {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < bytes.count else { return nil }
        var value = 0
        while i < bytes.count {
            let d = bytes[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(d))
            guard !o1 && !o2 else { return nil }
            value = sum
            i += 1
        }
        return negative ? -value : value
    }
}
