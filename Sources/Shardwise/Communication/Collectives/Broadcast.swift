/// Broadcast: after the call every rank holds the root's vector.
///
/// Linear (star): the root sends to every other rank in turn — m − 1 messages through the root's
/// link, which is what a parameter server does and what the simulator's closed form
/// m·(α + d·s/β) describes.
///
/// Every rank, the root included, ends with the *decoded* bytes, so a lossy codec leaves all ranks
/// with identical bits.
extension Communicator {
    public func broadcast<Scalar: BLASScalar>(_ v: inout [Scalar], root: Int = 0, codec: VectorCodec) async throws {
        try checkRank(root)
        guard size > 1 else { return }
        let start = metrics.timeline?.now
        defer { if let start { metrics.timeline?.span("broadcast (root \(root))", cat: "collective", since: start,
                                                       args: ["entries": "\(v.count)"]) } }
        if rank == root {
            // A vector whose encoding is its own memory (lossless) goes from that memory to every
            // rank (`sendVector`: in place where the backend can).
            if codec.encodesAsMemory(Scalar.self) {
                for r in 0..<size where r != root { try await sendVector(v, to: r, tag: .broadcast, codec: codec) }
                return
            }
            // 1. Encode once; 2. send the same bytes to every other rank; 3. adopt the decoded value.
            let bytes = encode(v, codec: codec, stream: CodecStream(tag: .broadcast, peer: -1))
            for r in 0..<size where r != root { try await send(bytes, to: r, tag: .broadcast) }
            if !codec.spec.isLossless {
                try decode(Message(source: rank, tag: .broadcast, payload: bytes), codec: codec, into: &v)
            }
        } else {
            // Everyone else: one receive from the root (into v itself where the backend can).
            try await exchangeVector(&v, sending: nil, to: root, receiving: 0..<v.count, from: root, tag: .broadcast,
                                     combine: .replace, codec: codec)
        }
    }
}
