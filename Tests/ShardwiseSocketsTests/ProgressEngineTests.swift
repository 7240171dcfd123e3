import Foundation
import NIOCore
import Shardwise
import Testing
@testable import ShardwiseSockets
#if canImport(Glibc)
import Glibc
#endif

/// The progress engine writes and reads data links itself (see `ProgressEngine`): two nodes in
/// this process, on loopback, exchange messages of every size class — with the engine off, on, and
/// spinning long — and every byte must arrive in order, under the right tag, including messages
/// larger than the socket buffers (partial writes queued, then handed to NIO at the close).
@Suite("Progress engine")
struct ProgressEngineTests {
    /// Deterministic bytes for message `k` of `n` bytes: the reference each receive is checked against.
    static func payload(_ k: Int, _ n: Int) -> [UInt8] {
        var x = UInt64(k) &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    static let sizes = [0, 1, 7, 4000, 65_539, 1 << 20, 4_000_005]

    /// Rank 0 and rank 1 of a two-node world in this process.
    static func world(spin: Double) async throws -> (SocketCommunicator, SocketCommunicator) {
        let secret = try SharedSecret(SharedSecret.generate())
        let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("sw-spin-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: portFile) }
        var c0 = SocketConfiguration(rank: 0, size: 2, coordinatorPort: 0, secret: secret, jobID: "spin", timeout: 20, portFile: portFile)
        c0.spinSeconds = spin
        async let rank0 = SocketCommunicator.rendezvous(c0)
        var port: Int?
        for _ in 0..<2000 where port == nil {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if port == nil { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        var c1 = SocketConfiguration(rank: 1, size: 2, coordinatorPort: try #require(port), secret: secret, jobID: "spin", timeout: 20)
        c1.spinSeconds = spin
        let rank1 = try await SocketCommunicator.rendezvous(c1)
        return (try await rank0, rank1)
    }

    @Test("every size arrives intact and in order, ping-pong and streamed", arguments: [0.0, 200e-6, 0.05])
    func messagesArriveIntact(spin: Double) async throws {
        let (a, b) = try await Self.world(spin: spin)
        // Ping-pong: each side answers what it received, so both receive while the other sends.
        async let echo: Void = withTaskExecutorPreference(b.executor) {
            for (k, n) in Self.sizes.enumerated() {
                let m = try await b.receive(from: .rank(0), tag: Tag(UInt32(k)), timeout: 20)
                try await b.send(m.payload, to: 0, tag: Tag(UInt32(100 + k)))
            }
            // Streamed: many messages back to back, two tags interleaved; the spin reads several
            // frames at once and frames split across reads.
            for k in 0..<200 {
                try await b.send(Self.payload(k, k % 3 == 0 ? 70_001 : 13 * k), to: 0, tag: Tag(UInt32(1000 + k % 2)))
            }
        }
        try await withTaskExecutorPreference(a.executor) {
            for (k, n) in Self.sizes.enumerated() {
                try await a.send(Self.payload(k, n), to: 1, tag: Tag(UInt32(k)))
                let m = try await a.receive(from: .rank(1), tag: Tag(UInt32(100 + k)), timeout: 20)
                #expect(m.payload == Self.payload(k, n), "size \(n)")
            }
            // Tag 1001 first: its messages wait behind tag 1000's in the stream.
            for k in stride(from: 1, to: 200, by: 2) {
                let m = try await a.receive(from: .any, tag: Tag(1001), timeout: 20)
                #expect(m.source == 1 && m.payload == Self.payload(k, k % 3 == 0 ? 70_001 : 13 * k), "message \(k)")
            }
            for k in stride(from: 0, to: 200, by: 2) {
                let m = try await a.receive(from: .rank(1), tag: Tag(1000), timeout: 20)
                #expect(m.payload == Self.payload(k, k % 3 == 0 ? 70_001 : 13 * k), "message \(k)")
            }
        }
        try await echo
        await b.close()
        await a.close()
    }

    @Test("all-reduce of vectors sent from their own memory equals the naive sum",
          arguments: [1, 1000, 1_000_003], [AllReduceAlgorithm.ring, .reduceBroadcast])
    func inPlaceAllReduce(count: Int, algorithm: AllReduceAlgorithm) async throws {
        let (a, b) = try await Self.world(spin: 200e-6)
        let x = (0..<count).map { Double($0 % 1000) * 0.5 + 1 }, y = (0..<count).map { 3 - Double($0 % 777) * 0.25 }
        let xf = x.map(Float.init), yf = y.map(Float.init)
        let codec64 = CodecSpec.float64.makeCodec(), codec32 = CodecSpec.float32.makeCodec()
        async let other: ([Double], [Float]) = withTaskExecutorPreference(b.executor) {
            var v = y, f = yf
            for _ in 0..<3 { v = y; try await b.allReduce(&v, algorithm: algorithm, codec: codec64) }
            try await b.allReduce(&f, algorithm: algorithm, codec: CodecSpec.float32.makeCodec())
            return (v, f)
        }
        let (mine, mineF): ([Double], [Float]) = try await withTaskExecutorPreference(a.executor) {
            var v = x, f = xf
            for _ in 0..<3 { v = x; try await a.allReduce(&v, algorithm: algorithm, codec: codec64) }
            try await a.allReduce(&f, algorithm: algorithm, codec: codec32)
            return (v, f)
        }
        let (theirs, theirsF) = try await other
        // Sums of two terms, exact references: a + b in either order is the same IEEE result.
        #expect(mine == zip(x, y).map { $0 + $1 })
        #expect(theirs == mine)
        #expect(mineF == zip(xf, yf).map { $0 + $1 })
        #expect(theirsF == mineF)
        await b.close()
        await a.close()
    }

    @Test("a vector that starts long after its receive was posted: the node sleeps, then takes it in place",
          arguments: [InPlaceCombine.add, .replace])
    func lateVectorLandsInPlace(_ combine: InPlaceCombine) async throws {
        let (a, b) = try await Self.world(spin: 200e-6)
        let n = 1_000_003
        // Full mantissas: a misplaced byte anywhere inside an entry shows.
        let x = (0..<n).map { sin(Double($0)) * 1e3 + 1 }, y = (0..<n).map { cos(Double($0)) * 1e3 - 2 }
        let codec = CodecSpec.float64.makeCodec()
        let tag = Tag(42)
        // Rank 1 sends its vector only when rank 0 says its first attempt found nothing: the
        // order of events does not depend on the machine's speed.
        async let sent: Void = withTaskExecutorPreference(b.executor) {
            try await b.send([1], to: 0, tag: Tag(41))   // opens the link 1 → 0 before the receive is posted
            _ = try await b.receive(from: .rank(0), tag: Tag(44), timeout: 20)
            try await b.sendVector(y, to: 0, tag: tag, codec: codec)
        }
        let (first, second, result): (InPlaceTransfer, InPlaceTransfer, [Double]) = try await withTaskExecutorPreference(a.executor) {
            _ = try await a.receive(from: .rank(1), tag: Tag(41), timeout: 20)
            var v = x
            let first = try v.withUnsafeMutableBufferPointer {
                try a.sendReceiveInPlace(sending: nil, to: 1, sendTag: tag, receivingInto: $0, combine: combine, from: 1, receiveTag: tag)
            }
            try await a.send([2], to: 1, tag: Tag(44))   // go
            try await a.waitForIncoming(from: 1, tag: tag, timeout: 20)
            let second = try v.withUnsafeMutableBufferPointer {
                try a.sendReceiveInPlace(sending: nil, to: 1, sendTag: tag, receivingInto: $0, combine: combine, from: 1, receiveTag: tag)
            }
            if case .partial(let bytes) = second {   // a stall of over 10 ms inside the frame: the rest is a message
                let rest = (bytes / 8)..<n
                if combine == .add {
                    try await a.receiveVectorAdding(from: .rank(1), tag: tag, codec: codec, into: &v, range: rest)
                } else {
                    try await a.receiveVector(from: .rank(1), tag: tag, codec: codec, into: &v, range: rest)
                }
            }
            return (first, second, v)
        }
        try await sent
        #expect(first == .notStarted)
        // The frame had begun when the wait returned: some of it (on a loaded machine, NIO may
        // have read it all into a message first) or all of it lands in place.
        #expect(second != .notStarted && second != .unsupported)
        #expect(result == (combine == .add ? zip(x, y).map { $0 + $1 } : y))
        await b.close()
        await a.close()
    }

    @Test("an exchange with a late peer sends once, sleeps, and takes the late vector in place")
    func exchangeWithLatePeer() async throws {
        let (a, b) = try await Self.world(spin: 200e-6)
        let n = 400_001
        let x = (0..<n).map { sin(Double($0)) * 1e3 + 1 }, y = (0..<n).map { cos(Double($0)) * 1e3 - 2 }
        let codec = CodecSpec.float64.makeCodec()
        let half = n / 2
        // Each sends its first half to the other and adds the other's first half into its own.
        async let theirs: [Double] = withTaskExecutorPreference(b.executor) {
            try await b.send([1], to: 0, tag: Tag(41))   // opens the link 1 → 0 first
            _ = try await b.receive(from: .rank(0), tag: Tag(40), timeout: 20)
            try await Task.sleep(nanoseconds: 30_000_000)   // late: rank 0 is asleep by now
            var v = y
            try await b.exchangeVector(&v, sending: 0..<half, to: 0, receiving: half..<n, from: 0, tag: Tag(43), combine: .add, codec: codec)
            return v
        }
        let (mine, sentBefore, sentAfter): ([Double], Int, Int) = try await withTaskExecutorPreference(a.executor) {
            try await a.send([1], to: 1, tag: Tag(40))
            _ = try await a.receive(from: .rank(1), tag: Tag(41), timeout: 20)
            let before = a.metrics.snapshot.messagesSent
            var v = x
            try await a.exchangeVector(&v, sending: half..<n, to: 1, receiving: 0..<half, from: 1, tag: Tag(43), combine: .add, codec: codec)
            return (v, before, a.metrics.snapshot.messagesSent)
        }
        let other = try await theirs
        #expect(sentAfter - sentBefore == 1, "the vector is sent once, before the wait")
        #expect(Array(mine[..<half]) == zip(x[..<half], y[..<half]).map { $0 + $1 })
        #expect(Array(mine[half...]) == Array(x[half...]))
        #expect(Array(other[half...]) == zip(x[half...], y[half...]).map { $0 + $1 })
        await b.close()
        await a.close()
    }

    @Test("a socket's descriptor is found by its two addresses")
    func descriptorLookup() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
                _ = bind(listener, a, len)
                _ = listen(listener, 1)
                _ = getsockname(listener, a, &len)
            }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) }
        }
        try #require(connected == 0)
        let server = accept(listener, nil, nil)
        defer { close(server) }
        var local = sockaddr_in(), peer = sockaddr_in()
        var l1 = len, l2 = len
        withUnsafeMutablePointer(to: &local) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(client, $0, &l1) } }
        withUnsafeMutablePointer(to: &peer) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getpeername(client, $0, &l2) } }
        // The client end and the server end have the same two addresses, swapped.
        #expect(SocketDescriptors.find(local: SocketAddress(local), remote: SocketAddress(peer)) == client)
        #expect(SocketDescriptors.find(local: SocketAddress(peer), remote: SocketAddress(local)) == server)
        var other = peer
        other.sin_port = 1
        #expect(SocketDescriptors.find(local: SocketAddress(other), remote: SocketAddress(local)) == nil)
    }
}
