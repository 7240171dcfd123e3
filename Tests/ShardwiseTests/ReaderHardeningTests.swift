import Foundation
import Testing
@testable import Shardwise
#if canImport(Glibc)
import Glibc
#endif

// Issue #11, section 2: inputs that crashed, hung or took the machine's memory. Each case names
// the file and the line (or byte) in its error, and is refused before anything large is allocated.

private func scratch() throws -> String {
    let path = NSTemporaryDirectory() + "shardwise-hardening-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func file(_ text: String, _ name: String, in dir: String) throws -> String {
    let path = dir + "/" + name
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return path
}

/// The message of the error `body` throws (recording an issue when it throws none).
private func message(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        Issue.record("expected an error, got a result")
        return ""
    } catch {
        return "\(error)"
    }
}

/// A source that counts the bytes handed out, to show a reader stops at the first bad line.
private final class CountingSource: ChunkSource {
    let inner: ReaderFile
    var bytes = 0
    init(_ inner: ReaderFile) { self.inner = inner }
    var knownSize: Int? { inner.knownSize }
    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.readSome(into: buffer)
        bytes += n
        return n
    }
}

/// Writes `head`, then `repeating` until the file holds about `megabytes` MiB.
private func bigFile(head: String, repeating line: String, megabytes: Int, in dir: String, name: String) throws -> String {
    let path = dir + "/" + name
    FileManager.default.createFile(atPath: path, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.write(contentsOf: Data(head.utf8))
    let block = Data(String(repeating: line, count: max(1, (1 << 20) / line.utf8.count)).utf8)
    for _ in 0..<megabytes { try handle.write(contentsOf: block) }
    return path
}

@Suite("Reader hardening")
struct ReaderHardeningTests {
    // MARK: NPY: the header's shape against the file's size

    /// A header claiming (50, 40000000000) in a 1.7 KB file aborted in the allocator.
    @Test("an .npy header claiming more than the file holds is refused before allocating", arguments: ["dataset", "array"])
    func npyHeaderBomb(entry: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (50, 40000000000), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        let n = header.utf8.count
        let bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(n & 0xFF), UInt8(n >> 8)]
            + Array(header.utf8) + [UInt8](repeating: 0, count: 1600)
        let path = dir + "/bomb.npy"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let text = message {
            if entry == "dataset" { return try NPYReader.readDataset(path: path, target: nil) as Any }
            return try NPYReader.readArray(path: path) as Any
        }
        #expect(text.hasPrefix(path + ":byte 128:"), "\(text)")
        #expect(text.contains("shape (50, 40000000000)") && text.contains("needs 16000000000000 bytes")
                && text.contains("found 1600"), "\(text)")
    }

    // MARK: LIBSVM and the LAPACK reference

    /// OpenBLAS's ?ger overruns its 128 MiB buffer on a row longer than 16.7M doubles (SIGSEGV).
    @Test("the LAPACK reference refuses a matrix wider than OpenBLAS can take, before any copy")
    func lapackWideMatrix() throws {
        let x = Matrix<Double>(rows: 1, columns: 17_000_000)
        let text = message { try LeastSquares.solve(x: x.view, y: [1.0][...]) }
        #expect(text.contains("the LAPACK reference for X of 1 × 17000000 has 17000000 columns"), "\(text)")
        #expect(text.contains("at most \(LeastSquares.maxColumns(Double.self))"), "\(text)")
    }

    @Test("the workspace check names the source and each limit")
    func workspaceLimits() {
        let wide = message { try LeastSquares.checkWorkspace(rows: 2, columns: 40_000_000, as: Double.self, what: "big.svm") }
        #expect(wide.hasPrefix("big.svm: the LAPACK reference for X of 2 × 40000000 has 40000000 columns"), "\(wide)")
        let huge = message { try LeastSquares.checkWorkspace(rows: 3_000_000, columns: 1_000, as: Double.self, what: "x.csv") }
        #expect(huge.contains("beyond LAPACK's 32-bit indices"), "\(huge)")
        #expect(throws: Never.self) { try LeastSquares.checkWorkspace(rows: 1000, columns: 10, as: Double.self, what: "ok") }
    }

    /// The 30-byte LIBSVM file with index 40000000 segfaulted in the reference; here the same
    /// path (PreparedProblem) with a width just past the limit fails first, naming the file.
    /// LIBSVM trains as CSR by default now (its reference is Krylov, with no LAPACK limit): the
    /// LAPACK path is the densified one, `dense`.
    @Test("a LIBSVM file whose largest index is past LAPACK's limit fails before the reference, naming the file")
    func libsvmWideReference() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try file("1 1:0.5 17000000:1\n", "wide.svm", in: dir)
        var job = Job(data: .file(path: path, format: nil, target: nil))
        job.stopping = StoppingRule(maxIterations: 1)
        job.dense = true
        let text = message { try PreparedProblem<Double>(job: job) }
        #expect(text.hasPrefix(path + ": the LAPACK reference for X of 1 × 17000000"), "\(text)")
        #expect(text.contains("--no-reference"), "\(text)")
    }

    // MARK: Logistic regression needs 0/1 labels

    @Test("logistic regression refuses labels outside {0, 1}, naming the line", arguments: [
        ("data.svm", "0 1:1\n# a comment\n1 1:2\n\n-1 1:3\n1 1:4\n", "line 5: label -1 is not 0 or 1; logistic regression needs 0/1 labels"),
        ("data.csv", "x,y\n1,0\n\n2,1\n3,2\n", "line 5: label 2 is not 0 or 1; logistic regression needs 0/1 labels"),
    ])
    func logisticLabels(name: String, text: String, expected: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try file(text, name, in: dir)
        var job = Job(data: .file(path: path, format: nil, target: nil))
        job.objective = .logistic(lambda: 0.1)
        job.stopping = StoppingRule(maxIterations: 1)
        let error = message { try PreparedProblem<Double>(job: job) }
        #expect(error.hasPrefix(path + ":" + expected), "\(error)")
        job.objective = .leastSquares
        #expect(throws: Never.self) { try PreparedProblem<Double>(job: job) }
    }

    @Test("rows without a line (arrays, generated data) are named by index; −1/+1 gets a hint")
    func labelsByRow() {
        let data = Dataset<Double>(x: Matrix(rows: 3, columns: 1), y: [0, 1, -1], source: "y.npy")
        let text = message { try data.validateTargets(for: .logistic(lambda: 0)) }
        #expect(text == "y.npy:row 2 (0-based): label -1 is not 0 or 1; logistic regression needs 0/1 labels (for −1/+1 labels, map −1 to 0)")
        #expect(throws: Never.self) { try data.validateTargets(for: .leastSquares) }
    }

    // MARK: Only regular files are read

    @Test("a FIFO, a character device and a directory are refused at once", arguments: ["fifo", "/dev/zero", "directory"])
    func notRegular(kind: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var path = kind
        if kind == "fifo" {
            path = dir + "/data.csv"
            #expect(mkfifo(path, 0o600) == 0)
            // Liveness guard: were the reader to block in open(), a writer comes after 20 s and
            // the test fails on the message instead of hanging.
            let guardPath = path
            Thread.detachNewThread {
                sleep(20)
                let fd = open(guardPath, O_WRONLY | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
        } else if kind == "directory" {
            path = dir
        }
        let text = message { try CSVReader.read(path: path, target: nil) }
        let what = ["fifo": "a FIFO", "/dev/zero": "a character device", "directory": "a directory"][kind]!
        #expect(text == "\(path): cannot read: it is \(what)\(kind == "fifo" ? " (named pipe)" : ""); data must be a regular file"
                + (kind == "directory" ? "" : " (copy a pipe's output to a file first)"), "\(text)")
    }

    // MARK: Streaming: the first bad line without holding the file

    @Test("a 32 MiB file whose line 1 is bad is refused after one chunk", arguments: ["libsvm", "csv"])
    func badFirstLine(format: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = format == "libsvm"
            ? try bigFile(head: "oops 1:1\n", repeating: "1 1:0.5 2:0.25\n", megabytes: 32, in: dir, name: "big.svm")
            : try bigFile(head: "1,2,3\n1,x,3\n", repeating: "1,2,3\n", megabytes: 32, in: dir, name: "big.csv")
        let source = CountingSource(try ReaderFile(path: path))
        let text = message {
            format == "libsvm"
                ? try LIBSVMReader.parse(source: source, name: path, features: nil)
                : try CSVReader.parse(source: source, name: path, target: nil, header: nil, delimiter: nil)
        }
        #expect(text.hasPrefix(path + ":line " + (format == "libsvm" ? "1:" : "2, column 2:")), "\(text)")
        #expect(source.bytes <= 1 << 20, "read \(source.bytes) bytes of \(source.knownSize ?? 0)")
    }

    /// The 2 GB file read whole (6.3 GB RSS) before line 1 was called bad: one record that never
    /// ends. A record is capped; the error comes after the cap, not after the file.
    @Test("an unterminated quote or a file without newlines is refused at the record cap", arguments: ["quote", "no newline"])
    func recordCap(kind: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = kind == "quote"
            ? try bigFile(head: "a,\"b\n", repeating: "1,2\n", megabytes: 24, in: dir, name: "q.csv")
            : try bigFile(head: "1 ", repeating: "1:1 ", megabytes: 24, in: dir, name: "n.svm")
        let source = CountingSource(try ReaderFile(path: path))
        let cap = 4 << 20
        let text = message {
            kind == "quote"
                ? try CSVReader.parse(source: source, name: path, target: nil, header: nil, delimiter: nil, maxRecordBytes: cap)
                : try LIBSVMReader.parse(source: source, name: path, features: nil, maxRecordBytes: cap)
        }
        let expected = kind == "quote"
            ? ":line 1: a quoted field opened on this line is still open after 4.0 MiB; expected a closing '\"'"
            : ":line 1: the line is longer than 4.0 MiB (no newline); is this a text file of records?"
        #expect(text == path + expected, "\(text)")
        #expect(source.bytes <= cap + (1 << 20), "read \(source.bytes) bytes of \(source.knownSize ?? 0)")
    }

    @Test("a binary file is refused at its first NUL byte")
    func binary() throws {
        let text = message { try LIBSVMReader.parse(text: "1 1:1\n\u{0}\u{1}\u{2}", source: "x.bin") }
        #expect(text == "x.bin:byte 6: a NUL byte: this is a binary file, not text (expected UTF-8 text, one record a line)")
    }

    // MARK: CSV header names

    @Test("duplicate CSV header names are refused, naming both columns")
    func duplicateHeader() {
        let text = message { try CSVReader.parse(text: "a,b,a,y\n1,2,3,4\n", source: "d.csv") }
        #expect(text == "d.csv:line 1: columns 1 and 3 are both named 'a'; header names must be unique")
    }
}
