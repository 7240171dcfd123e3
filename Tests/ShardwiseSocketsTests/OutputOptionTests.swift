import Foundation
import Testing
import _TestSupport
#if canImport(Glibc)
import Glibc
#endif

// Issue #11: output paths are checked when a command starts, not after the work; and the data
// limits that need the real CLI (an environment variable, a whole run) are held here.

/// Runs the binary with `arguments`; returns its exit status and what it printed (stdout + stderr).
/// A 120 s liveness bound kills a run that hangs.
private func shardwise(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    let run = try await ShardwiseBinary.run(arguments, environment: environment)
    if run.timedOut { Issue.record("shardwise \(arguments.joined(separator: " ")) did not finish in 120 s") }
    return (run.status, run.output)
}

private func scratch() throws -> String {
    let path = NSTemporaryDirectory() + "shardwise-cli-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Output options", .spawnsProcesses)
struct OutputOptionTests {
    /// It exited 0 with 202 error lines and no checkpoint.
    @Test("launch --checkpoint into a missing directory fails at start")
    func checkpointMissingDirectory() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/missing/ck.json"
        let (status, output) = try await shardwise(["launch", "--nodes", "2", "--synthetic", "n=200,d=3", "--iterations", "200",
                                              "--checkpoint", path, "--quiet"])
        #expect(status != 0)
        #expect(output.contains("Error: --checkpoint \(path): the directory \(dir)/missing does not exist; create it first"), "\(output)")
        #expect(!output.contains("iterations"), "no training ran: \(output)")
    }

    /// As root, `--report /dev/full` turned the device into a JSON file.
    @Test("train --report /dev/full and --report DIRECTORY are refused before training", arguments: ["/dev/full", "directory"])
    func reportNotAFile(kind: String) async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = kind == "directory" ? dir : kind
        let (status, output) = try await shardwise(["train", "--synthetic", "n=200,d=3", "--iterations", "3", "--quiet", "--report", path])
        #expect(status != 0)
        #expect(output.contains("Error: --report \(path): is \(kind == "directory" ? "a directory" : "a character device"), not a regular file"), "\(output)")
        var info = stat()
        #expect(stat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFREG)
    }

    @Test("train --report through a symbolic link writes the link's target")
    func reportThroughSymlink() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/real.json"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: "real.json")
        let (status, output) = try await shardwise(["train", "--synthetic", "n=200,d=3", "--iterations", "3", "--quiet",
                                              "--report", dir + "/link.json"])
        #expect(status == 0, "\(output)")
        #expect(String(decoding: FileManager.default.contents(atPath: dir + "/real.json") ?? Data(), as: UTF8.self).contains("\"job\""))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link.json")) == "real.json")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["link.json", "real.json"])
    }

    /// A LIBSVM file's width is held to the memory budget, naming the line of the index.
    @Test("a LIBSVM index that makes X too large for the machine is an error naming the file and line")
    func libsvmMemoryBudget() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/big.svm"
        try Data("0 1:1\n1 1:0.5 40000000:1\n".utf8).write(to: URL(fileURLWithPath: path))
        // As CSR (the default, and read so before `--dense` densifies it) X is small, but a model
        // of 40 000 000 entries is not: the width is held to the budget, naming the line.
        let (sparseStatus, sparse) = try await shardwise(["train", "--data", path, "--quiet"], environment: ["SHARDWISE_MEMORY_LIMIT": "100MiB"])
        #expect(sparseStatus != 0)
        #expect(sparse.contains("Error: \(path): eight model vectors of 40000000 float64 (the largest index, 40000000, is on line 2) needs 2.4 GiB, this machine has 100 MiB"), "\(sparse)")
    }
}
