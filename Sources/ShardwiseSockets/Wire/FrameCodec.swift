import Logging
import NIOCore

/// Turns a TCP byte stream into `Frame`s.
///
/// Each payload is copied exactly once, from the read buffer straight into an array of its final
/// size (allocated when the header arrives), with the checksum computed during that copy. The
/// maximum payload starts at `FrameHeader.handshakeMaximum` and is raised by the connection
/// handler once the peer has authenticated. A frame with a trailing checksum (see `FrameHeader`)
/// is checked when its 4 trailer bytes are in. Any violation — bad magic, version, type, header CRC,
/// payload checksum, or an oversized length — is logged with the remote address and closes the
/// connection; nothing is thrown into the pipeline and the node carries on.
final class FrameDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Frame

    private enum State {
        case header
        /// The payload array has its final size from the start; `filled` bytes are in. (For the
        /// rest of a frame whose beginning went to a sink, `header.length` is the rest's length;
        /// the checksum runs over the whole frame.)
        case payload(FrameHeader, [UInt8], filled: Int, FrameChecksum.State)
        /// The payload goes to `sink`; `filled` bytes are in.
        case sinking(FrameHeader, filled: Int, FrameChecksum.State)
        /// The payload is in (in the array, or in the sink: nil); its trailing checksum is being
        /// read (into `headerBytes`).
        case trailer(FrameHeader, [UInt8]?, FrameChecksum.State)
        case failed
    }

    /// Where the next data frame with the sink's tag goes instead of a fresh array (see `PayloadSink`).
    private(set) var sink: PayloadSink?

    /// Told once when the next data frame with `tag` begins (its header is in), or when the
    /// connection fails or ends: a node sleeping until its vector starts to arrive.
    private var startWatch: (tag: UInt32, notify: () -> Void)?

    func watchFrameStart(tag: UInt32, _ notify: @escaping () -> Void) { startWatch = (tag, notify) }
    func cancelFrameStartWatch() { startWatch = nil }

    private func notifyStart(_ header: FrameHeader?) {
        guard let w = startWatch, header.map({ $0.type == .data && $0.tag == w.tag }) ?? true else { return }
        startWatch = nil
        w.notify()
    }

    /// Whether a data frame with `tag` has begun to arrive and is not complete yet.
    func isReceiving(tag: UInt32) -> Bool {
        switch state {
        case .payload(let h, _, _, _), .sinking(let h, _, _), .trailer(let h, _, _): return h.type == .data && h.tag == tag
        case .header, .failed: return false
        }
    }

    private var state = State.header
    private var headerBytes = [UInt8]()
    var maximumLength: Int
    let logger: Logger
    /// Where the lines about a refused or broken connection go (rate-limited); nil: straight to
    /// `logger`.
    let badConnections: BadConnectionLog?

    init(maximumLength: Int = FrameHeader.handshakeMaximum, logger: Logger, badConnections: BadConnectionLog? = nil) {
        self.maximumLength = maximumLength
        self.logger = logger
        self.badConnections = badConnections
        headerBytes.reserveCapacity(FrameHeader.size)
    }

    private func logBadConnection(_ message: String, context: ChannelHandlerContext) {
        if let badConnections {
            badConnections.report(message, remote: context.remoteAddress)
        } else {
            logger.warning("\(message)", metadata: ["remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        while buffer.readableBytes > 0 {
            switch state {
            case .failed:
                return
            case .header:
                let k = min(FrameHeader.size - headerBytes.count, buffer.readableBytes)
                headerBytes.append(contentsOf: buffer.readBytes(length: k)!)
                guard headerBytes.count == FrameHeader.size else { continue }
                let parsed = headerBytes.withUnsafeBytes { b in
                    Result { () throws(FrameError) in try FrameHeader.parse(b, maximumLength: maximumLength) }
                }
                guard case .success(let header) = parsed else {
                    if case .failure(let error) = parsed { fail(context: context, error) }
                    return
                }
                headerBytes.removeAll(keepingCapacity: true)
                notifyStart(header)
                if let sink, sink.state == .waiting, header.type == .data, header.tag == sink.tag {
                    if header.length == sink.destination.count {
                        sink.state = .filling
                        sink.frameBytes = header.wireSize
                        state = .sinking(header, filled: 0, FrameChecksum.State())
                        continue
                    }
                    sink.state = .declined   // not the vector expected: the receive will say so
                }
                if header.length == 0 {
                    guard payloadComplete(context: context, header, [], FrameChecksum.State()) else { return }
                } else {
                    // Bytes are written before they are read: no need to zero them first.
                    let payload = [UInt8](unsafeUninitializedCapacity: header.length) { _, n in n = header.length }
                    state = .payload(header, payload, filled: 0, FrameChecksum.State())
                }
            case .payload(let header, var payload, let filled, var sum):
                state = .header   // drop our reference so `payload` stays uniquely owned (no copy on write)
                let k = min(header.length - filled, buffer.readableBytes)
                buffer.readWithUnsafeReadableBytes { src in
                    payload.withUnsafeMutableBytes { dst in
                        sum.copy(from: UnsafeRawBufferPointer(rebasing: src[0..<k]),
                                 to: UnsafeMutableRawBufferPointer(rebasing: dst[filled..<(filled + k)]))
                    }
                    return k
                }
                if filled + k == header.length {
                    guard payloadComplete(context: context, header, payload, sum) else { return }
                } else {
                    state = .payload(header, payload, filled: filled + k, sum)
                }
            case .sinking(let header, let filled, var sum):
                let k = min(header.length - filled, buffer.readableBytes)
                buffer.readWithUnsafeReadableBytes { src in
                    sink!.take(UnsafeRawBufferPointer(rebasing: src[0..<k]), at: filled, checksum: &sum)
                    return k
                }
                if filled + k == header.length {
                    guard payloadComplete(context: context, header, nil, sum) else { return }
                } else {
                    state = .sinking(header, filled: filled + k, sum)
                }
            case .trailer(let header, let payload, let sum):
                let k = min(FrameHeader.trailerSize - headerBytes.count, buffer.readableBytes)
                headerBytes.append(contentsOf: buffer.readBytes(length: k)!)
                guard headerBytes.count == FrameHeader.trailerSize else { continue }
                let expected = headerBytes.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) }
                headerBytes.removeAll(keepingCapacity: true)
                guard check(context: context, header, payload, sum, expected: expected) else { return }
            }
        }
    }

    /// The payload is in (`payload`, or nil: in the sink): checks it now, or first reads its
    /// trailing checksum. False when the connection failed.
    private func payloadComplete(context: ChannelHandlerContext, _ header: FrameHeader, _ payload: [UInt8]?,
                                 _ sum: FrameChecksum.State) -> Bool {
        guard header.trailingChecksum else { return check(context: context, header, payload, sum, expected: header.checksum) }
        headerBytes.removeAll(keepingCapacity: true)
        state = .trailer(header, payload, sum)
        return true
    }

    private func check(context: ChannelHandlerContext, _ header: FrameHeader, _ payload: [UInt8]?,
                       _ sum: FrameChecksum.State, expected: UInt32) -> Bool {
        if let payload { return deliver(context: context, header, payload, sum, expected: expected) }
        state = .header
        let actual = sum.value
        guard actual == expected else {
            let error = FrameError.badPayloadChecksum(expected: expected, actual: actual)
            sink?.state = .failed("\(error)")
            fail(context: context, error)
            return false
        }
        sink?.state = .complete
        return true
    }

    /// Posts `sink` for the next data frame with its tag — or for the one being read now, if it
    /// matches: what it already holds moves into the sink. The caller has made sure that no
    /// earlier frame with the tag waits in the mailbox.
    func attach(_ sink: PayloadSink) {
        precondition(self.sink == nil, "one sink at a time")
        self.sink = sink
        // A frame with the tag that is already in (checksum pending) or is the rest of another
        // goes to the mailbox; the sink must not take a later one before it.
        if case .trailer(let header, let payload, _) = state, payload != nil, header.type == .data, header.tag == sink.tag {
            sink.state = .declined
            return
        }
        guard case .payload(let header, let payload, let filled, let sum) = state,
              header.type == .data, header.tag == sink.tag else { return }
        guard header.length == sink.destination.count, !isRest else { sink.state = .declined; return }
        sink.state = .filling
        sink.frameBytes = header.wireSize
        // The bytes already in were checksummed on their way into the array.
        payload.withUnsafeBytes { sink.move(UnsafeRawBufferPointer(rebasing: $0[0..<filled])) }
        state = .sinking(header, filled: filled, sum)
    }

    /// Takes the sink back. If its frame is still arriving, the rest of the payload goes to an
    /// array again (delivered as a message of its own, after the entries the sink took); returns
    /// the bytes the sink took — whole entries — once it has begun, else 0.
    @discardableResult
    func detachSink() -> Int {
        guard let sink else { return 0 }
        self.sink = nil
        if case .trailer(var header, nil, let sum) = state {
            // All of it is in place but not yet checked: the rest is an empty message.
            header.length = 0
            isRest = true
            state = .trailer(header, [], sum)
            return sink.consumed
        }
        guard case .sinking(var header, let filled, let sum) = state else {
            return sink.state == .complete ? sink.destination.count : 0
        }
        let taken = sink.consumed
        let rest = [UInt8](unsafeUninitializedCapacity: header.length - taken) { out, n in
            n = header.length - taken
            sink.copyUnconsumed(upTo: filled, into: UnsafeMutableRawBufferPointer(out))
        }
        header.length -= taken
        isRest = true
        state = .payload(header, rest, filled: filled - taken, sum)
        return taken
    }

    /// Whether part of a frame has arrived and the rest has not.
    var isInsideFrame: Bool {
        switch state {
        case .header: return !headerBytes.isEmpty
        case .payload, .sinking, .trailer: return true
        case .failed: return false
        }
    }

    /// The payload being filled is the rest of a frame that began in a sink.
    private var isRest = false

    /// Checks the payload's checksum and passes the frame on; false when the connection failed.
    private func deliver(context: ChannelHandlerContext, _ header: FrameHeader, _ payload: [UInt8],
                         _ sum: FrameChecksum.State, expected: UInt32) -> Bool {
        isRest = false
        let actual = sum.value
        guard actual == expected else {
            fail(context: context, .badPayloadChecksum(expected: expected, actual: actual))
            return false
        }
        state = .header
        context.fireChannelRead(wrapInboundOut(Frame(type: header.type, tag: header.tag, payload: payload)))
        if case .failed = state { return false }
        return true
    }

    /// The pipeline position, for frames completed by `readPayloadDirectly` (outside a read event).
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// While a payload is being filled, lets `fill` write the missing bytes (or a first part of
    /// them) straight into it — the progress engine's `recv`, sparing the copy out of a read
    /// buffer — then checksums them and passes the frame on once it is complete. Returns what
    /// `fill` returned (≤ 0: nothing was read), or nil when no payload is being filled.
    func readPayloadDirectly(_ fill: (UnsafeMutableRawBufferPointer) -> Int) -> Int? {
        if case .sinking(let header, let filled, var sum) = state, let context, let sink {
            let n = sink.fill(at: filled, upTo: header.length, checksum: &sum, fill)
            guard n > 0 else { return n }
            if filled + n == header.length {
                _ = payloadComplete(context: context, header, nil, sum)
            } else {
                state = .sinking(header, filled: filled + n, sum)
            }
            return n
        }
        guard case .payload(let header, var payload, let filled, var sum) = state, let context else { return nil }
        state = .header   // drop our reference so `payload` stays uniquely owned (no copy on write)
        let n = payload.withUnsafeMutableBytes { dst in
            fill(UnsafeMutableRawBufferPointer(rebasing: dst[filled..<header.length]))
        }
        guard n > 0 else {
            state = .payload(header, payload, filled: filled, sum)
            return n
        }
        payload.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[filled..<(filled + n)])) }
        if filled + n == header.length {
            _ = payloadComplete(context: context, header, payload, sum)
        } else {
            state = .payload(header, payload, filled: filled + n, sum)
        }
        return n
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .sinking(let header, let filled, _):
            let error = FrameError.truncated(received: FrameHeader.size + filled, expected: FrameHeader.size + header.length)
            sink?.state = .failed("\(error)")
            logBadConnection("closing connection: \(error)", context: context)
        case .payload(let header, _, let filled, _):
            logBadConnection("closing connection: \(FrameError.truncated(received: FrameHeader.size + filled, expected: FrameHeader.size + header.length))",
                             context: context)
        case .trailer(let header, let payload, _):
            let error = FrameError.truncated(received: FrameHeader.size + header.length + headerBytes.count,
                                             expected: FrameHeader.size + header.length + FrameHeader.trailerSize)
            if payload == nil { sink?.state = .failed("\(error)") }
            logBadConnection("closing connection: \(error)", context: context)
        case .header where !headerBytes.isEmpty:
            logBadConnection("closing connection: \(FrameError.truncated(received: headerBytes.count, expected: FrameHeader.size))",
                             context: context)
        default:
            break
        }
        state = .failed
        notifyStart(nil)
        context.fireChannelInactive()
    }

    /// Stops decoding (the connection handler refused the peer).
    func stop() { state = .failed }

    private func fail(context: ChannelHandlerContext, _ error: FrameError) {
        state = .failed
        notifyStart(nil)
        logBadConnection("refusing connection: \(error)", context: context)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}

