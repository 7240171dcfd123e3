import Foundation
import Synchronization
import Testing
import _TestSupport
@testable import ShardwiseSockets
#if canImport(Glibc)
import Glibc
#endif

/// The nodes `launch` starts must not outlive it.
@Suite("Launcher", .serialized, .spawnsProcesses)
struct LauncherTests {
    /// Children of `pid` (from /proc), alive or not.
    static func children(of pid: Int32) -> [Int32] {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> Int32? in
            guard let p = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? p : nil
        }
    }

    /// Running, sleeping…: not gone and not a zombie.
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    @Test("a node whose launcher is not its parent any more stops at once, saying why")
    func nodeWatchesItsLauncher() async throws {
        #if os(Linux)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lw-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let jobPath = dir.appendingPathComponent("job.json").path
        try JSONEncoder().encode(Jobs.job(.mapReduce, nodes: 2, timeout: 300)).write(to: URL(fileURLWithPath: jobPath))
        // Rank 0 of two, alone: without the watch it would wait 300 s for rank 1.
        var env = ProcessInfo.processInfo.environment
        env[SharedSecret.environmentVariable] = SharedSecret.generate()
        env[LocalLauncher.launcherPIDVariable] = "1"   // not our parent: "the launcher is gone"
        let errors = Lines()
        let start = Date()
        let node = try await ChildProcess.start(try Binary.require(),
            arguments: ["node", "--rank", "0", "--size", "2", "--coordinator", "127.0.0.1:0", "--job", jobPath],
            environment: env) { stream, line in if stream == .standardError { errors.append(line) } }
        let status = try await node.wait()
        let text = errors.text
        #expect(!status.succeeded)
        #expect(text.contains("launcher (pid 1) is gone"), "stderr: \(text)")
        #expect(Date().timeIntervalSince(start) < 100)   // a liveness bound, far below the 300 s
        #endif
    }

    @Test("SIGKILL of the launcher: its nodes stop, long before their timeout")
    func nodesStopWithTheirLauncher() async throws {
        #if os(Linux)
        let launcher = try await ChildProcess.start(try Binary.require(),
            arguments: ["launch", "--nodes", "2", "--strategy", "mapreduce", "--solver", "gd", "--synthetic", "n=2000,d=10,seed=3",
                        "--iterations", "100000000", "--tolerance", "0", "--timeout", "120"],
            environment: ProcessInfo.processInfo.environment) { _, _ in }
        let pid = launcher.pid
        var nodes: [Int32] = []
        for _ in 0..<300 where nodes.count < 2 {
            try await Task.sleep(nanoseconds: 50_000_000)
            nodes = Self.children(of: pid).filter(Self.isRunning)
        }
        try #require(nodes.count == 2, "launch started \(nodes.count) nodes")
        try await Task.sleep(nanoseconds: 500_000_000)   // training
        launcher.kill()
        #expect(try await launcher.wait() == .signaled(SIGKILL))
        let killed = Date()
        // Their receive timeout is 120 s; the watch notices within 0.2 s (more on a loaded machine).
        while nodes.contains(where: Self.isRunning), Date().timeIntervalSince(killed) < 60 {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let alive = nodes.filter(Self.isRunning)
        for p in alive { kill(p, SIGKILL) }
        #expect(alive.isEmpty, "nodes \(alive) outlived their launcher by a minute")
        #endif
    }

    /// The libdispatch use-after-free this guards against: FileHandle's readability callback on a
    /// child's pipe, when the child exits, crashed `launch` with SIGSEGV in
    /// `_dispatch_event_loop_drain` — in about 8 runs of 10 once freed memory is poisoned (tcache
    /// off, so a freed block is reused and scribbled at once). Twenty clean runs in a row would
    /// have had a chance of about 1e-14 before the fix.
    @Test("launch --nodes 3, 20 times with freed memory poisoned: every run exits 0")
    func launchSurvivesPoisonedFrees() async throws {
        var env = ProcessInfo.processInfo.environment
        env["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=0"
        env["MALLOC_PERTURB_"] = "165"
        let binary = try Binary.require()
        for run in 1...20 {
            let errors = Lines()
            let launch = try await ChildProcess.start(binary,
                arguments: ["launch", "--nodes", "3", "--synthetic", "n=2000,d=10,seed=1", "--iterations", "20",
                            "--timeout", "60", "--quiet"],
                environment: env) { stream, line in if stream == .standardError { errors.append(line) } }
            let status = try await launch.wait()
            try #require(status == .exited(0), "run \(run) of 20: \(status)\n\(errors.text)")
        }
    }
}

/// Lines gathered from a child's output (appended from its reader tasks).
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    var text: String { all.joined(separator: "\n") }
}

