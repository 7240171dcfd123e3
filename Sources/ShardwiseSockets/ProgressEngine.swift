import NIOCore
import Shardwise
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The data links' fast path: how a node moves its messages while it waits for one, without
/// putting its thread to sleep.
///
/// The node runs on its event-loop thread (see `SocketCommunicator`). Left to NIO, a receive
/// suspends and the thread sleeps in epoll until bytes arrive; waking it costs tens of
/// microseconds (on this 2-core virtual machine about 100 µs a message, measured with plain C
/// sockets too), more than a small message takes to cross loopback; and a message larger than
/// the socket buffer moves one wake-up at a time. So, as MPI's progress engines do, a node
/// drives its data links itself while it has nothing else to do:
///
/// - **Writes.** A data frame is written to the socket directly (`send`, non-blocking); what does
///   not fit waits in this engine's queue for the link and goes out as the socket drains.
/// - **Reads.** A receive busy-polls the inbound links it waits on and reads them itself
///   (`recv`, non-blocking), handing the bytes to the channel's pipeline (`fireChannelRead`):
///   the same frame decoder, on the same thread, in stream order, as if NIO had read them.
/// - **Hand-over.** When nothing has moved for `budget` seconds (or anything unusual happens: end
///   of stream, an error, a closed channel), the receive gives up spinning, hands every queued
///   write to NIO (`writeAndFlush`, in order) and waits in the loop as before; NIO finds whatever
///   the spin left. The same hand-over happens before any other wait in the loop.
///
/// One writer and one reader per link at a time: the engine and NIO share the thread, and a link
/// whose writes are pending in NIO takes new writes through NIO too (in order) until they are
/// done; while any are pending the receive does not spin (the loop must finish them).
/// Each turn without progress past 20 µs yields the CPU (`sched_yield`), and a receive still
/// waiting for its message to begin after 100 µs sleeps in poll(2) on its links for the rest of
/// the budget, so nodes that outnumber the cores still run. Everything here is confined to the
/// event loop.
final class ProgressEngine: @unchecked Sendable {
    private struct Link {
        let fd: Int32
        let channel: any Channel
        /// The inbound link's frame decoder, to read payloads into directly.
        var decoder: FrameDecoder? = nil
    }

    /// Seconds without progress before a receive goes back to sleeping in the loop (0 = off).
    let budget: Double
    /// The same while a frame is half-way through a link, in either direction. Such a stall is
    /// the kernel's, not the peer's (on this 2-core VM, loopback stalls of 0.2–5 ms in the middle
    /// of multi-megabyte transfers are common), and giving up then is dear: the rest of an
    /// outgoing vector is copied, the rest of an incoming one lands in a fresh array.
    var midFrameBudget: Double { budget > 0 ? max(budget, 0.01) : 0 }
    private var inbound: [Int: Link] = [:]
    private var outbound: [Int: Link] = [:]
    /// Frames (or their unwritten rest) waiting for a link's socket to drain, by peer.
    private var queued: [Int: [ByteBuffer]] = [:]
    /// Writes handed to NIO and not yet completed, by peer.
    private var nioPending: [Int: Int] = [:]
    private var nioPendingTotal = 0
    private var handOverScheduled = false
    /// A write was started off the event loop and cannot be tracked: the engine stays off.
    private var untracked = false
    private var buffer: ByteBuffer
    private let readSize = 1 << 16
    private var fds: [pollfd] = []
    /// What each polled descriptor is: an index into the readers, or a peer whose writes wait.
    private var roles: [(index: Int, channel: any Channel, inbound: Bool)] = []