/// Builds frames straight into NIO buffers: one allocation and one pass over the payload (copy and
/// checksum together).
enum FrameWriter {
    static func buffer(_ type: FrameType, tag: UInt32 = 0, payload: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: FrameHeader.size + payload.count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameHeader.size + payload.count) { out in
            let sum = payload.withUnsafeBytes { p in
                FrameChecksum.copy(from: p, to: UnsafeMutableRawBufferPointer(rebasing: out[FrameHeader.size..<(FrameHeader.size + p.count)]))
            }
            FrameHeader(type: type, tag: tag, length: payload.count, checksum: sum).write(to: out)
            return FrameHeader.size + payload.count
        }
        return buffer
    }

    /// A frame whose `count`-byte payload `fill` writes in place; the checksum is then one read
    /// pass over bytes still in cache.
    static func buffer(_ type: FrameType, tag: UInt32 = 0, count: Int, allocator: ByteBufferAllocator,
                       fill: (UnsafeMutableRawBufferPointer) -> Void) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: FrameHeader.size + count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameHeader.size + count) { out in
            let payload = UnsafeMutableRawBufferPointer(rebasing: out[FrameHeader.size..<(FrameHeader.size + count)])
            fill(payload)
            let sum = FrameChecksum.compute(UnsafeRawBufferPointer(payload))
            FrameHeader(type: type, tag: tag, length: count, checksum: sum).write(to: out)
            return FrameHeader.size + count
        }
        return buffer
    }
}
