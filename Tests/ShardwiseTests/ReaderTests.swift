import Foundation
import Testing
@testable import Shardwise
import _TestSupport

// MARK: - Helpers

/// A fresh directory under the system's temporary directory, one per test.
private func scratchDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "shardwise-readers-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func write(_ text: String, named name: String, in directory: String) throws -> String {
    let path = directory + "/" + name
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return path
}

private func write(bytes: [UInt8], named name: String, in directory: String) throws -> String {
    let path = directory + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// Runs `body` and returns the `DataError` it throws (recording an issue when it throws none).
private func dataError(_ body: () throws -> Any) -> DataError? {
    do {
        _ = try body()
        Issue.record("expected a DataError, got a result")
        return nil
    } catch let error as DataError {
        return error
    } catch {
        Issue.record("expected a DataError, got \(error)")
        return nil
    }
}

private func bytes(hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = hex.startIndex
    while i < hex.endIndex {
        let j = hex.index(i, offsetBy: 2)
        out.append(UInt8(hex[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// An `.npy` file built by hand (independently of `NPYWriter`): preamble, padded header, payload.
private func npy(descr: String, fortran: Bool = false, shape: String, payload: [UInt8], major: UInt8 = 1,
                 headerOverride: String? = nil) -> [UInt8] {
    var header = headerOverride ?? "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let preamble = major == 1 ? 10 : 12
    header += String(repeating: " ", count: (64 - (preamble + header.utf8.count + 1) % 64) % 64) + "\n"
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0]
    let n = header.utf8.count
    out += major == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8(n >> 8), 0, 0]
    return out + Array(header.utf8) + payload
}

private func littleEndian(_ values: [Double]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
}

private func littleEndian32(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
}

private func matrix(_ rows: [[Double]]) -> Matrix<Double> {
    Matrix(rows: rows.count, columns: rows.first?.count ?? 0, elements: rows.flatMap { $0 })
}

// MARK: - Numbers

@Suite("Decimal parsing")
struct NumberReaderTests {
    @Test(arguments: [
        ("0", 0.0), ("-0", -0.0), ("1", 1.0), ("+1.5", 1.5), ("-2.25", -2.25), (".5", 0.5), ("5.", 5.0),
        ("1e3", 1000.0), ("1E-3", 0.001), ("  42  ", 42.0), ("6.02214076e23", 6.02214076e23),
        ("0.1", 0.1), ("0.30000000000000004", 0.30000000000000004), ("123456789012345678901234567890", 1.2345678901234568e29),
        ("4.9406564584124654e-324", 4.9406564584124654e-324), ("1.7976931348623157e308", 1.7976931348623157e308),
        ("000123.4500", 123.45), ("9007199254740993", 9007199254740992.0),
    ])
    func parsesNumbers(text: String, expected: Double) {
        guard case .value(let v) = DecimalParser.parse(text) else {
            Issue.record("'\(text)' did not parse")
            return
        }
        #expect(v.bitPattern == expected.bitPattern, "'\(text)' → \(v), expected \(expected)")
    }

    @Test(arguments: ["nan", "NaN", "-nan", "inf", "-Inf", "+INFINITY", "1e400", "-1e999"])
    func recognisesNonFinite(text: String) {
        #expect(DecimalParser.parse(text) == .nonFinite)
    }

    @Test(arguments: ["", " ", "abc", "1.2.3", "1e", "1e+", "--1", "0x1p3", "1,5", "1 2", "12a", ".", "-", "e5", "nanx"])
    func refusesNonNumbers(text: String) {
        #expect(DecimalParser.parse(text) == .notANumber)
    }

    /// Every double printed in the shortest round-trip form, and with %.17g and %.6e, parses back to
    /// what `Double(String)` gives — the fast path and the strtod path agree with the standard library.
    @Test func agreesWithStandardLibrary() {
        var rng = SplitMix64(seed: 11)
        for k in 0..<20_000 {
            let bits = rng.next()
            let v: Double
            switch k % 3 {
            case 0: v = Double(bitPattern: bits)   // any finite double
            case 1: v = Double(bits >> 11) * 0x1.0p-53 * 2000 - 1000
            default: v = Double(Int64(bitPattern: bits) % 100_000) / 1000
            }
            guard v.isFinite else { continue }
            for text in ["\(v)", String(format: "%.17g", v), String(format: "%.6e", v), String(format: "%.3f", v)] {
                guard let expected = Double(text) else { continue }
                let got = DecimalParser.parse(text)
                #expect(got == .value(expected), "'\(text)'")
                if got != .value(expected) { return }
            }
        }
    }
}

// MARK: - CSV

@Suite("CSV reader")
struct CSVReaderTests {
    struct Good: CustomTestStringConvertible, Sendable {
        var name: String
        var text: String
        var target: String?
        var header: Bool? = nil
        var x: [[Double]]
        var y: [Double]
        var names: [String]?
        var testDescription: String { name }
    }

    static let good: [Good] = [
        Good(name: "header, default target last", text: "a,b,y\n1,2,3\n4,5,6\n", target: nil,
             x: [[1, 2], [4, 5]], y: [3, 6], names: ["a", "b"]),
        Good(name: "no header, tabs", text: "1\t2\t3\n4\t5\t6\n", target: nil,
             x: [[1, 2], [4, 5]], y: [3, 6], names: nil),
        Good(name: "semicolons, target by name in the middle", text: "a;price;c\n1;2;3\n4;5;6\n", target: "price",
             x: [[1, 3], [4, 6]], y: [2, 5], names: ["a", "c"]),
        Good(name: "target by index", text: "a,b,c\n1,2,3\n4,5,6\n", target: "0",
             x: [[2, 3], [5, 6]], y: [1, 4], names: ["b", "c"]),
        Good(name: "target by index without header", text: "1,2,3\n4,5,6\n", target: "1",
             x: [[1, 3], [4, 6]], y: [2, 5], names: nil),
        Good(name: "quoted fields", text: "\"a,b\",\"say \"\"hi\"\"\",y\n\"1\", 2 ,\"3\"\n4,\"5.5\",6\n", target: "y",
             x: [[1, 2], [4, 5.5]], y: [3, 6], names: ["a,b", "say \"hi\""]),
        Good(name: "CRLF, BOM, spaces, blank lines", text: "\u{FEFF}a , b\r\n\r\n 1 , 2 \r\n\r\n3,4\r\n\r\n\r\n  \n", target: nil,
             x: [[1], [3]], y: [2, 4], names: ["a"]),
        Good(name: "no final newline", text: "1,2\n3,4", target: nil, x: [[1], [3]], y: [2, 4], names: nil),
        Good(name: "pandas index column with empty name", text: ",x,y\n0,1.5,2\n1,2.5,3\n", target: nil,
             x: [[0, 1.5], [1, 2.5]], y: [2, 3], names: ["", "x"]),
        Good(name: "numbers in every spelling", text: "1e3,-2.5E-1,+.5\n5.,0.30000000000000004,-0\n", target: nil,
             x: [[1000, -0.25], [5, 0.30000000000000004]], y: [0.5, -0.0], names: nil),
        Good(name: "header forced off is data", text: "1,2\n3,4\n", target: nil, header: false,
             x: [[1], [3]], y: [2, 4], names: nil),
        // A header name wins over an index: "1" is the first column's name.
        Good(name: "numeric header forced on", text: "1,2\n3,4\n", target: "1", header: true,
             x: [[4]], y: [3], names: ["2"]),
        Good(name: "quoted header name spanning lines", text: "\"two\nlines\",y\n1,2\n", target: nil,
             x: [[1]], y: [2], names: ["two\nlines"]),
    ]

    @Test(arguments: good)
    func readsGoodFiles(_ c: Good) throws {
        let dir = try scratchDirectory()
        let path = try write(c.text, named: "good.csv", in: dir)
        let data = try CSVReader.read(path: path, target: c.target, header: c.header)
        #expect(data.x == matrix(c.x))
        #expect(data.y.map(\.bitPattern) == c.y.map(\.bitPattern))
        #expect(data.featureNames == c.names)
        #expect(data.source == path)
        // The in-memory parser agrees with the file reader.
        let fromText = try CSVReader.parse(text: c.text, target: c.target, header: c.header)
        #expect(fromText.x == data.x && fromText.y == data.y && fromText.featureNames == data.featureNames)
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        var name: String
        var text: String
        var target: String? = nil
        var location: String?
        /// Text the message must contain.
        var says: String
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(name: "wrong field count",
            text: "a,b,c,d,y\n" + (2...6).map { "\($0),1,1,1,1\n" }.joined() + "7,1,1,1\n8,1,1,1,1\n",
            location: "line 7", says: "line 7: expected 5 fields, found 4"),
        Bad(name: "too many fields", text: "1,2\n3,4,5\n", location: "line 2", says: "expected 2 fields, found 3"),
        Bad(name: "non-numeric value", text: "a,b,y\n1,2,3\n4,abc,6\n", location: "line 3, column 2 ('b')",
            says: "line 3, column 2 ('b'): 'abc' is not a number"),
        Bad(name: "non-numeric value without header", text: "1,2,3\n4,5,6\n7,8,x9\n", location: "line 3, column 3",
            says: "line 3, column 3: 'x9' is not a number"),
        Bad(name: "empty field", text: "a,b\n1,\n", location: "line 2, column 2 ('b')", says: "empty field"),
        Bad(name: "unknown target name", text: "a,b,y\n1,2,3\n", target: "price", location: nil,
            says: "no column named 'price'; the columns are 'a', 'b', 'y'"),
        Bad(name: "target index out of range", text: "a,b,y\n1,2,3\n", target: "3", location: nil,
            says: "target column 3 is out of range: the file has 3 columns (0…2)"),
        Bad(name: "negative target index", text: "1,2,3\n", target: "-1", location: nil, says: "target column -1 is out of range"),
        Bad(name: "target name without header", text: "1,2,3\n", target: "y", location: nil,
            says: "target 'y' is not a column index, and the file has no header"),
        Bad(name: "duplicate header name", text: "a,a,y\n1,2,3\n", target: "a", location: "line 1",
            says: "columns 1 and 2 are both named 'a'; header names must be unique"),
        Bad(name: "empty file", text: "", location: "line 1", says: "the file is empty"),
        Bad(name: "only blank lines", text: "\n  \n\r\n", location: "line 1", says: "the file is empty"),
        Bad(name: "header only", text: "a,b,y\n\n", location: "line 1", says: "no data rows after the header"),
        Bad(name: "single column", text: "1\n2\n", location: "line 1", says: "expected at least 2 columns"),
        Bad(name: "unterminated quote", text: "a,b\n1,\"2\n3,4\n", location: "line 2, column 2", says: "unterminated quoted field"),
        Bad(name: "text after a closing quote", text: "a,b\n1,\"2\"x\n", location: "line 2, column 2",
            says: "unexpected 'x' after a closing quote"),
        Bad(name: "line numbers count lines inside quotes", text: "\"a\nb\",y\n1,2\n3\n", location: "line 4",
            says: "line 4: expected 2 fields, found 1"),
    ]

    @Test(arguments: bad)
    func refusesMalformedFiles(_ c: Bad) throws {
        let dir = try scratchDirectory()
        let path = try write(c.text, named: "bad.csv", in: dir)
        guard let error = dataError({ try CSVReader.read(path: path, target: c.target) }) else { return }
        #expect(error.description.hasPrefix(path), "\(error)")
        #expect(error.description.contains(c.says), "\(error)")
        if let location = c.location {
            guard case .malformed(let file, let where_, _) = error else {
                Issue.record("expected .malformed, got \(error)")
                return
            }
            #expect(file == path)
            #expect(where_ == location)
        }
    }

    @Test(arguments: [
        ("a,b\n1,2\nnan,4\n", "line 3, column 1 ('a')"),
        ("a,b\n1,inf\n", "line 2, column 2 ('b')"),
        ("1,2\n3,-Infinity\n", "line 2, column 2"),
        ("1,2\n1e999,1\n", "line 2, column 1"),
    ])
    func refusesNonFinite(text: String, location: String) throws {
        let dir = try scratchDirectory()
        let path = try write(text, named: "nan.csv", in: dir)
        let error = dataError { try CSVReader.read(path: path, target: nil) }
        #expect(error == .nonFinite(file: path, location: location))
        #expect(error?.description == "\(path):\(location): value is NaN or infinite")
    }

    @Test func missingFileIsUnreadable() {
        let error = dataError { try CSVReader.read(path: "/nonexistent/x.csv", target: nil) }
        guard case .unreadable(let file, let reason) = error else {
            Issue.record("expected .unreadable, got \(String(describing: error))")
            return
        }
        #expect(file == "/nonexistent/x.csv")
        #expect(!reason.isEmpty)
    }

    @Test func directoryIsUnreadable() throws {
        let dir = try scratchDirectory()
        let error = dataError { try CSVReader.read(path: dir, target: nil) }
        #expect(error == .unreadable(file: dir, reason: "it is a directory; data must be a regular file"))
    }

    /// Tiny read chunks: records longer than a chunk, quotes and CRLF split across chunk boundaries.
    @Test(arguments: [1, 2, 3, 7, 16, 64])
    func readsAcrossChunkBoundaries(chunkSize: Int) throws {
        for c in Self.good {
            let data = try CSVReader.parse(source: MemoryBytes(Array(c.text.utf8)), name: c.name, target: c.target,
                                           header: c.header, delimiter: nil, chunkSize: chunkSize)
            #expect(data.x == matrix(c.x), "\(c.name)")
            #expect(data.y.map(\.bitPattern) == c.y.map(\.bitPattern), "\(c.name)")
            #expect(data.featureNames == c.names, "\(c.name)")
        }
        for c in Self.bad {
            let small = dataError {
                try CSVReader.parse(source: MemoryBytes(Array(c.text.utf8)), name: "m", target: c.target,
                                    header: nil, delimiter: nil, chunkSize: chunkSize)
            }
            let large = dataError { try CSVReader.parse(text: c.text, source: "m", target: c.target) }
            #expect(small == large, "\(c.name)")
        }
    }

    @Test func explicitDelimiter() throws {
        let data = try CSVReader.parse(text: "a|b\n1|2\n", delimiter: "|")
        #expect(data.x == matrix([[1]]) && data.y == [2] && data.featureNames == ["a"])
        #expect(dataError { try CSVReader.parse(text: "1,2\n", delimiter: "\"") }
                == .invalid("CSV delimiter must be one ASCII character other than a quote or newline, got '\"'"))
    }
}

// MARK: - LIBSVM

@Suite("LIBSVM reader")
struct LIBSVMReaderTests {
    @Test func readsGoodFile() throws {
        let text = """
        # a comment line
        +1 1:0.5 3:-2 # trailing comment
        -1 qid:7 2:1e-3 4:4

        0.25 \t 4:1.5\r
        3
        """
        let dir = try scratchDirectory()
        let path = try write(text, named: "good.svm", in: dir)
        let data = try LIBSVMReader.read(path: path)
        #expect(data.y == [1, -1, 0.25, 3])
        #expect(data.x == matrix([[0.5, 0, -2, 0], [0, 0.001, 0, 4], [0, 0, 0, 1.5], [0, 0, 0, 0]]))
        #expect(data.featureNames == nil)
        #expect(data.source == path)

        for chunkSize in [1, 2, 5, 16] {
            let small = try LIBSVMReader.parse(source: MemoryBytes(Array(text.utf8)), name: path, features: nil,
                                               chunkSize: chunkSize)
            #expect(small.x == data.x && small.y == data.y, "chunk size \(chunkSize)")
        }

        let wider = try LIBSVMReader.read(path: path, features: 6)
        #expect(wider.features == 6)
        #expect(wider.x.row(1) == [0, 0.001, 0, 4, 0, 0])
    }

    @Test(arguments: [
        ("1 1:1\n-1 0:2\n", "line 2", "feature index 0 is not allowed: indices start at 1"),
        ("1 -3:2\n", "line 1", "feature index -3 is not allowed"),
        ("1 1:1\n1 2:1 5:1 3:1\n", "line 2", "feature indices must increase: 3 after 5"),
        ("1 2:1 2:1\n", "line 1", "feature indices must increase: 2 after 2"),
        ("1 1:1\n1 3\n", "line 2", "'3' is not an index:value pair"),
        ("1 a:1\n", "line 1", "'a' in 'a:1' is not a feature index"),
        ("1 1.5:1\n", "line 1", "'1.5' in '1.5:1' is not a feature index"),
        ("1 1:abc\n", "line 1", "'abc' in '1:abc' is not a number"),
        ("1 1:\n", "line 1", "'' in '1:' is not a number"),
        ("yes 1:1\n", "line 1", "'yes' is not a label"),
        ("1 1:1\n\n1,2 1:1\n", "line 3", "'1,2' is not a label"),
        ("1 1:1\n1 99999999999999999999:1\n", "line 2", "is not a feature index"),
        ("", "line 1", "no data"),
        ("# only a comment\n\n", "line 1", "no data"),
        ("1\n2\n", "line 1", "no index:value pairs"),
    ])
    func refusesMalformedLines(text: String, location: String, says: String) throws {
        let dir = try scratchDirectory()
        let path = try write(text, named: "bad.svm", in: dir)
        let error = dataError { try LIBSVMReader.read(path: path) }
        guard case .malformed(let file, let where_, let message)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(file == path)
        #expect(where_ == location)
        #expect(message.contains(says), "\(message)")
        #expect(error?.description.hasPrefix("\(path):\(location): ") == true)
    }

    @Test func refusesIndexBeyondDeclaredFeatures() throws {
        let dir = try scratchDirectory()
        let path = try write("1 1:1\n1 4:1\n", named: "wide.svm", in: dir)
        let error = dataError { try LIBSVMReader.read(path: path, features: 3) }
        #expect(error == .malformed(file: path, location: "line 2", message: "feature index 4 exceeds the 3 features expected"))
    }

    @Test func refusesAHugeDenseExpansion() throws {
        let dir = try scratchDirectory()
        let path = try write("1 1:1\n1 1:1\n1 2000000000:1\n", named: "huge.svm", in: dir)
        let error = dataError { try LIBSVMReader.read(path: path) }
        guard case .malformed(_, "line 3", let message)? = error else {
            Issue.record("expected .malformed at line 3, got \(String(describing: error))")
            return
        }
        #expect(message.contains("3 × 2000000000"))
    }

    @Test(arguments: [
        ("1 1:nan\n", "line 1, feature 1"),
        ("1 1:1\n1 1:2 7:-inf\n", "line 2, feature 7"),
        ("inf 1:1\n", "line 1, label"),
    ])
    func refusesNonFinite(text: String, location: String) throws {
        let dir = try scratchDirectory()
        let path = try write(text, named: "nan.svm", in: dir)
        #expect(dataError { try LIBSVMReader.read(path: path) } == .nonFinite(file: path, location: location))
    }
}

// MARK: - NPY

@Suite("NPY reader")
struct NPYReaderTests {
    /// `np.save` of `[[1.5, -2.0, 3.25], [4.0, 0.1, -6.5]]` (float64, C order), made by NumPy 1.x/2.x.
    static let numpyFloat64 = bytes(hex: "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000f83f00000000000000c00000000000000a4000000000000010409a9999999999b93f0000000000001ac0")
    /// The same array as float32 in Fortran order (`np.asfortranarray(a.astype('<f4'))`).
    static let numpyFortranFloat32 = bytes(hex: "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000c03f00008040000000c0cdcccc3d000050400000d0c0")
    static let values: [Double] = [1.5, -2.0, 3.25, 4.0, 0.1, -6.5]

    @Test func readsNumPyFiles() throws {
        let c = try NPYReader.readArray(bytes: Self.numpyFloat64)
        #expect(c.shape == [2, 3])
        #expect(c.values == Self.values)
        let f = try NPYReader.readArray(bytes: Self.numpyFortranFloat32)
        #expect(f.shape == [2, 3])
        #expect(f.values == Self.values.map { Double(Float($0)) })

        let data = try NPYReader.readDataset(bytes: Self.numpyFloat64, target: nil)
        #expect(data.x == matrix([[1.5, -2], [4, 0.1]]))
        #expect(data.y == [3.25, -6.5])
        let byFirst = try NPYReader.readDataset(bytes: Self.numpyFortranFloat32, target: "0")
        #expect(byFirst.x == matrix([[-2, 3.25], [Double(Float(0.1)), -6.5]]))
        #expect(byFirst.y == [1.5, 4])
    }

    @Test func writerMatchesNumPyByteForByte() throws {
        #expect(try NPYWriter.encode(shape: [2, 3], values: Self.values) == Self.numpyFloat64)
        #expect(try NPYWriter.encode(shape: [2, 3], values: Self.values, dtype: .float32, fortranOrder: true)
                == Self.numpyFortranFloat32)
    }

    struct Layout: CustomTestStringConvertible, Sendable {
        var dtype: NPYWriter.DType
        var fortran: Bool
        var shape: [Int]
        var testDescription: String { "\(dtype.rawValue) \(fortran ? "F" : "C") \(shape)" }
    }

    @Test(arguments: [NPYWriter.DType.float64, .float32, .int64, .int32], [false, true])
    func roundTrips(dtype: NPYWriter.DType, fortran: Bool) throws {
        for shape in [[4, 3], [1, 5], [0, 3], [7], [2, 3, 4], []] {
            let count = shape.reduce(1, *)
            let values = (0..<count).map { Double($0 * 7 % 11) - 5 + (dtype == .int32 || dtype == .int64 ? 0 : 0.5) }
            let encoded = try NPYWriter.encode(shape: shape, values: values, dtype: dtype, fortranOrder: fortran)
            #expect(encoded.count % 1 == 0)
            let headerEnd = encoded.count - count * (dtype == .float32 || dtype == .int32 ? 4 : 8)
            #expect(headerEnd % 64 == 0, "header padded to 64 bytes for \(shape)")
            let read = try NPYReader.readArray(bytes: encoded)
            #expect(read.shape == shape)
            #expect(read.values == values, "\(shape)")
        }
    }

    @Test func readsVersion2And3Headers() throws {
        for major: UInt8 in [2, 3] {
            let file = npy(descr: "<f8", shape: "(2, 3)", payload: littleEndian(Self.values), major: major)
            let read = try NPYReader.readArray(bytes: file)
            #expect(read.shape == [2, 3] && read.values == Self.values)
        }
    }

    @Test func readsIntegerAndOddHeaders() throws {
        let ints: [Int32] = [1, -2, 3, 4, 5, -6]
        let payload = ints.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
        let i4 = try NPYReader.readDataset(bytes: npy(descr: "<i4", shape: "(3, 2)", payload: payload))
        #expect(i4.x == matrix([[1], [3], [5]]) && i4.y == [-2, 4, -6])
        // Double quotes, Python-2 longs, extra spaces: still a header NumPy would accept.
        let odd = npy(descr: "", shape: "", payload: littleEndian([1, 2]),
                      headerOverride: "{ \"shape\" : (1L,2L) , \"fortran_order\":False,\"descr\":\"<f8\"}")
        let read = try NPYReader.readArray(bytes: odd)
        #expect(read.shape == [1, 2] && read.values == [1, 2])
        let bytes = try NPYReader.readArray(bytes: npy(descr: "|u1", shape: "(3,)", payload: [0, 7, 255]))
        #expect(bytes.values == [0, 7, 255])
    }

    @Test func readsFeaturesAndTargetsApart() throws {
        let dir = try scratchDirectory()
        let xPath = dir + "/X.npy", yPath = dir + "/y.npy"
        try NPYWriter.write(shape: [3, 2], values: [1, 2, 3, 4, 5, 6], fortranOrder: true, to: xPath)
        try NPYWriter.write(shape: [3], values: [7, 8, 9], dtype: .float32, to: yPath)
        let data = try NPYReader.readDataset(features: xPath, targets: yPath)
        #expect(data.x == matrix([[1, 2], [3, 4], [5, 6]]))
        #expect(data.y == [7, 8, 9])

        try NPYWriter.write(shape: [2], values: [7, 8], to: yPath)
        let error = dataError { try NPYReader.readDataset(features: xPath, targets: yPath) }
        #expect(error == .invalid("\(xPath) has 3 rows but \(yPath) has 2 targets"))
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        var name: String
        var bytes: [UInt8]
        var target: String? = nil
        var location: String?
        var says: String
        var testDescription: String { name }
    }

    static let bad: [Bad] = {
        let good = npy(descr: "<f8", shape: "(2, 3)", payload: littleEndian(values))
        return [
            Bad(name: "empty file", bytes: [], location: "byte 0", says: "the file is empty"),
            Bad(name: "bad magic", bytes: Array("PK\u{3}\u{4}0000000000".utf8), location: "byte 0",
                says: "not an NPY file: expected the magic string \\x93NUMPY, found bytes 50 4b 03 04"),
            Bad(name: "truncated preamble", bytes: Array(good.prefix(7)), location: "byte 7", says: "the header is truncated"),
            Bad(name: "truncated length", bytes: Array(good.prefix(9)), location: "byte 9", says: "the header is truncated"),
            Bad(name: "truncated header", bytes: Array(good.prefix(50)), location: "byte 50",
                says: "the header is truncated: expected 118 header bytes from byte 10, the file ends at byte 50"),
            Bad(name: "unknown version", bytes: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 4, 0, 0, 0], location: "byte 6",
                says: "unsupported NPY format version 4.0"),
            Bad(name: "data shorter than the shape", bytes: Array(good.dropLast(8)), location: "byte 128",
                says: "the data is truncated: shape (2, 3) of '<f8' needs 48 bytes, found 40"),
            Bad(name: "bytes after the data", bytes: good + [0, 0, 0], location: "byte 176",
                says: "3 bytes follow the data that shape (2, 3) of '<f8' describes"),
            Bad(name: "big-endian", bytes: npy(descr: ">f8", shape: "(2, 3)", payload: littleEndian(values)),
                location: "byte 20", says: "big-endian dtype '>f8' is not supported; expected little-endian '<f8'"),
            Bad(name: "complex dtype", bytes: npy(descr: "<c16", shape: "(1, 2)", payload: [UInt8](repeating: 0, count: 32)),
                location: "byte 20", says: "unsupported dtype '<c16'; expected float64 ('<f8') or float32 ('<f4')"),
            Bad(name: "half precision", bytes: npy(descr: "<f2", shape: "(1, 2)", payload: [0, 0, 0, 0]),
                location: "byte 20", says: "unsupported dtype '<f2'"),
            Bad(name: "structured dtype", bytes: npy(descr: "", shape: "", payload: [],
                                                     headerOverride: "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }"),
                location: "byte 20", says: "structured or non-string dtype"),
            Bad(name: "missing shape", bytes: npy(descr: "", shape: "", payload: [],
                                                  headerOverride: "{'descr': '<f8', 'fortran_order': False}"),
                location: "byte 10", says: "the header has no 'shape'"),
            Bad(name: "garbled header", bytes: npy(descr: "", shape: "", payload: [],
                                                   headerOverride: "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,)}"),
                location: "byte 44", says: "unexpected text in the header"),
            Bad(name: "negative dimension", bytes: npy(descr: "<f8", shape: "(-1, 2)", payload: []),
                location: "byte 60", says: "'shape' must be a tuple of non-negative integers"),
            Bad(name: "1-D array as a dataset", bytes: npy(descr: "<f8", shape: "(6,)", payload: littleEndian(values)),
                location: "byte 60", says: "expected a 2-D array (rows × columns, the target one of the columns), found shape (6,)"),
            Bad(name: "one column", bytes: npy(descr: "<f8", shape: "(6, 1)", payload: littleEndian(values)),
                location: "byte 60", says: "expected at least 2 columns"),
            Bad(name: "target by name", bytes: good, target: "price", location: nil,
                says: "target 'price' is not a column index; an .npy file has no column names"),
            Bad(name: "target out of range", bytes: good, target: "3", location: nil,
                says: "target column 3 is out of range: the array has 3 columns (0…2)"),
        ]
    }()

    @Test(arguments: bad)
    func refusesMalformedFiles(_ c: Bad) throws {
        let dir = try scratchDirectory()
        let path = try write(bytes: c.bytes, named: "bad.npy", in: dir)
        guard let error = dataError({ try NPYReader.readDataset(path: path, target: c.target) }) else { return }
        #expect(error.description.hasPrefix(path), "\(error)")
        #expect(error.description.contains(c.says), "\(error)")
        if let location = c.location {
            guard case .malformed(_, let where_, _) = error else {
                Issue.record("expected .malformed, got \(error)")
                return
            }
            #expect(where_ == location, "\(error)")
        }
        // The same bytes from memory fail the same way, under the memory name.
        let inMemory = dataError { try NPYReader.readDataset(bytes: c.bytes, source: path, target: c.target) }
        #expect(inMemory == error)
    }

    @Test func refusesNonFiniteWithItsOffset() throws {
        let dir = try scratchDirectory()
        var values = Self.values
        values[4] = .nan
        let path = try write(bytes: npy(descr: "<f8", shape: "(2, 3)", payload: littleEndian(values)), named: "nan.npy", in: dir)
        #expect(dataError { try NPYReader.readDataset(path: path, target: nil) }
                == .nonFinite(file: path, location: "byte 160 (element (1, 1))"))
        // Fortran order: element (0, 2) is the 5th in the file.
        let f = npy(descr: "<f4", fortran: true, shape: "(2, 3)", payload: littleEndian32([1, 2, 3, 4, .infinity, 6]))
        let fPath = try write(bytes: f, named: "inf.npy", in: dir)
        #expect(dataError { try NPYReader.readArray(path: fPath) }
                == .nonFinite(file: fPath, location: "byte 144 (element (0, 2))"))
    }
}