    /// Where payloads received in place and added go first (see `PayloadSink`): small enough to
    /// stay in cache between the `recv` that fills it and the addition that empties it.
    let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 64)

    init(budget: Double, allocator: ByteBufferAllocator) {
        self.budget = budget
        buffer = allocator.buffer(capacity: 1 << 16)
    }

    deinit { staging.deallocate() }

    /// The frame decoder of `peer`'s inbound link when the engine reads that link itself — where
    /// an in-place receive posts its sink — else nil.
    func decoder(from peer: Int) -> FrameDecoder? {
        guard budget > 0, !untracked, let link = inbound[peer], link.channel.isActive else { return nil }
        return link.decoder
    }

    /// Whether `sendInPlace` to `peer` over `channel` can go ahead now.
    func ownsWrites(to peer: Int, channel: any Channel) -> Bool {
        guard budget > 0, !untracked, let link = outbound[peer], link.channel === channel, nioPending[peer] == nil else { return false }
        return channel.isActive
    }

    /// Registers an authenticated data link (its descriptor found by its addresses; see
    /// `SocketDescriptors`). Without a descriptor the link simply stays NIO's alone.
    func add(peer: Int, channel: any Channel, inbound isInbound: Bool, decoder: FrameDecoder? = nil) {
        guard budget > 0, let local = channel.localAddress, let remote = channel.remoteAddress,
              let fd = SocketDescriptors.find(local: local, remote: remote) else { return }
        if isInbound {
            inbound[peer] = Link(fd: fd, channel: channel, decoder: decoder)
        } else {
            outbound[peer] = Link(fd: fd, channel: channel)
        }
    }

    /// Forgets a peer's links (closed); its queued writes are dropped with them.
    func remove(peer: Int) {
        inbound[peer] = nil
        outbound[peer] = nil
        queued[peer] = nil
    }

    // MARK: - Writes

    /// Sends a frame to `peer` over `channel`: directly when the engine owns the link's writes,
    /// else through NIO.
    func write(_ frame: ByteBuffer, to peer: Int, channel: any Channel, onLoop: Bool) {
        if budget > 0, onLoop, let link = outbound[peer], link.channel === channel, nioPending[peer] == nil {
            queued[peer, default: []].append(frame)
            if !flushQueue(peer) { handOver(peer); return }
            if queued[peer] != nil && !handOverScheduled {
                // Whatever is still queued when this thread next returns to the loop (the node
                // awaits something other than a receive) goes to NIO then.
                handOverScheduled = true
                channel.eventLoop.execute { [self] in
                    handOverScheduled = false
                    handOverAll()
                }
            }
            return
        }
        if onLoop { handOver(peer) }
        track(channel.writeAndFlush(frame), peer: peer, onLoop: onLoop)
    }

    /// Sends a data frame whose payload is `bytes` — a vector's own memory — without copying it.
    /// The frame carries a trailing checksum (see `FrameHeader`): the payload is checksummed one
    /// piece (`streamPiece` bytes) at a time just before `sendmsg` hands that piece to the kernel,
    /// so the vector is read once, from cache, and the first bytes leave at once — the peer is
    /// never kept waiting while a whole vector is checksummed. While the socket is full the engine
    /// reads its inbound links (a peer sending to us at the same time must not wait for us); it
    /// returns once the kernel has every byte. If nothing moves for `budget` seconds the rest is
    /// copied into the link's queue after all (the usual path). False (nothing sent) when the
    /// engine does not own the link's writes right now.
    func sendInPlace(_ bytes: UnsafeRawBufferPointer, tag: UInt32, to peer: Int, channel: any Channel, allocator: ByteBufferAllocator) -> Bool {
        guard ownsWrites(to: peer, channel: channel), let link = outbound[peer] else { return false }
        if queued[peer] != nil {
            guard flushQueue(peer), queued[peer] == nil else { return false }   // earlier frames first
        }
        let count = bytes.count
        let header = FrameHeader(type: .data, tag: tag, length: count, checksum: 0, trailingChecksum: true)
        // The header at bytes 0..<24 of `edges`, the trailer at 24..<28 once the payload is summed.
        var edges = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &edges) { header.write(to: $0) }
        var sum = FrameChecksum.State()
        var summed = 0
        func sumAhead() {
            let k = min(Self.streamPiece, count - summed)
            sum.add(UnsafeRawBufferPointer(rebasing: bytes[summed..<(summed + k)]))
            summed += k
            if summed == count {
                let value = sum.value
                withUnsafeMutableBytes(of: &edges) { $0.storeBytes(of: value.bigEndian, toByteOffset: FrameHeader.size, as: UInt32.self) }
            }
        }
        if count == 0 { sumAhead() }
        let total = FrameHeader.size + count + FrameHeader.trailerSize
        var sent = 0
        var idleSince = MonotonicClock.now()
        while sent < total {
            while summed < count && FrameHeader.size + summed - sent < Self.streamPiece / 2 { sumAhead() }
            let limit = FrameHeader.size + summed + (summed == count ? FrameHeader.trailerSize : 0)
            let n = withUnsafeBytes(of: &edges) { e -> Int in
                withUnsafeTemporaryAllocation(of: iovec.self, capacity: 3) { iov in
                    var count = 0
                    Self.forEachPiece(of: bytes, edges: e, from: sent, to: limit) {
                        iov[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
                        count += 1
                    }
                    var message = msghdr()
                    message.msg_iov = iov.baseAddress
                    message.msg_iovlen = count
                    return sendmsg(link.fd, &message, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
            }
            if n > 0 {
                sent += n
                idleSince = MonotonicClock.now()
                continue
            }
            var moved = false
            if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                idleSince = -.infinity   // an error: NIO will report it; the rest goes its way
            } else {
                for other in inbound.values where other.channel.isActive {
                    if case .bytes = read(other) { moved = true }
                }
            }
            if moved {
                idleSince = MonotonicClock.now()
            } else if MonotonicClock.now() - idleSince > (sent > 0 ? midFrameBudget : budget) {
                // Copy the rest of the frame; it goes out through the queue (or NIO).
                while summed < count { sumAhead() }
                var rest = allocator.buffer(capacity: total - sent)
                withUnsafeBytes(of: &edges) { e in
                    Self.forEachPiece(of: bytes, edges: e, from: sent, to: total) { rest.writeBytes($0) }
                }
                write(rest, to: peer, channel: channel, onLoop: true)
                return true
            } else if MonotonicClock.now() - idleSince > 20e-6 {
                sched_yield()
            }
        }
        return true
    }

    /// Bytes checksummed (and handed to the kernel) at a time by `sendInPlace`: well inside the
    /// cache, and many per socket buffer.
    static let streamPiece = 1 << 18

    /// Calls `body` with the parts of frame bytes `from ..< to` — header (`edges[0..<24]`),
    /// `payload`, trailer (`edges[24..<28]`) — as at most three contiguous pieces, in order.
    @inline(__always)
    static func forEachPiece(of payload: UnsafeRawBufferPointer, edges: UnsafeRawBufferPointer, from: Int, to: Int,
                             _ body: (UnsafeRawBufferPointer) -> Void) {
        let h = FrameHeader.size, p = payload.count
        if from < min(to, h) { body(UnsafeRawBufferPointer(rebasing: edges[from..<min(to, h)])) }
        let lo = max(from, h) - h, hi = min(to, h + p) - h
        if lo < hi { body(UnsafeRawBufferPointer(rebasing: payload[lo..<hi])) }
        let tlo = max(from, h + p) - (h + p), thi = to - (h + p)
        if tlo < thi { body(UnsafeRawBufferPointer(rebasing: edges[(h + tlo)..<(h + thi)])) }
    }

    /// Writes through NIO that the engine must wait for (connection set-up, hand-over).
    func track(_ future: EventLoopFuture<Void>, peer: Int, onLoop: Bool) {
        guard budget > 0 else { return }
        guard onLoop else { untracked = true; return }
        nioPending[peer, default: 0] += 1
        nioPendingTotal += 1
        future.whenComplete { [self] _ in
            nioPendingTotal -= 1
            if let k = nioPending[peer] { nioPending[peer] = k > 1 ? k - 1 : nil }
        }
    }

    /// Writes as much of `peer`'s queue as its socket takes; false on an error (NIO will see it).
    private func flushQueue(_ peer: Int) -> Bool {
        guard let link = outbound[peer], link.channel.isActive else { return false }
        while var head = queued[peer]?.first {
            let n = head.withUnsafeReadableBytes { b in
                send(link.fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK }
            head.moveReaderIndex(forwardBy: n)
            if head.readableBytes == 0 {
                queued[peer]!.removeFirst()
                if queued[peer]!.isEmpty { queued[peer] = nil }
            } else {
                queued[peer]![0] = head
                return true   // the socket is full
            }
        }
        return true
    }

    /// Moves `peer`'s queued frames to NIO, in order.
    private func handOver(_ peer: Int) {
        guard let frames = queued.removeValue(forKey: peer), let link = outbound[peer] else { return }
        for f in frames { track(link.channel.write(f), peer: peer, onLoop: true) }
        link.channel.flush()
    }

    /// Moves every queued frame to NIO: before the thread waits in the loop.
    func handOverAll() {
        for peer in Array(queued.keys) { handOver(peer) }
    }

    /// One turn without waiting: writes what the sockets take, reads what has arrived (the
    /// non-blocking `poll` of asynchronous strategies).
    func pump() {
        guard budget > 0, !untracked else { return }
        for peer in Array(queued.keys) where !flushQueue(peer) { handOver(peer) }
        guard nioPendingTotal == 0 else { return }
        for (_, link) in inbound where link.channel.isActive {
            _ = read(link)   // what has arrived; the end of a stream is NIO's to find
        }
    }

    // MARK: - Receives

    /// Spins until `arrived()` returns a message (returned), or nothing moves for `budget`
    /// seconds, or something needs NIO (nil: queued writes are handed over; wait in the loop).
    /// `peers` nil = any peer.
    func run<M>(waitingFor peers: [Int]?, arrived: () throws -> M?) rethrows -> M? {
        guard budget > 0, !untracked, nioPendingTotal == 0 else { handOverAll(); return nil }
        let readers: [Link]
        if let peers, peers.count == 1 {
            readers = inbound[peers[0]].map { [$0] } ?? []
        } else {
            readers = inbound.filter { peers?.contains($0.key) ?? true }.map(\.value)
        }
        if readers.isEmpty { handOverAll(); return nil }
        var idleSince = MonotonicClock.now()
        while true {
            var moved = false, gotBytes = false
            if readers.count == 1 && queued.isEmpty {
                // One link to watch and nothing to write: try to read it (one system call a turn).
                guard readers[0].channel.isActive else { handOverAll(); return nil }
                switch read(readers[0]) {
                case .bytes: moved = true; gotBytes = true
                case .nothing: break
                case .stop: handOverAll(); return nil
                }
            } else {
                fds.removeAll(keepingCapacity: true)
                roles.removeAll(keepingCapacity: true)
                for (i, link) in readers.enumerated() {
                    fds.append(pollfd(fd: link.fd, events: Int16(POLLIN), revents: 0))
                    roles.append((i, link.channel, true))
                }
                for peer in queued.keys {
                    guard let link = outbound[peer] else { continue }
                    fds.append(pollfd(fd: link.fd, events: Int16(POLLOUT), revents: 0))
                    roles.append((peer, link.channel, false))
                }
                let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress!, nfds_t($0.count), 0) }
                if ready < 0 { handOverAll(); return nil }
                for i in fds.indices where ready > 0 && fds[i].revents != 0 {
                    let (index, channel, isInbound) = roles[i]
                    guard channel.isActive else { handOverAll(); return nil }
                    if isInbound {
                        // Hang-up or error without data: NIO's to handle.
                        guard fds[i].revents & Int16(POLLIN) != 0 else { handOverAll(); return nil }
                        switch read(readers[index]) {
                        case .bytes: moved = true; gotBytes = true
                        case .nothing: break
                        case .stop: handOverAll(); return nil
                        }
                    } else {
                        guard fds[i].revents & Int16(POLLOUT) != 0, flushQueue(index) else { handOverAll(); return nil }
                        moved = true
                    }
                }
            }
            if gotBytes, let m = try arrived() { return m }
            if moved {
                // A handler answered through NIO (rare: control traffic): let the loop finish it.
                if nioPendingTotal > 0 { handOverAll(); return nil }
                idleSince = MonotonicClock.now()
            } else {
                let idle = MonotonicClock.now() - idleSince
                let insideFrame = readers.contains { $0.decoder?.isInsideFrame == true }
                if idle > budget, idle > midFrameBudget || !insideFrame {
                    handOverAll()
                    return nil
                }
                // Hand the CPU to whoever else wants it, but not in the first microseconds (a
                // message in flight on loopback arrives within them).
                // Then, waiting for a message to begin, sleep in poll(2) on these links for the rest
                // of the budget: a spinner that only yields can starve the kernel's softirq thread
                // on its core, and then every packet waits for it (seen here as a lasting slow
                // mode, ~200 µs a message). Inside a frame, keep yielding.
                if idle > Self.busyPolling, queued.isEmpty, !insideFrame {
                    sleepOn(readers, seconds: budget - idle)
                } else if idle > 20e-6 {
                    sched_yield()
                }
            }
        }
    }

    /// Seconds a receive busy-polls (yielding) before it sleeps in poll(2) on its links.
    static let busyPolling = 100e-6

    /// Sleeps until one of `links` is readable (or hung up), for about `seconds` at most (poll's
    /// whole milliseconds, rounded up).
    private func sleepOn(_ links: [Link], seconds: Double) {
        guard seconds > 0 else { return }
        fds.removeAll(keepingCapacity: true)
        for link in links { fds.append(pollfd(fd: link.fd, events: Int16(POLLIN), revents: 0)) }
        let ms = Int32(min((seconds * 1000).rounded(.up), 1000))
        _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress!, nfds_t($0.count), ms) }
    }

    private enum ReadResult { case bytes, nothing, stop }

    /// Reads what is waiting on `link` into its pipeline. Inside a payload the bytes go straight
    /// into it (no copy); otherwise a read of at most 64 KiB (a small frame whole, or the head of
    /// a large one) goes through the read buffer. `.stop` at end of stream or on an error (left
    /// for NIO to find).
    private func read(_ link: Link) -> ReadResult {
        let fd = link.fd
        var n: Int
        if let direct = link.decoder?.readPayloadDirectly({ recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) {
            n = direct
        } else {
            buffer.clear(minimumCapacity: readSize)
            n = 0
            let size = readSize
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
                n = recv(fd, out.baseAddress, size, Int32(MSG_DONTWAIT))
                return max(n, 0)
            }
            if n > 0 { link.channel.pipeline.syncOperations.fireChannelRead(NIOAny(buffer)) }
        }
        if n > 0 { return .bytes }
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? .nothing : .stop
    }
}
