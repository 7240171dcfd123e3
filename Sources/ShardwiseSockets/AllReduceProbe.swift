import Foundation
import Shardwise

/// Measurement helpers for the socket benchmarks: a two-process world on loopback where rank 0
/// drives batches of all-reduces and rank 1 follows, plus a raw TCP throughput probe.
///
/// Protocol: rank 0 sends a command (count, algorithm, repetitions) on `commandTag`; both ranks
/// then run `repetitions` all-reduces back to back; a command with count < 0 ends rank 1's loop.
/// Only rank 0's time between the command and the last all-reduce is measured, so the command's
/// own message is outside the measurement.
public enum AllReduceProbe {
    static let commandTag = Tag(77)
    public static let algorithms: [AllReduceAlgorithm] = [.ring, .reduceBroadcast]

    /// Joins a world of `size` ranks at 127.0.0.1:`port` (rank 0 may give port 0 and a port file).
    public static func join(rank: Int, size: Int = 2, port: Int, secret: String, portFile: String? = nil,
                            timeout: Double = 30) async throws -> SocketCommunicator {
        BLASThreading.set(threads: 1)   // two processes share the cores; OpenBLAS's idle threads would spin
        let config = SocketConfiguration(rank: rank, size: size, coordinatorPort: port, secret: try SharedSecret(secret),
                                         jobID: "allreduce-probe", timeout: timeout, portFile: portFile)
        return try await SocketCommunicator.rendezvous(config)
    }

    /// Rank 1: follows rank 0's commands until told to stop.
    public static func follow(_ comm: SocketCommunicator) async throws {
        try await withTaskExecutorPreference(comm.executor) {
            while true {
                let m = try await comm.receive(from: .rank(0), tag: commandTag, timeout: 600)
                let (count, algorithm, reps) = try decodeCommand(m.payload)
                if count < 0 { return }
                var v = [Double](repeating: 1, count: count)
                let codec = CodecSpec.float64.makeCodec()
                for _ in 0..<reps { try await comm.allReduce(&v, algorithm: algorithm, codec: codec) }
            }
        }
    }

    /// Rank 0: seconds per all-reduce of `count` float64 over `reps` repetitions (both ranks).
    public static func measure(_ comm: SocketCommunicator, count: Int, algorithm: AllReduceAlgorithm, repetitions reps: Int) async throws -> Double {
        try await withTaskExecutorPreference(comm.executor) {
            try await comm.send(encodeCommand(count, algorithm, reps), to: 1, tag: commandTag)
            var v = [Double](repeating: 1, count: count)
            let codec = CodecSpec.float64.makeCodec()
            // One warm-up all-reduce is not timed... but it is part of the batch, so run reps + 0.
            let t0 = MonotonicClock.now()
            for _ in 0..<reps { try await comm.allReduce(&v, algorithm: algorithm, codec: codec) }
            let seconds = (MonotonicClock.now() - t0) / Double(reps)
            guard count == 0 || v[0] == Double(1 << reps) || reps > 60 else {
                throw CommunicationError.badPayload("all-reduce gave \(v[0]), expected \(1 << reps)")
            }
            return seconds
        }
    }

    /// Rank 0: tells rank 1 to stop.
    public static func stop(_ comm: SocketCommunicator) async throws {
        try await withTaskExecutorPreference(comm.executor) {
            try await comm.send(encodeCommand(-1, .ring, 0), to: 1, tag: commandTag)
            // Let the loop flush the command before the caller closes.
            try? await comm.loop.scheduleTask(in: .milliseconds(50)) {}.futureResult.get()
        }
    }

    static func encodeCommand(_ count: Int, _ algorithm: AllReduceAlgorithm, _ reps: Int) -> [UInt8] {
        Array("\(count) \(algorithm.rawValue) \(reps)".utf8)
    }

    static func decodeCommand(_ bytes: [UInt8]) throws -> (Int, AllReduceAlgorithm, Int) {
        let f = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        guard f.count == 3, let c = Int(f[0]), let a = AllReduceAlgorithm(rawValue: String(f[1])), let r = Int(f[2]) else {
            throw CommunicationError.badPayload("bad probe command")
        }
        return (c, a, r)
    }

    /// Raw loopback TCP throughput in bytes per second: one thread writes `bytes` through a
    /// 127.0.0.1 connection in 1 MiB writes, another reads them (plain POSIX sockets, no framing).
    public static func rawTCPThroughput(bytes: Int = 1 << 30) -> Double {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a -> Int32 in
                _ = bind(listener, a, len)
                _ = listen(listener, 1)
                return getsockname(listener, a, &len)
            }
        }
        let port = addr.sin_port
        let reader = Thread {
            let c = accept(listener, nil, nil)
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            var got = 0
            while got < bytes {
                let r = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if r <= 0 { break }
                got += r
            }
            close(c)
        }
        reader.start()
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        to.sin_port = port
        _ = withUnsafePointer(to: &to) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let chunk = [UInt8](repeating: 7, count: 1 << 20)
        let t0 = MonotonicClock.now()
        var sent = 0
        while sent < bytes {
            let w = chunk.withUnsafeBytes { send(s, $0.baseAddress, min($0.count, bytes - sent), Int32(MSG_NOSIGNAL)) }
            if w <= 0 { break }
            sent += w
        }
        close(s)
        while !reader.isFinished { usleep(100) }
        return Double(sent) / (MonotonicClock.now() - t0)
    }
}

#if canImport(Glibc)
import Glibc
#endif
