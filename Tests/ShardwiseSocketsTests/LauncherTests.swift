import Foundation
import Testing
@testable import ShardwiseSockets
#if canImport(Glibc)
import Glibc
#endif

/// The nodes `launch` starts must not outlive it.
@Suite("Launcher")
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
        try JSONEncoder().encode(Jobs.job(.mapReduce, nodes: 2, timeout: 60)).write(to: URL(fileURLWithPath: jobPath))
        let node = Process()
        node.executableURL = URL(fileURLWithPath: try Binary.require())
        // Rank 0 of two, alone: without the watch it would wait 60 s for rank 1.
        node.arguments = ["node", "--rank", "0", "--size", "2", "--coordinator", "127.0.0.1:0", "--job", jobPath]
        var env = ProcessInfo.processInfo.environment
        env[SharedSecret.environmentVariable] = SharedSecret.generate()
        env[LocalLauncher.launcherPIDVariable] = "1"   // not our parent: "the launcher is gone"
        node.environment = env
        let errors = Pipe()
        node.standardError = errors
        let start = Date()
        try node.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        node.waitUntilExit()
        #expect(node.terminationStatus != 0)
        #expect(text.contains("launcher (pid 1) is gone"), "stderr: \(text)")
        #expect(Date().timeIntervalSince(start) < 10)
        #endif
    }

    @Test("SIGKILL of the launcher: its nodes stop, long before their timeout")
    func nodesStopWithTheirLauncher() async throws {
        #if os(Linux)
        let launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: try Binary.require())
        launcher.arguments = ["launch", "--nodes", "2", "--strategy", "mapreduce", "--synthetic", "n=2000,d=10,seed=3",
                              "--iterations", "100000000", "--tolerance", "0", "--timeout", "120"]
        launcher.standardOutput = FileHandle.nullDevice
        launcher.standardError = FileHandle.nullDevice
        try launcher.run()
        let pid = launcher.processIdentifier
        var nodes: [Int32] = []
        for _ in 0..<300 where nodes.count < 2 {
            try await Task.sleep(nanoseconds: 50_000_000)
            nodes = Self.children(of: pid).filter(Self.isRunning)
        }
        try #require(nodes.count == 2, "launch started \(nodes.count) nodes")
        try await Task.sleep(nanoseconds: 500_000_000)   // training
        kill(pid, SIGKILL)
        launcher.waitUntilExit()
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
}
