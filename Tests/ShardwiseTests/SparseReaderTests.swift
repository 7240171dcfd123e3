import Foundation
import Testing
@testable import Shardwise
import _TestSupport

// MARK: - Helpers

/// Runs `body` and returns the `DataError` it throws (recording an issue when it throws none).
private func sparseDataError(_ body: () throws -> Any) -> DataError? {
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

private func scratchFile(_ bytes: [UInt8], named name: String) throws -> String {
    let directory = NSTemporaryDirectory() + "shardwise-sparse-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// The committed fixtures, made by scipy (see Tests/Fixtures/README.md).
private func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name).path
}

// MARK: - LIBSVM into CSR

@Suite("LIBSVM reader, sparse path")
struct LIBSVMSparseTests {
    let text = """
    # a comment line
    +1 1:0.5 3:-2 # trailing comment
    -1 qid:7 2:1e-3 4:4

    -1 \t 4:1.5\r
    1
    """

    @Test("reads CSR that never densifies, the same rows as the dense path")
    func readsCSR() throws {
        let path = try scratchFile(Array(text.utf8), named: "good.svm")
        let (data, labels) = try LIBSVMReader.readSparse(path: path)
        #expect(labels == .unchanged)
        #expect(data.y == [1, -1, -1, 1])
        #expect(data.rowLines == [2, 3, 5, 6])
        #expect(data.source == path)
        #expect(data.x.rowOffsets == [0, 2, 4, 5, 5])
        #expect(data.x.columnIndices == [0, 2, 1, 3, 3])
        #expect(data.x.values == [0.5, -2, 0.001, 4, 1.5])
        #expect(data.features == 4)
        let dense = try LIBSVMReader.read(path: path)
        #expect(try data.x.dense() == dense.x)
        #expect(data.location(ofRow: 2) == "line 5")

        for chunkSize in [1, 3, 16] {
            let small = try LIBSVMReader.parseSparse(source: MemoryBytes(Array(text.utf8)), name: path, features: nil,
                                                     labels: .keep, as: Double.self, chunkSize: chunkSize)
            #expect(small.data.x == data.x && small.data.y == data.y, "chunk size \(chunkSize)")
        }
        let wider = try LIBSVMReader.parseSparse(text: text, features: 9)
        #expect(wider.data.features == 9 && wider.data.x.values == data.x.values)
        let single = try LIBSVMReader.parseSparse(text: text, as: Float.self)
        #expect(single.data.x.values == data.x.values.map { Float($0) } && single.data.y == [1, -1, -1, 1])
    }

    @Test("−1/+1 labels map to 0/1 when asked, and the result says so")
    func mapsSignedLabels() throws {
        let (data, labels) = try LIBSVMReader.parseSparse(text: text, labels: .signedToBinary)
        #expect(labels == .signedToBinary(negatives: 2, positives: 2))
        #expect(data.y == [1, 0, 0, 1])
        #expect(labels.description.contains("−1/+1 mapped to 0/1"))
        try data.validateTargets(for: .logistic(lambda: 0))
        // Kept when not asked, and refused by logistic regression naming the line, with the hint.
        let kept = try LIBSVMReader.parseSparse(text: text)
        let error = sparseDataError { try kept.data.validateTargets(for: .logistic(lambda: 0)) }
        #expect(error?.description.contains("memory:line 3: label -1 is not 0 or 1") == true, "\(String(describing: error))")
        #expect(error?.description.contains("map −1 to 0") == true)
        // Labels that are not exactly −1/+1 are left alone.
        for other in ["0 1:1\n1 1:2\n", "1 1:1\n1 1:2\n", "-1 1:1\n2 1:2\n", "-1 1:1\n0.5 1:2\n"] {
            var (d, change) = try LIBSVMReader.parseSparse(text: other, labels: .signedToBinary)
            #expect(change == .unchanged, "\(other)")
            let plain = try LIBSVMReader.parseSparse(text: other)
            #expect(d.y == plain.data.y)
            #expect(LabelMapping.keep.apply(to: &d.y) == .unchanged)
        }
    }

