/// The all-reduce algorithms a strategy can choose.
///
/// | algorithm          | messages per rank | bytes sent per rank | steps      |
/// |--------------------|-------------------|---------------------|------------|
/// | `reduceBroadcast`  | root: 2(m−1), others 2 | root: (m−1)·d  | 2(m−1) at the root |
/// | `allToAll`         | m − 1             | (m−1)·d             | 1          |
/// | `ring`             | 2(m−1)            | 2(m−1)/m·d          | 2(m−1)     |
///
/// (d entries, m ranks, bytes in codec units.) Every algorithm leaves identical bits on every rank.
public enum AllReduceAlgorithm: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case reduceBroadcast = "reduce-broadcast"
    case allToAll = "all-to-all"
    case ring
    /// The backend's own implementation (MPI_Allreduce, a shared-memory sum) when it has one;
    /// otherwise the ring.
    case native

    public var description: String { rawValue }
}

extension Communicator {
    /// Sums `v` over all ranks; every rank ends with the same bits.
    public func allReduce<Scalar: BLASScalar>(
        _ v: inout [Scalar], algorithm: AllReduceAlgorithm = .ring, codec: VectorCodec
    ) async throws {
        guard size > 1 else { return }
        let start = metrics.timeline?.now
        defer { if let start { metrics.timeline?.span("all-reduce (\(algorithm))", cat: "collective", since: start,
                                                       args: ["entries": "\(v.count)", "codec": "\(codec.spec)"]) } }
        switch algorithm {
        case .reduceBroadcast:
            try await reduceBroadcastAllReduce(&v, codec: codec)
        case .allToAll:
            try await allToAllAllReduce(&v, codec: codec)
        case .ring:
            try await ringAllReduce(&v, codec: codec)
        case .native:
            // A native reduction moves raw scalars; only a lossless codec can be honoured by it.
            let done = codec.spec.isLossless ? try await nativeAllReduce(&v) : false
            if !done { try await ringAllReduce(&v, codec: codec) }
        }
    }

    /// Reduce to rank 0, then broadcast from rank 0: the client-server pattern (a parameter
    /// server's link carries all 2(m−1) messages).
    public func reduceBroadcastAllReduce<Scalar: BLASScalar>(_ v: inout [Scalar], codec: VectorCodec) async throws {
        // 1. Every rank sends to rank 0, which sums in rank order.
        try await reduce(&v, root: 0, codec: codec)
        // 2. Rank 0 sends the sum to every rank; all adopt the decoded bytes.
        try await broadcast(&v, root: 0, codec: codec)
    }
}
