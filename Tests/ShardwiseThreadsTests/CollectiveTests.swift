import Shardwise
import ShardwiseThreads
import Testing
import _TestSupport

/// The generic collectives, run on the threads backend, against a plain sum.
@Suite("Collectives")
struct CollectiveTests {
    static let sizes = [1, 2, 3, 4, 5, 8]
    static let lengths = [0, 1, 7, 1000, 100_003]

    /// Rank r's vector: seeded by rank, so the expected sum is computable outside.
    static func contribution(rank: Int, count: Int) -> [Double] {
        TestData.vector(count, seed: UInt64(rank) * 7919 + UInt64(count))
    }

    static func plainSum(size: Int, count: Int) -> [Double] {
        var s = [Double](repeating: 0, count: count)
        for r in 0..<size { for (i, v) in contribution(rank: r, count: count).enumerated() { s[i] += v } }
        return s
    }

    @Test("all-reduce equals the plain sum, with identical bits on every rank",
          arguments: AllReduceAlgorithm.allCases, sizes)
    func allReduce(algorithm: AllReduceAlgorithm, size: Int) async throws {
        for count in Self.lengths {
            let results = try await ThreadsBackend.spmd(size: size, timeout: 20) { comm in
                var v = Self.contribution(rank: comm.rank, count: count)
                try await comm.allReduce(&v, algorithm: algorithm, codec: CodecSpec.float64.makeCodec())
                return v
            }
            let expected = Self.plainSum(size: size, count: count)
            #expect(relativeError(results[0], expected) < 1e-13, "\(algorithm), m = \(size), n = \(count)")
            for r in 1..<size { #expect(results[r] == results[0], "rank \(r) differs (\(algorithm), m = \(size), n = \(count))") }
        }
    }

    @Test("ring all-reduce under a lossy codec still leaves identical bits everywhere",
          arguments: [CodecSpec.float32, .float16, .bfloat16, .int8(chunk: 64), .topK(fraction: 0.1)])
    func lossyIdentical(codec: CodecSpec) async throws {
        for algorithm in [AllReduceAlgorithm.ring, .reduceBroadcast, .allToAll] {
            let results = try await ThreadsBackend.spmd(size: 5, timeout: 20) { comm in
                var v = Self.contribution(rank: comm.rank, count: 1001)
                try await comm.allReduce(&v, algorithm: algorithm, codec: codec.makeCodec())
                return v
            }
            for r in 1..<5 { #expect(results[r] == results[0], "\(codec) \(algorithm): rank \(r) differs") }
        }
    }

    @Test("ring traffic: each rank sends 2(m−1)/m of the vector", arguments: [2, 4, 8])
    func ringBytes(size: Int) async throws {
        let n = 8000
        let sent = try await ThreadsBackend.spmd(size: size, timeout: 20) { comm in
            var v = Self.contribution(rank: comm.rank, count: n)
            let before = comm.metrics.snapshot.bytesSent
            try await comm.ringAllReduce(&v, codec: CodecSpec.float64.makeCodec())
            return comm.metrics.snapshot.bytesSent - before
        }
        for s in sent { #expect(s == 2 * (size - 1) * (n / size) * 8) }
    }

    @Test("broadcast and reduce from every root", arguments: [1, 3, 4])
    func broadcastReduce(size: Int) async throws {
        for root in 0..<size {
            let results = try await ThreadsBackend.spmd(size: size, timeout: 20) { comm in
                var b = comm.rank == root ? [1.5, -2, Double(root)] : [0, 0, 0]
                try await comm.broadcast(&b, root: root, codec: CodecSpec.float64.makeCodec())
                var r = Self.contribution(rank: comm.rank, count: 17)
                try await comm.reduce(&r, root: root, codec: CodecSpec.float64.makeCodec())
                return (b, r)
            }
            for (rank, (b, r)) in results.enumerated() {
                #expect(b == [1.5, -2, Double(root)])
                if rank == root { #expect(relativeError(r, Self.plainSum(size: size, count: 17)) < 1e-14) }
                else { #expect(r == Self.contribution(rank: rank, count: 17)) }
            }
        }
    }

    @Test("barrier: nobody leaves before everyone has arrived", arguments: [1, 2, 5, 8])
    func barrier(size: Int) async throws {
        let results = try await ThreadsBackend.spmd(size: size, timeout: 20) { comm in
            // Everyone sends a note to rank 0 before the barrier; after it, rank 0 must find all.
            if comm.rank != 0 { try await comm.send([UInt8(comm.rank)], to: 0, tag: Tag(5)) }
            try await comm.barrier()
            var seen = 0
            if comm.rank == 0 { while try await comm.poll(from: .any, tag: Tag(5)) != nil { seen += 1 } }
            return seen
        }
        #expect(results[0] == size - 1)
    }

    @Test("neighbour exchange returns each neighbour's vector")
    func exchange() async throws {
        let topology = try Topology(.ring, nodes: 5)
        let results = try await ThreadsBackend.spmd(size: 5, timeout: 20) { comm in
            try await comm.exchange([Double(comm.rank)], with: topology.neighbours[comm.rank], codec: CodecSpec.float64.makeCodec())
        }
        for r in 0..<5 { #expect(results[r].map { Int($0[0]) } == topology.neighbours[r]) }
    }

    @Test("a receive that nobody answers times out with a message naming rank and source")
    func timeout() async throws {
        await #expect(throws: CommunicationError.self) {
            _ = try await ThreadsBackend.spmd(size: 2, timeout: 0.2) { comm in
                if comm.rank == 0 { _ = try await comm.receive(from: .rank(1), tag: Tag(3)) }
                return 0
            }
        }
        do {
            _ = try await ThreadsBackend.spmd(size: 2, timeout: 0.2) { comm in
                if comm.rank == 0 { _ = try await comm.receive(from: .rank(1), tag: Tag(3)) }
                return 0
            }
        } catch {
            #expect("\(error)".contains("rank 0") && "\(error)".contains("rank 1"))
        }
    }

    @Test("messages with one tag arrive in order; other tags do not block them")
    func ordering() async throws {
        let results = try await ThreadsBackend.spmd(size: 2, timeout: 20) { comm in
            if comm.rank == 1 {
                for i in 0..<100 { try await comm.send([UInt8(i)], to: 0, tag: Tag(i % 2 == 0 ? 1 : 2)) }
                return [Int]()
            }
            var got: [Int] = []
            for _ in 0..<50 { got.append(Int(try await comm.receive(from: .rank(1), tag: Tag(2)).payload[0])) }
            for _ in 0..<50 { got.append(Int(try await comm.receive(from: .any, tag: Tag(1)).payload[0])) }
            return got
        }
        #expect(results[0] == Array(stride(from: 1, to: 100, by: 2)) + Array(stride(from: 0, to: 100, by: 2)))
    }
}
