import Foundation
import Testing
@testable import Shardwise
#if canImport(Glibc)
import Glibc
#endif

// Issue #11, section 3: outputs that destroyed what was there. `--report`, `--json`, `--csv` and
// `--checkpoint` all go through OutputFile; these tests hold it to the issue's cases.

private func scratch() throws -> String {
    let path = NSTemporaryDirectory() + "shardwise-output-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func contents(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}

private func entries(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
}

private func outputError(_ body: () throws -> Void) -> OutputFileError? {
    do {
        try body()
        Issue.record("expected an OutputFileError")
        return nil
    } catch let error as OutputFileError {
        return error
    } catch {
        Issue.record("expected an OutputFileError, got \(error)")
        return nil
    }
}

@Suite("Output files")
struct OutputFileTests {
    @Test("a symbolic link is followed: its target gets the bytes, the link stays a link")
    func symlink() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/real.json"))
        #expect(chmod(dir + "/real.json", 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: "real.json")
        try OutputFile.check(path: dir + "/link.json", option: "--report")
        try OutputFile.writeAtomically("new", to: dir + "/link.json")
        #expect(contents(dir + "/real.json") == "new")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link.json")) == "real.json")
        var info = stat()
        #expect(stat(dir + "/real.json", &info) == 0 && info.st_mode & 0o777 == 0o600, "the file's mode is kept")
        #expect(entries(dir) == ["link.json", "real.json"], "no temporary file is left")
    }

    @Test("a dangling symbolic link creates the file it names")
    func danglingSymlink() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: "made.json")
        try OutputFile.writeAtomically("new", to: dir + "/link.json")
        #expect(contents(dir + "/made.json") == "new")
        #expect(entries(dir) == ["link.json", "made.json"])
    }

    @Test("a hard link is not split: both names see the new bytes")
    func hardLink() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("old, and longer than the new bytes".utf8).write(to: URL(fileURLWithPath: dir + "/a.json"))
        #expect(link(dir + "/a.json", dir + "/b.json") == 0)
        try OutputFile.writeAtomically("new", to: dir + "/b.json")
        #expect(contents(dir + "/a.json") == "new" && contents(dir + "/b.json") == "new")
        var info = stat()
        #expect(stat(dir + "/a.json", &info) == 0 && info.st_nlink == 2)
    }

    @Test("a new file in an existing directory is written whole, with nothing left beside it")
    func newFile() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try OutputFile.check(path: dir + "/r.json", option: "--report")
        #expect(!FileManager.default.fileExists(atPath: dir + "/r.json"), "check creates nothing")
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 3 << 20)
        try OutputFile.writeAtomically(big, to: dir + "/r.json")
        #expect(FileManager.default.contents(atPath: dir + "/r.json")?.count == big.count)
        #expect(entries(dir) == ["r.json"])
    }

    @Test("devices, FIFOs and directories are refused by name, and stay as they were",
          arguments: ["/dev/null", "/dev/full", "fifo", "directory"])
    func notAFile(kind: String) throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var path = kind
        var expected = "a character device"
        if kind == "fifo" {
            path = dir + "/out.json"
            #expect(mkfifo(path, 0o600) == 0)
            expected = "a FIFO"
        } else if kind == "directory" {
            path = dir
            expected = "a directory"
        }
        let atStart = outputError { try OutputFile.check(path: path, option: "--report") }
        #expect(atStart == .notAFile(option: "--report", path: path, kind: expected))
        #expect(atStart?.description == "--report \(path): is \(expected), not a regular file; give the path of a file to write")
        let atEnd = outputError { try OutputFile.writeAtomically("{}", to: path) }
        #expect(atEnd == .notAFile(option: nil, path: path, kind: expected))
        var info = stat()
        #expect(lstat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFREG, "\(path) is still what it was")
    }

    @Test("a file in a missing directory fails the check at start")
    func missingDirectory() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/missing/ck.json"
        let error = outputError { try OutputFile.check(path: path, option: "--checkpoint") }
        #expect(error?.description == "--checkpoint \(path): the directory \(dir)/missing does not exist; create it first")
        try Data().write(to: URL(fileURLWithPath: dir + "/plain"))
        #expect(outputError { try OutputFile.check(path: dir + "/plain/ck.json", option: "--checkpoint") }
                == .noDirectory(option: "--checkpoint", path: dir + "/plain/ck.json", directory: dir + "/plain"))
        #expect(throws: Never.self) { try OutputFile.check(path: nil, option: "--checkpoint") }
    }

    @Test("a temporary file of a process that is gone is removed; a live one's is kept")
    func staleTemporaries() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prefix = OutputFile.temporaryPrefix(of: "out.json")
        let dead = prefix + "99999999.1"               // above any pid_max
        let live = prefix + "\(getppid()).1"           // the test runner's parent is running
        for name in [dead, live] { try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        try OutputFile.writeAtomically("new", to: dir + "/out.json")
        #expect(entries(dir) == [live, "out.json"].sorted())
    }
}
