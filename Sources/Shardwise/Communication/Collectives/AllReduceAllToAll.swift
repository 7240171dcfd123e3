/// All-to-all all-reduce: every rank sends its whole vector to every other rank and sums what it
/// receives. One step, (m − 1)·d entries sent per rank: latency-optimal, bandwidth-hungry.
extension Communicator {
    public func allToAllAllReduce<Scalar: BLASScalar>(_ v: inout [Scalar], codec: VectorCodec) async throws {
        guard size > 1 else { return }
        // 1. Encode my vector once and send the same bytes to every other rank, starting with my
        //    right-hand neighbour so that not every rank hits rank 0 first.
        let mine = encode(v, codec: codec, stream: CodecStream(tag: .allToAll, peer: -1))
        for step in 1..<size { try await send(mine, to: (rank + step) % size, tag: .allToAll) }
        // 2. Sum the decoded vectors of ranks 0, 1, …, m−1 — my own included, decoded from my own
        //    bytes — in rank order, so every rank adds the same numbers in the same order.
        var incoming = Scalar.zeros(v.count)
        var sum = Scalar.zeros(v.count)
        for r in 0..<size {
            if r == rank {
                try decode(Message(source: rank, tag: .allToAll, payload: mine), codec: codec, into: &incoming)
            } else {
                try await receiveVector(from: .rank(r), tag: .allToAll, codec: codec, into: &incoming)
            }
            accumulate(incoming, into: &sum)
        }
        v = sum
    }
}
