import Dispatch
import Shardwise
import Synchronization

/// The wire of the threads backend: one mailbox per rank. Payloads are passed by reference (an
/// array of bytes produced by the codec) but counted exactly as a network would count them.
final class InMemoryFabric: Sendable {
    let size: Int
    let mailboxes: [Mailbox]
    let start = MonotonicClock.now()
    private let cancelled = Mutex<String?>(nil)
    private let watchdogStop = Atomic<Bool>(false)

    init(size: Int) {
        self.size = size
        mailboxes = (0..<size).map { Mailbox(rank: $0) }
    }

    var now: Double { MonotonicClock.now() - start }

    /// Fails every waiting and future receive (another node failed; the run is over).
    func cancel(reason: String) {
        cancelled.withLock { if $0 == nil { $0 = reason } }
        for m in mailboxes { m.cancel(reason: reason) }
    }

    /// Checks receive deadlines every `interval` seconds until `stopWatchdog()`.
    func startWatchdog(interval: Double = 0.005) {
        let fabric = self
        Thread.detach {
            while !fabric.watchdogStop.load(ordering: .relaxed) {
                let t = fabric.now
                for m in fabric.mailboxes { m.expire(now: t) }
                usleep(useconds_t(interval * 1e6))
            }
        }
    }

    func stopWatchdog() { watchdogStop.store(true, ordering: .relaxed) }
}

/// Messages waiting for one rank, and that rank's pending receive.
final class Mailbox: Sendable {
    struct Waiter {
        var source: Source
        var tag: Tag
        var deadline: Double
        var timeout: Double
        var continuation: CheckedContinuation<Message, any Error>
    }
    struct State {
        var queue = MessageQueue()
        var waiter: Waiter?
        var cancelled: String?
    }

    let rank: Int
    private let state = Mutex(State())

    init(rank: Int) { self.rank = rank }

    func deliver(_ message: Message) {
        let resume: (CheckedContinuation<Message, any Error>, Message)? = state.withLock { s in
            if let w = s.waiter, w.tag == message.tag, w.source == .any || w.source == .rank(message.source) {
                s.waiter = nil
                return (w.continuation, message)
            }
            s.queue.append(message)
            return nil
        }
        if let (c, m) = resume { c.resume(returning: m) }
    }

    /// Takes a queued message matching (source, tag), the earliest for `.any`.
    func take(from source: Source, tag: Tag) throws -> Message? {
        try state.withLock { s in
            if let reason = s.cancelled { throw CommunicationError.cancelled(rank: rank, reason: reason) }
            return s.queue.take(from: source, tag: tag)
        }
    }

    /// Waits for a matching message, up to `timeout` seconds after `now`.
    func wait(from source: Source, tag: Tag, now: Double, timeout: Double) async throws -> Message {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Message, any Error>) in
            let immediate: Result<Message, any Error>? = state.withLock { s in
                if let reason = s.cancelled { return .failure(CommunicationError.cancelled(rank: rank, reason: reason)) }
                if let m = s.queue.take(from: source, tag: tag) { return .success(m) }
                s.waiter = Waiter(source: source, tag: tag, deadline: now + timeout, timeout: timeout, continuation: c)
                return nil
            }
            if let immediate { c.resume(with: immediate) }
        }
    }

    func expire(now: Double) {
        let expired: Waiter? = state.withLock { s in
            guard let w = s.waiter, now >= w.deadline else { return nil }
            s.waiter = nil
            return w
        }
        if let w = expired {
            w.continuation.resume(throwing: CommunicationError.timeout(
                rank: rank, waitingFor: w.source.description, tag: w.tag, seconds: w.timeout))
        }
    }

    func cancel(reason: String) {
        let w: Waiter? = state.withLock { s in
            if s.cancelled == nil { s.cancelled = reason }
            let w = s.waiter
            s.waiter = nil
            return w
        }
        w?.continuation.resume(throwing: CommunicationError.cancelled(rank: rank, reason: reason))
    }
}

/// A detached OS thread for small background duties (the watchdog).
enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(body))
        pthread_create(&t, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        pthread_detach(t)
    }
}

#if canImport(Glibc)
import Glibc
#endif