    @Test("bad lines are refused naming the file and line, as on the dense path",
          arguments: [
            ("1 1:1\n1 2:1 5:1 3:1\n", "line 2", "feature indices must increase: 3 after 5"),
            ("1 1:1\n-1 0:2\n", "line 2", "feature index 0 is not allowed"),
            ("1 1:1\n1 3000000000:1\n", "line 2", "feature index 3000000000 is too large"),
            ("1 1:abc\n", "line 1", "'abc' in '1:abc' is not a number"),
            ("1\n2\n", "line 1", "no index:value pairs"),
          ])
    func refuses(text: String, location: String, says: String) {
        let error = sparseDataError { try LIBSVMReader.parseSparse(text: text, source: "bad.svm") }
        guard case .malformed("bad.svm", let at, let message)? = error else {
            Issue.record("expected .malformed in bad.svm, got \(String(describing: error))")
            return
        }
        #expect(at == location)
        #expect(message.contains(says), "\(message)")
        let beyond = sparseDataError { try LIBSVMReader.parseSparse(text: "1 1:1\n1 4:1\n", source: "w.svm", features: 3) }
        #expect(beyond == .malformed(file: "w.svm", location: "line 2", message: "feature index 4 exceeds the 3 features expected"))
    }

    /// The one-pass parse of plain pairs (`LIBSVMReader.plainPair`) and the general path must read
    /// every value to the same bits, and hand back to the general path whatever is not plain.
    @Test("plain and general pairs parse to the same bits",
          arguments: ["0.1", "-0", "0", "1.", ".5", "-.25", "0.0716524", "123456789012345", "1234567890123456",
                      "0.30000000000000004", "1e-3", "+2", "-7.5E2", "00042.500", "9007199254740993", "3.4028235e38"])
    func plainValues(value: String) throws {
        let parsed = try LIBSVMReader.parseSparse(text: "1 007:\(value) 8:1\n").data
        guard case .value(let expected) = DecimalParser.parse(value) else {
            Issue.record("\(value) is not a number")
            return
        }
        #expect(parsed.x.values[0].bitPattern == expected.bitPattern, "\(value): \(parsed.x.values[0]) vs \(expected)")
        #expect(parsed.x.columnIndices == [6, 7])
        #expect(expected == Double(value)!)
        // Not plain: a sign, an exponent or too many digits fall back; an index of 11 digits too.
        let wide = sparseDataError { try LIBSVMReader.parseSparse(text: "1 00000000009:\(value) 3:1\n", source: "w.svm") }
        #expect(wide == .malformed(file: "w.svm", location: "line 1", message: "feature indices must increase: 3 after 9"))
    }

    @Test("an index that makes the model vectors too large is refused, naming its line")
    func refusesHugeWidth() {
        let error = MemoryBudget.$limit.withValue(2 << 30) {
            sparseDataError { try LIBSVMReader.parseSparse(text: "1 1:1\n1 522222222:1\n", source: "fuzz.svm") }
        }
        #expect(error?.description.contains("fuzz.svm") == true)
        #expect(error?.description.contains("is on line 2") == true, "\(String(describing: error))")
    }
}

// MARK: - scipy .npz

