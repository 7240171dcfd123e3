/// Reduce (sum): after the call the root holds Σ over ranks of every rank's vector; the other
/// ranks' vectors are unchanged.
///
/// Linear: every non-root rank sends its vector to the root; the root receives them *in rank
/// order* and adds them, so the sum is the same bits however the messages raced.
extension Communicator {
    public func reduce<Scalar: BLASScalar>(_ v: inout [Scalar], root: Int = 0, codec: VectorCodec) async throws {
        try checkRank(root)
        guard size > 1 else { return }
        let start = metrics.timeline?.now
        defer { if let start { metrics.timeline?.span("reduce (root \(root))", cat: "collective", since: start,
                                                       args: ["entries": "\(v.count)"]) } }
        if rank != root {
            // 1. Send my contribution to the root.
            try await sendVector(v, to: root, tag: .reduce, codec: codec)
            return
        }
        // 2. At the root: my own vector counts as the codec would have made it (so the result does
        //    not depend on which rank is root); then the sum of ranks 0, 1, …, m−1 in that order,
        //    ((v₀ + v₁) + v₂) + …, each incoming vector added as it is received (straight from the
        //    network where the backend can).
        if !codec.spec.isLossless {
            let bytes = encode(v, codec: codec, stream: CodecStream(tag: .reduce, peer: root))
            try decode(Message(source: rank, tag: .reduce, payload: bytes), codec: codec, into: &v)
        }
        // The sum builds up in v itself (for a large vector a new one's page faults cost more
        // than the additions): it starts as rank 0's vector, then ranks 1, 2, … are added.
        let all = 0..<v.count
        var own: [Scalar] = []
        if root != 0 {
            own = v
            v = Scalar.zeros(v.count)
            try await exchangeVector(&v, sending: nil, to: 0, receiving: all, from: 0, tag: .reduce, combine: .replace, codec: codec)
        }
        for r in 1..<size {
            if r == root {
                accumulate(own, into: &v)
            } else {
                try await exchangeVector(&v, sending: nil, to: r, receiving: all, from: r, tag: .reduce, combine: .add, codec: codec)
            }
        }
    }
}
