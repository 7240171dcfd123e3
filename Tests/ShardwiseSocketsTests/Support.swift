import Foundation
import Shardwise
import Testing
import _TestSupport
@testable import ShardwiseSockets
#if canImport(Glibc)
import Glibc
#endif

/// The `shardwise` binary these tests start (see `ShardwiseBinary`).
enum Binary {
    static var path: String? { ShardwiseBinary.path }
    static func require() throws -> String { try ShardwiseBinary.require() }
}

/// Small problems, so that each run takes a second or two in a debug build.
enum Jobs {
    static func job(_ kind: StrategyKind, nodes: Int, iterations: Int = 3000, timeout: Double = 20) -> Job {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 2000, features: 10, noise: 0.1, condition: 3, seed: 11)))
        job.nodes = nodes
        job.strategy.kind = kind
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: 1e-10)
        job.timeout = timeout
        return job
    }

    static func launcher(_ extra: (inout LocalLauncher) -> Void = { _ in }) throws -> LocalLauncher {
        var l = LocalLauncher(executable: try Binary.require())
        l.forwardLogs = ProcessInfo.processInfo.environment["SHARDWISE_TEST_LOGS"] != nil
        extra(&l)
        return l
    }

    /// Runs the job on the threads backend through the binary (`train --backend threads`).
    static func threads(_ job: Job) async throws -> TrainingReport {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shardwise-test-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let jobPath = dir.appendingPathComponent("job.json").path, reportPath = dir.appendingPathComponent("r.json").path
        try JSONEncoder().encode(job).write(to: URL(fileURLWithPath: jobPath))
        let run = try await ShardwiseBinary.run(["train", "--backend", "threads", "--job", jobPath, "--report", reportPath, "--quiet"])
        guard run.status == 0, let data = FileManager.default.contents(atPath: reportPath) else {
            throw SocketError.runFailed("threads run failed (\(run.status)): \(run.stderr)")
        }
        return try JSONDecoder().decode(TrainingReport.self, from: data)
    }
}

/// A hostile or broken peer: raw POSIX TCP on 127.0.0.1 — a client that connects, or (with
/// `init(accepted:)`) the far side of a connection a fake coordinator accepted.
final class RawClient {
    let fd: Int32

    init(accepted fd: Int32) {
        self.fd = fd
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw SocketError.configuration("connect failed: \(errno)") }
    }

    deinit { Glibc.close(fd) }

    func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads one frame (or nil on close / timeout / garbage).
    func readFrame() -> Frame? {
        func read(_ n: Int) -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: n)
            var got = 0
            while got < n {
                let r = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, n - got, 0) }
                if r <= 0 { return nil }
                got += r
            }
            return out
        }
        guard let header = read(FrameHeader.size) else { return nil }
        let length = Int(UInt32(header[12]) << 24 | UInt32(header[13]) << 16 | UInt32(header[14]) << 8 | UInt32(header[15]))
        guard length < 1 << 20, let payload = read(length) else { return nil }
        return try? Frame.decode(header + payload)
    }

    /// Whether the peer closed the connection (reads until EOF, within the receive timeout).
    func closedByPeer() -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<100 {
            let r = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            if r == 0 { return true }
            if r < 0 { return false }
        }
        return false
    }
}