/// A zip archive of stored (uncompressed) members, written the way the format describes, with a
/// CRC-32 computed here bit by bit (not by zlib); with `zip64`, every size and offset in the
/// central directory defers to a Zip64 extra field, and a Zip64 end record is written.
enum StoredZip {
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
        }
        return ~c
    }

    static func cat(_ parts: [UInt8]...) -> [UInt8] { parts.flatMap { $0 } }
    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    static func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8((UInt64(v) >> (8 * UInt64($0))) & 0xFF) } }

    static func archive(_ members: [(String, [UInt8])], zip64: Bool = false, corruptCRC: Bool = false) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, data) in members {
            let offset = out.count, crc = crc32(data) ^ (corruptCRC ? 1 : 0), n = Array(name.utf8)
            let size = UInt32(data.count)
            out += cat(le32(0x0403_4B50), le16(20), le16(0), le16(0), le16(0), le16(0), le32(crc), le32(size), le32(size),
                       le16(n.count), le16(0), n, data)
            let deferred: UInt32 = 0xFFFF_FFFF
            let extra = zip64 ? cat(le16(1), le16(24), le64(data.count), le64(data.count), le64(offset)) : []
            central += cat(le32(0x0201_4B50), le16(45), le16(45), le16(0), le16(0), le16(0), le16(0), le32(crc),
                           le32(zip64 ? deferred : size), le32(zip64 ? deferred : size), le16(n.count), le16(extra.count), le16(0),
                           le16(0), le16(0), le32(0), le32(zip64 ? deferred : UInt32(offset)), n, extra)
        }
        let directoryOffset = out.count
        out += central
        if zip64 {
            let record = out.count
            out += cat(le32(0x0606_4B50), le64(44), le16(45), le16(45), le32(0), le32(0), le64(members.count),
                       le64(members.count), le64(central.count), le64(directoryOffset))
            out += cat(le32(0x0706_4B50), le32(0), le64(record), le32(1))
            out += cat(le32(0x0605_4B50), le16(0), le16(0), le16(0xFFFF), le16(0xFFFF), le32(0xFFFF_FFFF), le32(0xFFFF_FFFF), le16(0))
        } else {
            out += cat(le32(0x0605_4B50), le16(0), le16(0), le16(members.count), le16(members.count),
                       le32(UInt32(central.count)), le32(UInt32(directoryOffset)), le16(0))
        }
        return out
    }

    /// An .npy holding one byte string, as scipy writes `format.npy` (`|S3`, shape ()).
    static func stringMember(_ text: String) -> [UInt8] {
        var dict = "{'descr': '|S\(text.utf8.count)', 'fortran_order': False, 'shape': (), }"
        dict += String(repeating: " ", count: (64 - (10 + dict.utf8.count + 1) % 64) % 64) + "\n"
        return cat([0x93], Array("NUMPY".utf8), [1, 0], le16(dict.utf8.count), Array(dict.utf8), Array(text.utf8))
    }

    /// The five members of a scipy CSR file.
    static func csr(format: String = "csr", shape: [Double], indptr: [Double], indices: [Double], data: [Double],
                    indexType: NPYWriter.DType = .int32, offsetType: NPYWriter.DType = .int32,
                    dataType: NPYWriter.DType = .float64) throws -> [(String, [UInt8])] {
        [
            ("indices.npy", try NPYWriter.encode(shape: [indices.count], values: indices, dtype: indexType)),
            ("indptr.npy", try NPYWriter.encode(shape: [indptr.count], values: indptr, dtype: offsetType)),
            ("format.npy", stringMember(format)),
            ("shape.npy", try NPYWriter.encode(shape: [2], values: shape, dtype: .int64)),
            ("data.npy", try NPYWriter.encode(shape: [data.count], values: data, dtype: dataType)),
        ]
    }
}

@Suite("scipy .npz reader")
struct NPZReaderTests {
    /// [[0, 1.5, 0, -2, 0], [0, 0, 0, 0, 0], [3.25, 0, 0, 0.5, 0], [0, 0, 7, 0, 0.001]]: the fixtures' matrix.
    let expected = try! CSRMatrix<Double>(rows: 4, columns: 5, rowOffsets: [0, 2, 2, 4, 6], columnIndices: [1, 3, 0, 3, 2, 4],
                                          values: [1.5, -2, 3.25, 0.5, 7, 0.001])

    @Test("reads scipy's compressed (deflate) files: int32/float64 and int64/float32")
    func readsScipyFixtures() throws {
        #expect(try NPZReader.readCSR(path: fixture("scipy-csr-small.npz")) == expected)
        let single = try NPZReader.readCSR(path: fixture("scipy-csr-small-f32-i64.npz"), as: Float.self)
        #expect(single == expected.converted(to: Float.self))
    }

    @Test("reads stored archives, with and without Zip64 records, every accepted dtype",
          arguments: [false, true])
    func readsStored(zip64: Bool) throws {
        for (offsetType, indexType, dataType) in [(NPYWriter.DType.int32, NPYWriter.DType.int32, NPYWriter.DType.float64),
                                                  (.int64, .int64, .float32), (.int64, .int32, .float64)] {
            let members = try StoredZip.csr(shape: [4, 5], indptr: [0, 2, 2, 4, 6], indices: [1, 3, 0, 3, 2, 4],
                                            data: [1.5, -2, 3.25, 0.5, 7, 0.001], indexType: indexType,
                                            offsetType: offsetType, dataType: dataType)
            let bytes = StoredZip.archive(members, zip64: zip64)
            let x = try NPZReader.readCSR(bytes: bytes, source: "x.npz", as: Double.self)
            let want = dataType == .float32 ? expected.converted(to: Float.self).converted(to: Double.self) : expected
            #expect(x == want, "\(offsetType) \(indexType) \(dataType)")
            // And from a file.
            #expect(try NPZReader.readCSR(path: scratchFile(bytes, named: "x.npz"), as: Double.self) == want)
        }
    }

