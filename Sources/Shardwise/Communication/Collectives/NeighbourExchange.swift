/// Neighbour exchange: send my vector to each neighbour, receive each neighbour's vector. The
/// building block of gossip. Every neighbour must call it with me among its neighbours.
extension Communicator {
    /// - Returns: the neighbours' vectors, in the order of `neighbours`.
    public func exchange<Scalar: BLASScalar>(
        _ v: [Scalar], with neighbours: [Int], codec: VectorCodec, tag: Tag = .neighbours
    ) async throws -> [[Scalar]] {
        for peer in neighbours { try checkRank(peer) }
        // 1. Encode once, send to every neighbour (sends never wait for the receiver).
        let t0 = now
        let bytes = codec.encode(v, stream: CodecStream(tag: tag, peer: -1))
        metrics.addCommunication(seconds: now - t0)
        for peer in neighbours { try await send(bytes, to: peer, tag: tag) }
        // 2. Receive from every neighbour, by rank, so results do not depend on arrival order.
        var out: [[Scalar]] = []
        out.reserveCapacity(neighbours.count)
        for peer in neighbours {
            out.append(try await receiveVector(from: .rank(peer), tag: tag, count: v.count, codec: codec).vector)
        }
        return out
    }
}
