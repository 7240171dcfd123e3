/// Ring all-reduce (Patarasuk & Yuan, 2009; Baidu's "ring allreduce"): bandwidth-optimal — each
/// rank sends 2(m−1)/m of the vector, however many ranks there are.
///
/// The vector is cut into m chunks (sizes differ by at most one entry). With right = r+1 and
/// left = r−1 (mod m):
///
/// 1. Reduce-scatter, m−1 steps. In step s, rank r sends chunk (r − s) to its right and receives
///    chunk (r − s − 1) from its left, adding it to its own copy. After the last step rank r holds
///    the complete sum of chunk (r + 1).
/// 2. All-gather, m−1 steps. In step s, rank r sends chunk (r + 1 − s) — complete — to its right
///    and receives chunk (r − s) from its left, replacing its copy. The bytes received are
///    forwarded unchanged, and the owner of a chunk decodes its own bytes, so every rank ends with
///    identical bits even under a lossy codec.
extension Communicator {
    public func ringAllReduce<Scalar: BLASScalar>(_ v: inout [Scalar], codec: VectorCodec) async throws {
        let m = size
        guard m > 1 else { return }
        let n = v.count
        let right = (rank + 1) % m, left = (rank - 1 + m) % m
        func chunk(_ c: Int) -> Range<Int> {
            let k = ((c % m) + m) % m
            let lo = k * (n / m) + min(k, n % m)
            return lo..<(lo + n / m + (k < n % m ? 1 : 0))
        }
        // 1. Reduce-scatter. Each step is one exchange: the receive is posted before the send, so
        //    a backend that can lands the incoming chunk in v (adding) while its send drains;
        //    otherwise the codec encodes into the send buffer and the incoming chunk is decoded
        //    and added in one pass.
        for s in 0..<(m - 1) {
            try await exchangeVector(&v, sending: chunk(rank - s), to: right, receiving: chunk(rank - s - 1), from: left,
                                     tag: .ringReduceScatter, combine: .add, codec: codec)
        }
        // 2. All-gather. Lossless codecs: every chunk is encoded from v, which holds exactly the
        //    values its owner sent (encoding them again gives the same bytes).
        if codec.spec.isLossless {
            for s in 0..<(m - 1) {
                try await exchangeVector(&v, sending: chunk(rank + 1 - s), to: right, receiving: chunk(rank - s), from: left,
                                         tag: .ringAllGather, combine: .replace, codec: codec)
            }
            return
        }
        // Lossy codecs: the chunk I own (r + 1) is encoded once, I adopt its decoded form, and
        // the bytes received are forwarded unchanged (so every rank ends with identical bits).
        let owned = chunk(rank + 1)
        var bytes = encode(v, range: owned, codec: codec, stream: CodecStream(tag: .ringAllGather, peer: right))
        if !codec.spec.isLossless {
            try decode(Message(source: rank, tag: .ringAllGather, payload: bytes), codec: codec, into: &v, range: owned)
        }
        for s in 0..<(m - 1) {
            try await send(bytes, to: right, tag: .ringAllGather)
            let message = try await receive(from: .rank(left), tag: .ringAllGather)
            try decode(message, codec: codec, into: &v, range: chunk(rank - s))
            bytes = message.payload   // forwarded unchanged in the next step
        }
    }
}
