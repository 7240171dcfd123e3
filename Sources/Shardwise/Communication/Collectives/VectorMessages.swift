/// Sending and receiving vectors through a codec: the building block of every collective. The time
/// spent encoding and decoding counts as communication.
extension Communicator {
    /// Encodes `v[range]` (all of `v` by default), timing the encoding as communication.
    public func encode<Scalar: BLASScalar>(
        _ v: [Scalar], range: Range<Int>? = nil, codec: VectorCodec, stream: CodecStream
    ) -> [UInt8] {
        let t0 = now
        let bytes = v.withUnsafeBufferPointer { buf in
            codec.encode(UnsafeBufferPointer(rebasing: buf[range ?? 0..<v.count]), stream: stream)
        }
        metrics.addCommunication(seconds: now - t0)
        return bytes
    }

    /// Encodes `v[range]` (all of `v` by default) with `codec` and sends it; the codec writes
    /// into the backend's send buffer when it has one (`send(count:to:tag:fill:)`).
    public func sendVector<Scalar: BLASScalar>(_ v: [Scalar], range: Range<Int>? = nil, to destination: Int, tag: Tag,
                                               codec: VectorCodec) async throws {
        let r = range ?? 0..<v.count
        if codec.encodesAsMemory(Scalar.self), destination != rank {
            let sent = try v.withUnsafeBufferPointer { buf in
                try sendInPlace(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: buf[r])), to: destination, tag: tag)
            }
            if sent { return }
        }
        let stream = CodecStream(tag: tag, peer: destination)
        try await send(count: codec.encodedSize(count: r.count), to: destination, tag: tag) { out in
            v.withUnsafeBufferPointer { codec.encode(UnsafeBufferPointer(rebasing: $0[r]), into: out, stream: stream) }
        }
    }

    /// Sends `v[sending]` to `destination` (nothing when `sending` is nil) and receives the vector
    /// `source` sends under the same tag into `v[receiving]`, replacing or adding to it — one step
    /// of a ring, a tree or a broadcast. Where the backend can, the incoming bytes land in `v`
    /// straight from the network (`sendReceiveInPlace`); otherwise, or for the part that did not,
    /// this is `sendVector` followed by `receiveVector` or `receiveVectorAdding`. The two ranges
    /// must not overlap.
    public func exchangeVector<Scalar: BLASScalar>(
        _ v: inout [Scalar], sending: Range<Int>?, to destination: Int,
        receiving: Range<Int>, from source: Int, tag: Tag, combine: InPlaceCombine, codec: VectorCodec
    ) async throws {
        precondition(sending.map { !$0.overlaps(receiving) } ?? true, "exchangeVector: the ranges overlap")
        var transfer = InPlaceTransfer.unsupported
        if codec.encodesAsMemory(Scalar.self), !receiving.isEmpty, source != rank, sending == nil || destination != rank {
            func inPlace(sending: Range<Int>?) throws -> InPlaceTransfer {
                try v.withUnsafeMutableBufferPointer { p in
                    try sendReceiveInPlace(
                        sending: sending.map { UnsafeBufferPointer(rebasing: p[$0]) }, to: destination, sendTag: tag,
                        receivingInto: UnsafeMutableBufferPointer(rebasing: p[receiving]), combine: combine,
                        from: source, receiveTag: tag)
                }
            }
            transfer = try inPlace(sending: sending)
            if transfer == .notStarted {
                // The peer is late: sleep until its vector begins to arrive, then take it in place.
                // The send is done, so whatever happens now the rest is a receive.
                try await waitForIncoming(from: source, tag: tag, timeout: nil)
                transfer = try inPlace(sending: nil)
                if transfer == .notStarted || transfer == .unsupported { transfer = .partial(bytes: 0) }
            }
        }
        var rest = receiving
        switch transfer {
        case .complete:
            return
        case .partial(let bytes):
            rest = (receiving.lowerBound + bytes / MemoryLayout<Scalar>.stride)..<receiving.upperBound
        case .unsupported, .notStarted:
            if let sending { try await sendVector(v, range: sending, to: destination, tag: tag, codec: codec) }
        }
        switch combine {
        case .replace: try await receiveVector(from: .rank(source), tag: tag, codec: codec, into: &v, range: rest)
        case .add: try await receiveVectorAdding(from: .rank(source), tag: tag, codec: codec, into: &v, range: rest)
        }
    }

    /// Receives a vector and decodes it into `out[range]` (all of `out` by default). Returns the sender.
    @discardableResult
    public func receiveVector<Scalar: BLASScalar>(
        from source: Source, tag: Tag, codec: VectorCodec, into out: inout [Scalar], range: Range<Int>? = nil,
        timeout: Double? = nil
    ) async throws -> Int {
        let message = try await receive(from: source, tag: tag, timeout: timeout)
        try decode(message, codec: codec, into: &out, range: range)
        return message.source
    }

    /// Receives and decodes a vector of `count` entries.
    public func receiveVector<Scalar: BLASScalar>(
        from source: Source, tag: Tag, count: Int, codec: VectorCodec, as: Scalar.Type = Scalar.self,
        timeout: Double? = nil
    ) async throws -> (source: Int, vector: [Scalar]) {
        var out = Scalar.zeros(count)
        let from = try await receiveVector(from: source, tag: tag, codec: codec, into: &out, timeout: timeout)
        return (from, out)
    }

    /// Receives a vector and adds it into `out[range]` (decoding and adding in one pass where the
    /// codec can). Returns the sender.
    @discardableResult
    public func receiveVectorAdding<Scalar: BLASScalar>(
        from source: Source, tag: Tag, codec: VectorCodec, into out: inout [Scalar], range: Range<Int>
    ) async throws -> Int {
        let message = try await receive(from: source, tag: tag, timeout: nil)
        let t0 = now
        do {
            try out.withUnsafeMutableBufferPointer {
                try codec.decodeAdding(message.payload, into: UnsafeMutableBufferPointer(rebasing: $0[range]))
            }
        } catch let error as CommunicationError {
            throw CommunicationError.badPayload("rank \(rank) from rank \(message.source) (\(message.tag)): \(error)")
        }
        metrics.addCommunication(seconds: now - t0)
        return message.source
    }

    /// Decodes a message's payload into `out[range]`.
    public func decode<Scalar: BLASScalar>(
        _ message: Message, codec: VectorCodec, into out: inout [Scalar], range: Range<Int>? = nil
    ) throws {
        let r = range ?? 0..<out.count
        try out.withUnsafeMutableBufferPointer { buf in
            try decode(message, codec: codec, into: UnsafeMutableBufferPointer(rebasing: buf[r]))
        }
    }

    /// Decodes a message's payload, naming the sender when it does not fit.
    public func decode<Scalar: BLASScalar>(
        _ message: Message, codec: VectorCodec, into out: UnsafeMutableBufferPointer<Scalar>
    ) throws {
        let t0 = now
        do {
            try codec.decode(message.payload, into: out)
        } catch let error as CommunicationError {
            throw CommunicationError.badPayload("rank \(rank) from rank \(message.source) (\(message.tag)): \(error)")
        }
        metrics.addCommunication(seconds: now - t0)
    }
}

/// out[range] ← out[range] + v[0..<range.count] (the reduction every collective uses).
@inlinable
func accumulate<Scalar: BLASScalar>(_ v: [Scalar], into out: inout [Scalar], range: Range<Int>? = nil) {
    let r = range ?? 0..<out.count
    v.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            let o = dst.baseAddress! + r.lowerBound
            if r.count > 64 {
                Scalar.axpy(count: r.count, alpha: 1, x: src.baseAddress!, y: o)
            } else {
                for i in 0..<r.count { o[i] += src[i] }
            }
        }
    }
}