    @Test("an unsorted row is sorted; a repeated column is refused naming indices.npy and the row")
    func rowsAreValidated() throws {
        let unsorted = try StoredZip.csr(shape: [2, 4], indptr: [0, 1, 3], indices: [2, 3, 0], data: [1, 2, 3])
        let x = try NPZReader.readCSR(bytes: StoredZip.archive(unsorted), as: Double.self)
        #expect(x.columnIndices == [2, 0, 3] && x.values == [1, 3, 2])
        let twice = try StoredZip.csr(shape: [2, 4], indptr: [0, 1, 3], indices: [2, 3, 3], data: [1, 2, 3])
        #expect(sparseDataError { try NPZReader.readCSR(bytes: StoredZip.archive(twice), source: "d.npz", as: Double.self) }
                == .malformed(file: "d.npz", location: "indices.npy", message: "row 1 has column 3 twice"))
    }

    @Test("other formats, dtypes and broken archives are refused, naming the file and member",
          arguments: [
            ("csc", "format.npy", "stored as 'csc'; only CSR"),
            ("int data", "data.npy", "dtype '<i8' is not supported; expected float32"),
            ("float indices", "indices.npy", "dtype '<f8' is not supported; expected int32"),
            ("short indptr", "indptr.npy", "expected rows + 1 = 3 row offsets, found 2"),
            ("bad offsets", "indptr.npy", "row 1 ends before it starts"),
            ("column too large", "indices.npy", "row 1 has column index 9, outside 0..<4"),
            ("missing data", "data.npy", "missing: a scipy sparse .npz holds"),
            ("corrupt", "format.npy", "CRC-32 mismatch"),
          ])
    func refuses(kind: String, member: String, says: String) throws {
        var shape: [Double] = [2, 4], indptr: [Double] = [0, 1, 3], indices: [Double] = [2, 0, 3], data: [Double] = [1, 2, 3]
        var format = "csr", dataType = NPYWriter.DType.float64, indexType = NPYWriter.DType.int32
        switch kind {
        case "csc": format = "csc"
        case "int data": dataType = .int64
        case "float indices": indexType = .float64
        case "short indptr": indptr = [0, 3]
        case "bad offsets": indptr = [0, 3, 1]; shape = [2, 4]
        case "column too large": indices = [2, 0, 9]
        default: break
        }
        var members = try StoredZip.csr(format: format, shape: shape, indptr: indptr, indices: indices, data: data,
                                        indexType: indexType, dataType: dataType)
        if kind == "missing data" { members.removeLast() }
        let bytes = StoredZip.archive(members, corruptCRC: kind == "corrupt")
        let error = sparseDataError { try NPZReader.readCSR(bytes: bytes, source: "m.npz", as: Double.self) }
        guard case .malformed(let file, let at, let message)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(file == "m.npz")
        #expect(at == member)
        #expect(message.contains(says), "\(message)")
    }

    @Test("scipy's csc file is refused by name; a file that is not a zip is refused")
    func refusesFiles() throws {
        let csc = sparseDataError { try NPZReader.readCSR(path: fixture("scipy-csc-small.npz"), as: Double.self) }
        #expect(csc?.description.contains("scipy-csc-small.npz:format.npy: the matrix is stored as 'csc'") == true)
        let text = sparseDataError { try NPZReader.readCSR(bytes: Array(String(repeating: "1 1:1\n", count: 10).utf8), as: Double.self) }
        #expect(text?.description.contains("no end-of-central-directory record") == true)
        // A deflate member cut short: the scipy fixture with its end record kept but data removed.
        let raw = try Data(contentsOf: URL(fileURLWithPath: fixture("scipy-csr-small.npz")))
        var cut = Array(raw)
        cut.replaceSubrange(60..<80, with: [UInt8](repeating: 0, count: 20))
        #expect(sparseDataError { try NPZReader.readCSR(bytes: cut, source: "cut.npz", as: Double.self) } != nil)
    }
}
