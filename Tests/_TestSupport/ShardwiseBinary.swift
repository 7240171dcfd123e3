import Foundation
import ShardwiseSockets
import Synchronization
import Testing

/// The built `shardwise` binary, for tests that run it as a user would: found at `$SHARDWISE_BIN`,
/// else beside the test bundle (`.build*/<config>/shardwise`; `swift build` — or `make test` —
/// builds it).
///
/// `run` awaits the child without blocking a thread. That matters: swift-testing runs suites in
/// parallel on the cooperative pool, which has one thread per core (two here), and a test that
/// sat in `waitUntilExit()` or a `usleep` loop held one of them for the whole run — two such
/// tests stalled every other test, and bounds like "fails within 10 s" failed at 25–43 s.
public enum ShardwiseBinary {
    public static let path: String? = {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["SHARDWISE_BIN"], fm.isExecutableFile(atPath: p) { return p }
        var candidates: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for dir in candidates {
            // The test runner is `<config>/ShardwisePackageTests.xctest`; walk up a few levels.
            var d = dir
            for _ in 0..<3 {
                let p = d.appendingPathComponent("shardwise").path
                if fm.isExecutableFile(atPath: p) { return p }
                d = d.deletingLastPathComponent()
            }
        }
        return nil
    }()

    /// The path, or a recorded issue (and a thrown `CancellationError`) saying how to build it.
    public static func require() throws -> String {
        guard let path else {
            Issue.record("the shardwise binary is not built: run `swift build` first (make test does), or set SHARDWISE_BIN")
            throw CancellationError()
        }
        return path
    }

    /// What one run of a command printed and how it ended.
    public struct Run: Sendable {
        /// The exit code, or 128 + the signal that ended it (as a shell reports it).
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// Both streams, line by line in the order they arrived.
        public var output: String
        public var seconds: Double
        /// Whether the liveness bound ran out and the child was killed.
        public var timedOut: Bool
    }

    /// Runs the binary with `arguments` (its environment plus `environment`) and awaits it.
    public static func run(_ arguments: [String], environment: [String: String] = [:], limit: Double = 120) async throws -> Run {
        try await run(executable: try require(), arguments, environment: environment, limit: limit)
    }

    /// Runs `executable` (a path) and awaits it; `limit` seconds is a liveness bound after which
    /// the child is killed (and the run says so), never a speed assertion.
    public static func run(executable: String, _ arguments: [String], environment: [String: String] = [:],
                           limit: Double = 120) async throws -> Run {
        struct Lines { var out: [String] = []; var err: [String] = []; var all: [String] = [] }
        let lines = Mutex(Lines())
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let start = Date()
        let child = try await ChildProcess.start(executable, arguments: arguments, environment: env) { stream, line in
            lines.withLock { l in
                if stream == .standardOutput { l.out.append(line) } else { l.err.append(line) }
                l.all.append(line)
            }
        }
        let timedOut = Atomic<Bool>(false)
        let watchdog = Task {
            try await Task.sleep(nanoseconds: UInt64(limit * 1e9))
            timedOut.store(true, ordering: .relaxed)
            child.kill()
        }
        let status = try await child.wait()
        watchdog.cancel()
        let code: Int32
        switch status {
        case .exited(let c): code = c
        case .signaled(let s): code = 128 + s
        }
        let l = lines.withLock { $0 }
        return Run(status: code, stdout: l.out.joined(separator: "\n"), stderr: l.err.joined(separator: "\n"),
                   output: l.all.joined(separator: "\n"), seconds: Date().timeIntervalSince(start),
                   timedOut: timedOut.load(ordering: .relaxed))
    }
}
