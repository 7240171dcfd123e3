import NIOCore
import Shardwise
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A receive's busy-poll: how a node waits a short while for a message without sleeping.
///
/// The node runs on its event-loop thread (see `SocketCommunicator`). Left to NIO, a receive
/// suspends and the thread sleeps in epoll until bytes arrive; waking it costs tens of
/// microseconds (on this 2-core virtual machine about 100 µs a message, measured with plain C
/// sockets too), more than a small message takes to cross loopback. So before it sleeps, a
/// receive spins here, as MPI's progress engines do:
///
/// - it reads the inbound data links it waits on itself (`recv`, non-blocking) and hands the
///   bytes to the channel's pipeline (`fireChannelRead`): the same frame decoder, on the same
///   thread, in stream order, as if NIO had read them. NIO reads only when this thread is back
///   in the loop, so there is one reader at a time;
/// - it stops as soon as the message is in the mailbox, or when nothing has arrived for `budget`
///   seconds, or on anything unusual (end of stream, an error, a closed channel): then the
///   receive waits in the loop as before, and NIO finds whatever the spin left;
/// - it does not run while a write of this node is still pending in NIO (a large message that
///   did not fit the socket buffer): the loop that would finish that write is this thread, and a
///   peer may be waiting for it before it sends what we wait for.
///
/// Each turn without progress yields the CPU (`sched_yield`), so nodes that outnumber the cores
/// still run. Everything here is confined to the event loop.
final class ReceiveSpin: @unchecked Sendable {
    private struct Link {
        let fd: Int32
        let channel: any Channel
    }

    /// Seconds without an arriving byte before the receive goes back to sleeping in the loop.
    let budget: Double
    /// Inbound data links by peer.
    private var inbound: [Int: Link] = [:]
    /// Writes handed to NIO and not yet completed.
    private var pendingWrites = 0
    /// A write was started off the event loop and cannot be tracked: the spin stays off.
    private var untracked = false
    private var buffer: ByteBuffer
    private var readSize = 1 << 16
    private var fds: [pollfd] = []
    private var channels: [any Channel] = []

    init(budget: Double, allocator: ByteBufferAllocator) {
        self.budget = budget
        buffer = allocator.buffer(capacity: 1 << 16)
    }

    /// Registers an authenticated inbound data link (found by its addresses; see
    /// `SocketDescriptors`). Without its descriptor the link is simply not spun on.
    func addInbound(peer: Int, channel: any Channel) {
        guard budget > 0, let local = channel.localAddress, let remote = channel.remoteAddress,
              let fd = SocketDescriptors.find(local: local, remote: remote) else { return }
        inbound[peer] = Link(fd: fd, channel: channel)
    }

    func remove(peer: Int) { inbound[peer] = nil }

    /// Counts a write until NIO completes it.
    func track(_ future: EventLoopFuture<Void>, onLoop: Bool) {
        guard budget > 0 else { return }
        guard onLoop else { untracked = true; return }
        pendingWrites += 1
        future.whenComplete { [self] _ in pendingWrites -= 1 }
    }

    /// Spins until `arrived()` returns a message (returned), or nothing arrives for `budget`
    /// seconds, or something needs NIO (nil: wait in the loop). `peers` nil = any peer.
    func run<M>(waitingFor peers: [Int]?, arrived: () throws -> M?) rethrows -> M? {
        guard budget > 0, !untracked, pendingWrites == 0, !inbound.isEmpty else { return nil }
        fds.removeAll(keepingCapacity: true)
        channels.removeAll(keepingCapacity: true)
        for (peer, link) in inbound where peers?.contains(peer) ?? true {
            fds.append(pollfd(fd: link.fd, events: Int16(POLLIN), revents: 0))
            channels.append(link.channel)
        }
        if fds.isEmpty { return nil }
        var idleSince = MonotonicClock.now()
        while true {
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress!, nfds_t($0.count), 0) }
            if ready < 0 { return nil }
            if ready > 0 {
                for i in fds.indices where fds[i].revents != 0 {
                    // Hang-up or error without data, or a channel NIO has closed: NIO's to handle.
                    guard fds[i].revents & Int16(POLLIN) != 0, channels[i].isActive,
                          read(fds[i].fd, into: channels[i]) else { return nil }
                }
                if let m = try arrived() { return m }
                if pendingWrites > 0 { return nil }   // a handler wrote (a reply NIO must finish)
                idleSince = MonotonicClock.now()
            } else {
                if MonotonicClock.now() - idleSince > budget { return nil }
                sched_yield()
            }
        }
    }

    /// Reads what is waiting on `fd` into the pipeline of `channel`; false at end of stream or on
    /// an error (left for NIO to find). Reads grow from 64 KiB to 4 MiB while they come back full.
    private func read(_ fd: Int32, into channel: any Channel) -> Bool {
        buffer.clear(minimumCapacity: readSize)
        var result = 0
        let size = readSize
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            result = recv(fd, out.baseAddress, size, Int32(MSG_DONTWAIT))
            return max(result, 0)
        }
        guard result > 0 else { return result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) }
        if result == size { readSize = min(size * 2, 1 << 22) }
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(buffer))
        return true
    }
}