/// The one way Shardwise starts child processes (no libdispatch pipe sources).
@Suite("ChildProcess", .spawnsProcesses)
struct ChildProcessTests {
    static let environment = ProcessInfo.processInfo.environment

    static func sh(_ script: String, _ lines: Lines) async throws -> ChildProcess {
        try await ChildProcess.start("/bin/sh", arguments: ["-c", script], environment: environment) { stream, line in
            lines.append("\(stream == .standardOutput ? "out" : "err"): \(line)")
        }
    }

    @Test("both streams line by line, the unterminated last line too, and the exit code")
    func linesAndExitCode() async throws {
        let lines = Lines()
        let child = try await Self.sh("echo one; echo two >&2; echo three; printf last; exit 3", lines)
        #expect(try await child.wait() == .exited(3))
        #expect(child.status == .exited(3))
        let all = lines.all
        #expect(all.filter { $0.hasPrefix("out: ") } == ["out: one", "out: three", "out: last"])
        #expect(all.filter { $0.hasPrefix("err: ") } == ["err: two"])
    }

    @Test("the environment is exactly the one given")
    func environmentIsPassed() async throws {
        let lines = Lines()
        let child = try await ChildProcess.start("/bin/sh", arguments: ["-c", "echo \"$SHARDWISE_CHILD_TEST\"; echo \"[$HOME]\""],
                                                 environment: ["SHARDWISE_CHILD_TEST": "x y"]) { _, line in lines.append(line) }
        #expect(try await child.wait() == .exited(0))
        #expect(lines.all == ["x y", "[]"])
    }

    @Test("kill(): the status says SIGKILL")
    func killIsASignal() async throws {
        let child = try await Self.sh("exec sleep 60", Lines())
        child.kill()
        let status = try await child.wait()
        #expect(status == .signaled(SIGKILL))
        #expect(status.description == "killed by signal 9 (SIGKILL)")
    }

    @Test("a child that closed its output and runs on can still be killed, and is awaited")
    func killAfterOutputClosed() async throws {
        let lines = Lines()
        let child = try await Self.sh("echo closing; exec >&- 2>&-; exec sleep 60", lines)
        for _ in 0..<400 where lines.all.isEmpty { try await Task.sleep(nanoseconds: 10_000_000) }
        try await Task.sleep(nanoseconds: 100_000_000)
        #expect(child.status == nil, "it still runs")
        child.kill()
        #expect(try await child.wait() == .signaled(SIGKILL))
        #expect(lines.all == ["out: closing"])
    }

    @Test("a line without end is cut into 1 MiB pieces, no byte lost")
    func longLineInPieces() async throws {
        let lines = Lines()
        let n = 2 * ChildProcess.maxLineBytes + 12345
        let child = try await Self.sh("head -c \(n) /dev/zero | tr '\\000' a", lines)
        #expect(try await child.wait() == .exited(0))
        let m = ChildProcess.maxLineBytes, prefix = "out: ".count
        #expect(lines.all.map(\.count) == [m + prefix, m + prefix, 12345 + prefix])
    }

    @Test("a missing executable: the error names it")
    func cannotStart() async throws {
        do {
            _ = try await ChildProcess.start("/nonexistent/shardwise", arguments: [], environment: [:]) { _, _ in }
            Issue.record("started a missing executable")
        } catch let error as ChildProcessError {
            #expect("\(error)".hasPrefix("cannot start /nonexistent/shardwise: "), "\(error)")
        }
    }
}
