import Shardwise
import Synchronization

/// A message waiting in a node's mailbox, with the virtual time its transfer began.
struct PendingMessage {
    var message: Message
    var start: Double
}

/// One node's mailbox: messages in arrival order. A receive takes the earliest that matches, which
/// keeps the per-(sender, tag) order (a sender's uplink sends one message at a time, in order) and
/// makes `.any` mean "the first to arrive".
struct SimulatedMailbox {
    private var items: [PendingMessage?] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }

    mutating func append(_ p: PendingMessage) { items.append(p) }

    mutating func take(from source: Source, tag: Tag) -> PendingMessage? {
        var i = head
        while i < items.count {
            if let p = items[i], p.message.tag == tag, Self.matches(source, p.message.source) {
                items[i] = nil
                if i == head {
                    while head < items.count && items[head] == nil { head += 1 }
                    if head == items.count {
                        items.removeAll(keepingCapacity: true)
                        head = 0
                    } else if head > 64 && head * 2 > items.count {
                        items.removeFirst(head)
                        head = 0
                    }
                }
                return p
            }
            i += 1
        }
        return nil
    }

    /// (source, tag) of what is queued, for deadlock messages.
    var summary: [String] { items[head...].compactMap { $0.map { "rank \($0.message.source) (\($0.message.tag))" } } }

    @inline(__always)
    static func matches(_ source: Source, _ sender: Int) -> Bool {
        switch source {
        case .any: return true
        case .rank(let r): return r == sender
        }
    }
}

/// The simulation: one virtual clock, an event queue, the links, every node's mailbox, and the
/// driver that runs the nodes' tasks on one thread.
///
/// The driver loop:
/// 1. run every ready job (node code) until none is ready — virtual time stands still meanwhile;
/// 2. if every node has finished, stop;
/// 3. if nothing is scheduled, every live node is blocked forever: fail them with `.deadlock`;
/// 4. otherwise move the clock to the earliest of (next event, next receive deadline) and process
///    every event at that time (deliveries wake receivers, wake-ups end sleeps), then go to 1.
///
/// Everything here is touched by the driver thread only (node code runs on it too), so there is
/// no locking; `@unchecked Sendable` records that promise.
final class SimulationEngine: @unchecked Sendable {
    struct Receiver {
        var source: Source
        var tag: Tag
        var timeout: Double
        var generation: Int
        var continuation: UnsafeContinuation<PendingMessage, any Error>
    }

    struct NodeState {
        var sleeper: UnsafeContinuation<Void, Never>?
        var receiver: Receiver?
        var generation = 0
        var finished = false
        /// Blocked in the native all-reduce rendezvous.
        var inCollective = false
        var recheckScheduled = false
        /// Down windows [start, end), sorted.
        var downtime: [(start: Double, end: Double)] = []
        var rng: Xoshiro256
    }

    let size: Int
    let model: SimulationModel
    let defaultTimeout: Double
    let executor = SimulationExecutor()

    private(set) var now = 0.0
    private var events = EventQueue()
    private var deadlines = DeadlineQueue()
    private var uplinkFree: [Double]
    private var downlinkFree: [Double]
    private var mailboxes: [SimulatedMailbox]
    private var nodes: [NodeState]
    private var slowdown: [Double]
    private var delayed: [Bool]

    private(set) var eventsProcessed = 0
    private(set) var messages = 0
    private(set) var finishTime = 0.0
    private var started = 0
    private let gate: Mutex<[UnsafeContinuation<Void, Never>?]>
    private var finishedCount = 0
    private(set) var firstError: (any Error)?
    private var cancelReason: String?

    // Native all-reduce rendezvous.
    private var collectiveArrived = 0
    private var collectiveContributions: [Any?]
    private var collectiveResult: Any?

    init(size: Int, model: SimulationModel, defaultTimeout: Double) {
        self.size = size
        self.model = model
        self.defaultTimeout = defaultTimeout
        uplinkFree = Array(repeating: 0, count: size)
        downlinkFree = Array(repeating: 0, count: size)
        mailboxes = Array(repeating: SimulatedMailbox(), count: size)
        nodes = (0..<size).map { NodeState(rng: Xoshiro256(seed: model.stragglers.seed, stream: 0x5157 &+ UInt64($0))) }
        for f in model.faults where f.rank >= 0 && f.rank < size {
            nodes[f.rank].downtime.append((f.at, f.at + f.downtime))
        }
        for r in 0..<size { nodes[r].downtime.sort { $0.start < $1.start } }
        slowdown = (0..<size).map { model.stragglers.factor(of: $0) }
        let delayRanks = Set(model.stragglers.delayRanks ?? Array(0..<size))
        delayed = (0..<size).map { model.stragglers.delay != nil && delayRanks.contains($0) }
        collectiveContributions = Array(repeating: nil, count: size)
        gate = Mutex(Array(repeating: nil, count: size))
    }

