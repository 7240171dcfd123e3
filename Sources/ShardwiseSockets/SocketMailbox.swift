import NIOCore
import Shardwise
import Synchronization

/// Messages that arrived for this node and have not been received yet, the node's one pending
/// receive, and what is known about lost peers.
///
/// Ordering: messages from one sender with one tag come over one TCP connection and are queued in
/// arrival order, so they are received in the order sent. `.any` takes the earliest arrival.
///
/// Lost peers: messages a peer sent before it was lost are still received; after that a receive
/// from it throws `.peerLost`. A receive from `.any` reports each lost peer once (the parameter
/// server catches it and carries on; asking again must not throw the same loss forever).
final class SocketMailbox: Sendable {
    struct Waiter {
        var source: Source
        var tag: Tag
        var timeout: Double
        var continuation: CheckedContinuation<Message, any Error>
        var timer: Scheduled<Void>?
    }
    struct State {
        var queue = MessageQueue()
        var waiter: Waiter?
        var lost: [Int: String] = [:]
        var lossReportedToAny: Set<Int> = []
        var cancelled: String?
        /// Told when a peer is lost or the run is cancelled (a node asleep in `waitForIncoming`).
        var onTrouble: (@Sendable () -> Void)?
    }

    let rank: Int
    private let state = Mutex(State())
    /// Describes where the run is, for error messages ("during iteration 17").
    let context: @Sendable () -> String

    init(rank: Int, context: @escaping @Sendable () -> String) {
        self.rank = rank
        self.context = context
    }

    func deliver(_ message: Message) {
        let resume: Waiter? = state.withLock { s in
            if let w = s.waiter, w.tag == message.tag, w.source == .any || w.source == .rank(message.source) {
                s.waiter = nil
                return w
            }
            s.queue.append(message)
            return nil
        }
        if let w = resume {
            w.timer?.cancel()
            w.continuation.resume(returning: message)
        }
    }

    /// A queued match, or the loss/cancellation that makes waiting pointless, or nil (wait).
    private func immediate(_ s: inout State, source: Source, tag: Tag) -> Result<Message, any Error>? {
        if let reason = s.cancelled { return .failure(CommunicationError.cancelled(rank: rank, reason: reason)) }
        if let m = s.queue.take(from: source, tag: tag) { return .success(m) }
        switch source {
        case .rank(let p):
            if let reason = s.lost[p] { return .failure(lostError(p, reason)) }
        case .any:
            if let p = s.lost.keys.sorted().first(where: { !s.lossReportedToAny.contains($0) }) {
                s.lossReportedToAny.insert(p)
                return .failure(lostError(p, s.lost[p]!))
            }
        }
        return nil
    }

    private func lostError(_ peer: Int, _ reason: String) -> CommunicationError {
        .peerLost(rank: rank, peer: peer, reason: "\(reason) (\(context()))")
    }

    func take(from source: Source, tag: Tag) throws -> Message? {
        let r: Result<Message, any Error>? = state.withLock { s in
            if let reason = s.cancelled { return .failure(CommunicationError.cancelled(rank: rank, reason: reason)) }
            return s.queue.take(from: source, tag: tag).map { .success($0) }
        }
        return try r?.get()
    }

    /// Sets (or clears) what to call when a peer is lost or the run is cancelled.
    func onTrouble(_ notify: (@Sendable () -> Void)?) { state.withLock { $0.onTrouble = notify } }

    /// Whether the run was cancelled or `source` is lost: a receive from it is then answered
    /// at once (with its last messages, then the error), so there is nothing to sleep for.
    func inTrouble(from source: Int) -> Bool {
        state.withLock { $0.cancelled != nil || $0.lost[source] != nil }
    }

    /// A timeout error for a wait on `source` under `tag`, with the run's context.
    func timeoutError(from source: Int, tag: Tag, seconds: Double) -> CommunicationError {
        .timeout(rank: rank, waitingFor: "rank \(source) (\(context()))", tag: tag, seconds: seconds)
    }

    /// Whether a matching message is queued; throws when the run was cancelled.
    func contains(from source: Source, tag: Tag) throws -> Bool {
        let r: Result<Bool, any Error> = state.withLock { s in
            if let reason = s.cancelled { return .failure(CommunicationError.cancelled(rank: rank, reason: reason)) }
            return .success(s.queue.contains(from: source, tag: tag))
        }
        return try r.get()
    }

    /// Waits for a matching message for up to `timeout` seconds (timer on `loop`).
    func wait(from source: Source, tag: Tag, timeout: Double, loop: any EventLoop) async throws -> Message {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Message, any Error>) in
            let now: Result<Message, any Error>? = state.withLock { s in
                if let r = immediate(&s, source: source, tag: tag) { return r }
                precondition(s.waiter == nil, "a node has one receive pending at a time")
                s.waiter = Waiter(source: source, tag: tag, timeout: timeout, continuation: c, timer: nil)
                return nil
            }
            if let now { c.resume(with: now); return }
            let timer = loop.scheduleTask(in: .nanoseconds(Int64(min(timeout, 1e9) * 1e9))) { [self] in expire(tag: tag) }
            let fired: Bool = state.withLock { s in
                guard s.waiter != nil, s.waiter!.tag == tag, s.waiter!.source == source else { return true }
                s.waiter!.timer = timer
                return false
            }
            if fired { timer.cancel() }
        }
    }

    private func expire(tag: Tag) {
        let expired: Waiter? = state.withLock { s in
            guard let w = s.waiter, w.tag == tag else { return nil }
            s.waiter = nil
            return w
        }
        if let w = expired {
            w.continuation.resume(throwing: CommunicationError.timeout(
                rank: rank, waitingFor: "\(w.source) (\(context()))", tag: w.tag, seconds: w.timeout))
        }
    }

    /// Records that `peer` is gone; fails the pending receive if it was waiting for that peer.
    func markLost(_ peer: Int, reason: String) {
        var trouble: (@Sendable () -> Void)?
        defer { trouble?() }
        let failed: (Waiter, any Error)? = state.withLock { s in
            guard s.lost[peer] == nil else { return nil }
            s.lost[peer] = reason
            trouble = s.onTrouble
            guard let w = s.waiter, w.source == .rank(peer) || w.source == .any else { return nil }
            if w.source == .any { s.lossReportedToAny.insert(peer) }
            s.waiter = nil
            return (w, lostError(peer, reason))
        }
        if let (w, error) = failed {
            w.timer?.cancel()
            w.continuation.resume(throwing: error)
        }
    }

    func isLost(_ peer: Int) -> Bool { state.withLock { $0.lost[peer] != nil } }
    var lostPeers: [Int: String] { state.withLock { $0.lost } }

    /// Fails every pending and future receive.
    func cancel(reason: String) {
        var trouble: (@Sendable () -> Void)?
        defer { trouble?() }
        let w: Waiter? = state.withLock { s in
            trouble = s.onTrouble
            if s.cancelled == nil { s.cancelled = reason }
            let w = s.waiter
            s.waiter = nil
            return w
        }
        w?.timer?.cancel()
        w?.continuation.resume(throwing: CommunicationError.cancelled(rank: rank, reason: reason))
    }

}