// MARK: - The same data in every format

@Suite("Readers agree")
struct ReaderAgreementTests {
    @Test(arguments: [(1, 1), (5, 3), (40, 7)])
    func sameDataSameDataset(rows: Int, features: Int) throws {
        var x = TestData.matrix(rows: rows, columns: features, seed: UInt64(rows * 100 + features), as: Double.self)
        x.withUnsafeMutableBufferPointer { xs in for k in stride(from: 1, to: xs.count, by: 3) { xs[k] = 0 } }   // sparsity
        let y = TestData.vector(rows, seed: 99, as: Double.self)
        let expected = Dataset(x: x, y: y)

        let dir = try scratchDirectory()
        var csv = (0..<features).map { "f\($0)" }.joined(separator: ",") + ",target\n"
        var svm = ""
        for i in 0..<rows {
            let row = x.row(i)
            csv += row.map { "\($0)" }.joined(separator: ",") + ",\(y[i])\n"
            svm += "\(y[i])" + row.enumerated().filter { $0.element != 0 }.map { " \($0.offset + 1):\($0.element)" }.joined() + "\n"
        }
        let csvPath = try write(csv, named: "data.csv", in: dir)
        let svmPath = try write(svm, named: "data.svm", in: dir)
        let npyPath = dir + "/data.npy"
        try NPYWriter.write(expected, to: npyPath)

        let fromCSV = try CSVReader.read(path: csvPath, target: "target")
        // The last column may be all zeros, which LIBSVM cannot tell from absent: fix the width.
        let fromSVM = try LIBSVMReader.read(path: svmPath, features: features)
        let fromNPY = try NPYReader.readDataset(path: npyPath, target: nil)
        for data in [fromCSV, fromSVM, fromNPY] {
            #expect(data.x == expected.x)
            #expect(data.y == expected.y)
        }
        #expect(fromCSV.featureNames == (0..<features).map { "f\($0)" })

        // Through the loader, chosen by extension, in both precisions.
        for path in [csvPath, svmPath, npyPath] {
            let loaded: Dataset<Double> = try DataLoader.load(.file(path: path, format: nil, target: nil))
            #expect(loaded.y == expected.y)
            #expect(loaded.x.rows == rows)
            let single: Dataset<Float> = try DataLoader.load(.file(path: path, format: nil, target: nil))
            #expect(single.y == expected.y.map { Float($0) })
        }
    }
}