    // MARK: - Running

    /// Runs `body(rank)` for every rank as a task on the simulation executor and drives the
    /// simulation on a thread of its own until every node has finished. Failures are in
    /// `firstError`.
    func run(_ body: @escaping @Sendable (Int) async throws -> Void) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DriverThread.start { [self] in
                drive(body)
                done.resume()
            }
        }
    }

    private func drive(_ body: @escaping @Sendable (Int) async throws -> Void) {
        for r in 0..<size {
            Task(executorPreference: executor) { [self] in
                // A new task may first be scheduled by the runtime from another thread, so the
                // order in which tasks arrive is not ours; every node waits at this gate until all
                // have arrived, and the driver then starts them in rank order.
                await withUnsafeContinuation { c in gate.withLock { $0[r] = c } }
                do { try await body(r) } catch { fail(error) }
                nodes[r].finished = true
                finishedCount += 1
                finishTime = max(finishTime, now)
            }
        }
        while true {
            let ran = executor.runReadyJobs()
            if finishedCount == size { return }
            if started < size {
                // Tasks are still being set up by the runtime; their first jobs are on their way.
                let arrived = gate.withLock { g in g.allSatisfy { $0 != nil } ? g : nil }
                if let arrived {
                    started = size
                    for c in arrived { c!.resume() }
                } else if ran == 0 {
                    sched_yield()
                }
                continue
            }
            guard let next = events.nextTime else {
                resolveDeadlock()
                continue
            }
            if let d = deadlines.earliest(isLive: { [nodes] in nodes[$0.rank].receiver?.generation == $0.generation }),
               d.deadline < next {
                now = max(now, d.deadline)
                expire(d)
                continue
            }
            now = next
            while let t = events.nextTime, t == next {
                eventsProcessed += 1
                process(events.pop()!.event)
            }
        }
    }

    private func process(_ event: SimulationEvent) {
        switch event {
        case let .deliver(message, destination, start, wakeSender):
            if wakeSender { wake(message.source) }
            deliver(PendingMessage(message: message, start: start), to: destination)
        case .wake(let rank):
            wake(rank)
        case .recheck(let rank):
            nodes[rank].recheckScheduled = false
            if let r = nodes[rank].receiver, let p = mailboxes[rank].take(from: r.source, tag: r.tag) {
                handOver(p, to: rank)
            }
        }
    }

    // MARK: - Failure

    /// Records a node's failure; the first real one ends the run, and every node still waiting (or
    /// about to wait) is told so.
    func fail(_ error: any Error) {
        let isEcho: Bool
        if case CommunicationError.cancelled = error { isEcho = true } else { isEcho = false }
        if firstError == nil || (!isEcho && Self.isEcho(firstError!)) { firstError = error }
        guard cancelReason == nil else { return }
        cancelReason = "another node failed: \(error)"
        for r in 0..<size {
            if let w = nodes[r].receiver {
                nodes[r].receiver = nil
                w.continuation.resume(throwing: CommunicationError.cancelled(rank: r, reason: cancelReason!))
            }
        }
    }

    private static func isEcho(_ e: any Error) -> Bool {
        if case CommunicationError.cancelled = e { return true }
        return false
    }

    private func checkCancelled(_ rank: Int) throws {
        if let cancelReason { throw CommunicationError.cancelled(rank: rank, reason: cancelReason) }
    }

    /// Nothing is scheduled and no job is ready: every live node waits for something that can no
    /// longer happen. Fail them all, naming who waits for what.
    private func resolveDeadlock() {
        var waiting: [String] = []
        for r in 0..<size where !nodes[r].finished {
            if let w = nodes[r].receiver {
                var line = "rank \(r) waits for \(w.source) (\(w.tag))"
                let queued = mailboxes[r].summary
                if !queued.isEmpty { line += " holding \(queued.prefix(3).joined(separator: ", "))" }
                waiting.append(line)
            } else if nodes[r].inCollective {
                waiting.append("rank \(r) waits in the native all-reduce")
            }
        }
        let shown = waiting.prefix(8).joined(separator: "; ") + (waiting.count > 8 ? "; … (\(waiting.count) ranks)" : "")
        let what = "at virtual time \(now) s every live node is blocked and no message is in flight: \(shown)"
        for r in 0..<size where !nodes[r].finished {
            if let w = nodes[r].receiver {
                nodes[r].receiver = nil
                w.continuation.resume(throwing: CommunicationError.deadlock(what))
            } else if nodes[r].inCollective, let c = nodes[r].sleeper {
                // Released without a result: the caller sees `collectiveResult == nil` and throws.
                nodes[r].sleeper = nil
                nodes[r].inCollective = false
                collectiveFailure = what
                c.resume()
            }
        }
        if waiting.isEmpty { fatalError("simulation stalled with no waiting node: \(what)") }
    }
    private var collectiveFailure: String?

    private func expire(_ d: DeadlineQueue.Entry) {
        guard let w = nodes[d.rank].receiver, w.generation == d.generation else { return }
        nodes[d.rank].receiver = nil
        w.continuation.resume(throwing: CommunicationError.timeout(
            rank: d.rank, waitingFor: w.source.description, tag: w.tag, seconds: w.timeout))
    }

    // MARK: - Crashes

    /// The end of the down window containing t, if rank is down at t.
    private func restart(_ rank: Int, at t: Double) -> Double? {
        for w in nodes[rank].downtime where t >= w.start && t < w.end { return w.end }
        return nil
    }

    /// When work on `rank` that starts now and needs `duration` ends, counting the node's crashes
    /// in between (the work pauses while the node is down); and how long it was down.
    private func workEnd(_ rank: Int, duration: Double) -> (end: Double, down: Double) {
        var end = now + duration, down = 0.0
        for w in nodes[rank].downtime where w.start >= now && w.start < end {
            end += w.end - w.start
            down += w.end - w.start
        }
        return (end, down)
    }

    // MARK: - Sleeping and waking

    private func sleep(_ rank: Int, until t: Double) async {
        events.push(.wake(rank: rank), at: t)
        await withUnsafeContinuation { nodes[rank].sleeper = $0 }
    }

    private func wake(_ rank: Int) {
        guard let c = nodes[rank].sleeper else { return }
        if let back = restart(rank, at: now) {
            events.push(.wake(rank: rank), at: back)
            return
        }
        nodes[rank].sleeper = nil
        c.resume()
    }

    // MARK: - Compute

    /// The modelled cost of `work` on `rank`: elements × seconds per element × the rank's
    /// slowdown, plus a random delay when the rank has one.
    func cost(of work: ComputeWork, rank: Int) -> Double {
        var c = Double(work.elements) * model.compute.secondsPerElement * slowdown[rank]
        if delayed[rank], let dist = model.stragglers.delay { c += draw(dist, rank: rank) }
        return c
    }

    private func draw(_ dist: DelayDistribution, rank: Int) -> Double {
        switch dist {
        case .exponential(let mean):
            return -mean * log1p(-nodes[rank].rng.unit())
        case .logNormal(let mu, let sigma):
            // Box–Muller.
            let u1 = 1 - nodes[rank].rng.unit(), u2 = nodes[rank].rng.unit()
            let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            return exp(mu + sigma * z)
        }
    }

    /// Holds `rank` for `seconds` of computation; returns the time it was down meanwhile.
    func compute(rank: Int, seconds: Double) async -> Double {
        let (end, down) = workEnd(rank, duration: seconds)
        if end > now { await sleep(rank, until: end) }
        return down
    }

    // MARK: - Messages

    /// Sends: the message occupies the sender's uplink and (with shared links) the receiver's
    /// downlink for α + bytes/β, starting when both are free; the sender is busy until its message
    /// has left. Returns the transfer's cost and how long the message queued for the links.
    func send(_ payload: [UInt8], from source: Int, to destination: Int, tag: Tag) async throws -> (cost: Double, queued: Double) {
        try checkCancelled(source)
        messages += 1
        let message = Message(source: source, tag: tag, payload: payload)
        if source == destination {
            deliver(PendingMessage(message: message, start: now), to: destination)
            return (0, 0)
        }
        let cost = model.network.cost(bytes: payload.count)
        var start = max(now, uplinkFree[source])
        if model.network.sharedLinks {
            start = max(start, downlinkFree[destination])
            downlinkFree[destination] = start + cost
        }
        uplinkFree[source] = start + cost
        let queued = start - now
        events.push(.deliver(message: message, destination: destination, start: start, wakeSender: true), at: start + cost)
        await withUnsafeContinuation { nodes[source].sleeper = $0 }
        return (cost, queued)
    }

    private func deliver(_ p: PendingMessage, to rank: Int) {
        if let w = nodes[rank].receiver, w.tag == p.message.tag, SimulatedMailbox.matches(w.source, p.message.source) {
            if let back = restart(rank, at: now) {
                mailboxes[rank].append(p)
                scheduleRecheck(rank, at: back)
            } else {
                handOver(p, to: rank)
            }
            return
        }
        mailboxes[rank].append(p)
    }

    private func handOver(_ p: PendingMessage, to rank: Int) {
        let w = nodes[rank].receiver!
        nodes[rank].receiver = nil
        w.continuation.resume(returning: p)
    }

    private func scheduleRecheck(_ rank: Int, at t: Double) {
        guard !nodes[rank].recheckScheduled else { return }
        nodes[rank].recheckScheduled = true
        events.push(.recheck(rank: rank), at: t)
    }

    /// Takes a matching message, waiting for it when none has arrived. Returns it with the time
    /// the wait began (nil when it was already there).
    func receive(rank: Int, from source: Source, tag: Tag, timeout: Double?) async throws -> (PendingMessage, Double?) {
        if let p = mailboxes[rank].take(from: source, tag: tag) { return (p, nil) }
        try checkCancelled(rank)
        let t0 = now
        let limit = timeout ?? defaultTimeout
        nodes[rank].generation += 1
        let generation = nodes[rank].generation
        deadlines.add(.init(deadline: now + limit, rank: rank, generation: generation), inOrder: timeout == nil)
        let p = try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<PendingMessage, any Error>) in
            nodes[rank].receiver = Receiver(source: source, tag: tag, timeout: limit, generation: generation, continuation: c)
        }
        return (p, t0)
    }

    func poll(rank: Int, from source: Source, tag: Tag) throws -> PendingMessage? {
        try checkCancelled(rank)
        return mailboxes[rank].take(from: source, tag: tag)
    }

    // MARK: - Native all-reduce

    /// The ring all-reduce's time and traffic, modelled in closed form instead of message by
    /// message: every rank waits for the last to arrive, then all finish 2(m−1)·(α + ⌈d/m⌉·s/β)
    /// later with the sum (added in rank order). Link contention with other traffic is ignored.
    /// Returns (communication, waiting, bytes sent, messages sent) for the caller's metrics.
    func nativeAllReduce<Scalar: BLASScalar>(rank: Int, _ v: inout [Scalar]) async throws
        -> (communication: Double, waiting: Double, bytes: Int, messages: Int)
    {
        try checkCancelled(rank)
        let m = size
        let chunkBytes = ((v.count + m - 1) / m) * Scalar.byteWidth
        let steps = 2 * (m - 1)
        let duration = Double(steps) * model.network.cost(bytes: chunkBytes)
        let arrival = now
        collectiveContributions[rank] = v
        collectiveArrived += 1
        if collectiveArrived == m {
            var sum = [Scalar](repeating: 0, count: v.count)
            for r in 0..<m {
                let part = collectiveContributions[r] as! [Scalar]
                for j in sum.indices { sum[j] += part[j] }
                collectiveContributions[r] = nil
            }
            collectiveArrived = 0
            collectiveResult = sum
            let end = now + duration
            for r in 0..<m where r != rank { events.push(.wake(rank: r), at: end) }
            messages += m * steps
            await sleep(rank, until: end)
        } else {
            nodes[rank].inCollective = true
            await withUnsafeContinuation { nodes[rank].sleeper = $0 }
            nodes[rank].inCollective = false
            if let collectiveFailure { throw CommunicationError.deadlock(collectiveFailure) }
        }
        v = collectiveResult as! [Scalar]
        let total = now - arrival
        return (min(duration, total), max(0, total - duration), steps * chunkBytes, steps)
    }
}

/// A detached OS thread for the simulation driver.
enum DriverThread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        var t = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 16 << 20)
        let box = Unmanaged.passRetained(Box(body))
        let rc = pthread_create(&t, &attributes, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "cannot start the simulation thread (pthread_create: \(rc))")
        pthread_attr_destroy(&attributes)
        pthread_detach(t)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
