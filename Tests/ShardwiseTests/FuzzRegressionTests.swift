import Shardwise
import Testing

/// Inputs found by the libFuzzer harnesses (`Fuzz/`, `make fuzz`), kept as tests. Each asserts a
/// clean thrown error.
@Suite struct ReaderFuzzRegressionTests {
    /// FuzzLIBSVM-oom-a4512bda… (`Fuzz/Findings/`): 44 bytes of LIBSVM naming feature 522 222 222
    /// make the reader allocate a dense 1 × 522 222 222 matrix (4.2 GB, `LIBSVMReader.swift:138`,
    /// `Matrix(rows:columns:)`) before anything refuses it. The width must be checked before the
    /// allocation (a dimension limit, or `MemoryBudget`), with an error naming the file and line.
    static let hugeIndex: [UInt8] = [49, 32, 53, 50, 50, 50, 50, 50, 50, 50, 50, 58, 51, 32, 35, 50, 50, 50, 50, 50, 50,
                                     50, 191, 50, 126, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 48,
                                     75, 49, 58]

    /// FuzzLIBSVM-oom-09c5bbc9…: the same with feature 522 212 224 in a well-formed file of two lines.
    static let hugeIndexTwoLines: [UInt8] = [49, 32, 53, 50, 50, 50, 49, 50, 50, 50, 52, 58, 49, 101, 45, 51, 10, 32, 50, 32]

    /// Under libFuzzer's 2 GiB limit the reader must refuse before it allocates, naming the need.
    @Test(arguments: [hugeIndex, hugeIndexTwoLines])
    func libsvmHugeIndexIsRefusedBeforeAllocating(_ bytes: [UInt8]) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        let error = try #require(throws: DataError.self) {
            try MemoryBudget.$limit.withValue(2 << 30) { try LIBSVMReader.parse(text: text, source: "fuzz") }
        }
        #expect("\(error)".contains("(the largest index, 5222"), "\(error)")
        #expect("\(error)".contains("this machine has 2.0 GiB"), "\(error)")
    }
}
