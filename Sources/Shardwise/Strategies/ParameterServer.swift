/// How the parameter server turns an arriving gradient into an update (`--ps-update`).
public enum PSUpdateRule: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Apply the sum of every worker's *latest* gradient (the aggregated form, as in SAG): converges
    /// to the exact w* with a constant step, because at a fixed point every stored gradient was
    /// computed at w*. The default.
    case aggregate
    /// Apply each arriving gradient on its own — the textbook asynchronous SGD. A stale gradient
    /// pulls w towards where it was computed, and a fast worker's shard is applied more often than
    /// a slow one's: with stragglers the iterates settle near a point biased towards the fast
    /// workers' shards, and circle it at a distance set by the step, never reaching w*. This is
    /// the harm of stale gradients that the lab exists to show.
    case each

    public var description: String { rawValue }
}

/// The asynchronous parameter server, client-server: rank 0 holds w and serves; ranks 1…m−1 are
/// workers, each with a shard.
///
/// A worker loops: pull w (with its version), compute its shard's gradient sum, push it. The
/// server keeps each worker's latest gradient and, as each arrives, applies by the job's
/// `PSUpdateRule` either the sum of the latest gradients (`aggregate`, the default: the
/// aggregated-gradient form of asynchronous SGD, as in SAG, which converges to the exact w* with a
/// constant step) or the arriving gradient alone (`each`, the textbook asynchronous SGD).
///
/// Staleness (Stale Synchronous Parallel, Ho et al., 2013) is bounded by `staleness` = s:
/// - s = 0: the server waits for every worker's gradient of the round, then takes one full step —
///   exactly synchronous gradient descent.
/// - s ≥ 1: each arriving gradient triggers a step of size η/W (W workers, so a round of W
///   arrivals moves about as far as one synchronous step); a worker that has pushed more than s
///   gradients beyond the slowest worker is held back until it catches up.
/// - nil: fully asynchronous.
///
/// Both rules take the step η/W per arrival. `aggregate` steps along (Σₖ gₖ)/n + λw, the full
/// gradient from the latest sums. `each` steps along W·g_k/n + λw for the arriving worker k, i.e.
/// w ← w − η·(g_k/n + λw/W): every row keeps the weight 1/n it has in the full gradient (for
/// balanced shards W·g_k/n is the worker's own mean gradient g_k/n_k), so a round of W arrivals at
/// the same w is exactly one synchronous step, and whatever `each` loses against `aggregate` is the
/// asynchrony's doing, not a reweighting of shards (1/n_k would weight a small shard's rows more
/// than a large one's). With s = 0 the two rules coincide: the round's sum is one synchronous step.
/// The convergence monitor sees the norm of the aggregated latest gradients under both rules.
///
/// The staleness of every applied gradient (server version at apply − version it was computed
/// at) is recorded. A worker that is lost (its peer connection dies) is dropped: its gradient and
/// rows leave the sum, the server carries on, and the outcome notes the shard that was lost. In
/// the synchronous mode the round then waits only for the workers left: if their gradients are
/// all in, the step is taken at once.
public struct ParameterServer: Strategy {
    public var kind: StrategyKind { .parameterServer }
    public init() {}

    static let modelTag = Tag(11)
    static let gradientTag = Tag(12)
    /// Header before the codec bytes: the model version (UInt64) and the row count (UInt64).
    static let headerBytes = 16

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        if node.size == 1 { return try await MapReduce().run(node) }
        let learningRate = try await node.resolveLearningRate()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        if node.rank == 0 {
            return try await serve(node, learningRate: learningRate, rowsPerStep: rowsPerStep)
        }
        return try await work(node, local: local, learningRate: learningRate)
    }

    // MARK: Worker

    private func work<Scalar: BLASScalar>(
        _ node: Node<Scalar>, local: LocalGradient<Scalar>, learningRate: Double
    ) async throws -> NodeOutcome {
        let comm = node.comm, d = node.features
        var w = [Scalar](repeating: 0, count: d)
        var g = [Scalar](repeating: 0, count: d)
        var pushes = 0
        while true {
            let message = try await comm.receive(from: .rank(0), tag: Self.modelTag)
            if message.payload.isEmpty { break }
            let (version, _, body) = try Self.split(message)
            try w.withUnsafeMutableBufferPointer { try node.codec.decode(body, into: $0) }
            _ = try await comm.compute(local.kernel.work(rows: local.rowsPerStep)) { local.evaluate(w: w, into: &g) }
            let t0 = comm.now
            let bytes = Self.header(version: version, rows: local.rowsPerStep)
                + node.codec.encode(g, stream: CodecStream(tag: Self.gradientTag, peer: 0))
            comm.metrics.addCommunication(seconds: comm.now - t0)
            try await comm.send(bytes, to: 0, tag: Self.gradientTag)
            pushes += 1
        }
        return NodeOutcome(rank: node.rank, role: "worker", model: nil, iterations: pushes, stopReason: nil,
                           learningRate: learningRate, recorder: node.recorder, rows: node.shard.rows)
    }

    // MARK: Server

    private func serve<Scalar: BLASScalar>(
        _ node: Node<Scalar>, learningRate: Double, rowsPerStep initialRows: Int
    ) async throws -> NodeOutcome {
        let comm = node.comm, d = node.features, codec = node.codec
        let workers = Array(1..<comm.size)
        let bound = node.job.strategy.parameterServer.staleness   // nil = unbounded
        let synchronous = bound == 0
        let rule = node.job.strategy.parameterServer.update
        var active = Set(workers)
        var rowsPerStep = initialRows
        var rowsOf = [Int](repeating: 0, count: comm.size)
        var w = node.startingModel()
        var latest = [[Scalar]](repeating: [Scalar](repeating: 0, count: d), count: comm.size)
        var reported = [Bool](repeating: false, count: comm.size)
        var clock = [Int](repeating: 0, count: comm.size)
        var busy = Set<Int>()
        var held = Set<Int>()
        var version = 0, updates = 0, round = 0
        /// Synchronous: the workers whose gradient of this round is in.
        var arrived = Set<Int>()
        var step = DescentStep<Scalar>(learningRate: learningRate, momentum: node.job.optimizer.momentum, features: d)
        var monitor = ConvergenceMonitor(node.job.stopping)
        var stop: StopReason?
        var notes: [String] = []
        var incoming = [Scalar](repeating: 0, count: d)
        var g = [Scalar](repeating: 0, count: d)

        func sendModel(to r: Int) async throws {
            let t0 = comm.now
            let bytes = Self.header(version: version, rows: 0)
                + codec.encode(w, stream: CodecStream(tag: Self.modelTag, peer: -1))
            comm.metrics.addCommunication(seconds: comm.now - t0)
            try await comm.send(bytes, to: r, tag: Self.modelTag)
            busy.insert(r)
        }
        /// g ← (Σ latest, in rank order)/n + λw; returns |g|.
        func aggregate() -> Double {
            for j in 0..<d { g[j] = 0 }
            for r in workers where active.contains(r) { for j in 0..<d { g[j] += latest[r][j] } }
            w.withUnsafeBufferPointer { wp in
                g.withUnsafeMutableBufferPointer { gp in
                    node.objective.finishGradient(gp.baseAddress!, w: wp.baseAddress!, count: d, rows: max(rowsPerStep, 1))
                }
            }
            return euclideanNorm(g)
        }
        /// `each`: g ← W·g_k/n + λw from worker k's gradient alone (W active workers), so that the
        /// step η/W moves w by η·(g_k/n + λw/W).
        func arriving(_ k: Int) {
            let weight = Scalar(active.count)
            for j in 0..<d { g[j] = weight * latest[k][j] }
            w.withUnsafeBufferPointer { wp in
                g.withUnsafeMutableBufferPointer { gp in
                    node.objective.finishGradient(gp.baseAddress!, w: wp.baseAddress!, count: d, rows: max(rowsPerStep, 1))
                }
            }
        }
        /// Synchronous: every active worker's gradient of the round is in: one full step, then
        /// the next round's model to every active worker.
        func synchronousStep() async throws {
            let norm = aggregate()
            try endOfRound(norm: norm)
            if stop != nil { return }
            let applying = comm.metrics.timeline?.now
            step.apply(g, to: &w)
            if let applying { comm.metrics.timeline?.span("apply", cat: "server", since: applying) }
            version += 1; updates += 1; round += 1; arrived = []
            if round >= node.job.stopping.maxIterations { stop = .maxIterations; return }
            for r in workers where active.contains(r) { try await sendModel(to: r) }
        }
        /// Observes the round and decides whether to stop.
        func endOfRound(norm: Double?) throws {
            node.observe(iteration: round, model: w, gradientNorm: norm)
            if let norm, let reason = monitor.check(gradientNorm: norm) {
                if reason == .diverged {
                    throw node.divergence(iteration: round, learningRate: learningRate, gradientNorm: norm)
                }
                stop = reason
            }
        }

        /// SSP: releases every held worker no more than `bound` pushes ahead of the slowest active one.
        func releaseHeld() async throws {
            let slowest = active.map { clock[$0] }.min() ?? 0
            for r in held.sorted() where bound == nil || clock[r] - slowest <= bound! {
                held.remove(r)
                try await sendModel(to: r)
            }
        }

        for r in workers { try await sendModel(to: r) }
        loop: while stop == nil {
            // Take the next gradient from any worker.
            let message: Message
            do {
                message = try await comm.receive(from: .any, tag: Self.gradientTag)
            } catch CommunicationError.peerLost(_, let peer, let reason) where active.contains(peer) {
                // Carry on without the lost worker: its gradient and rows leave the sum.
                active.remove(peer)
                busy.remove(peer)
                held.remove(peer)
                rowsPerStep -= rowsOf[peer]
                notes.append(reported[peer]
                    ? "lost worker rank \(peer) at round \(round) (\(reason)); its shard of \(rowsOf[peer]) rows was dropped"
                    : "lost worker rank \(peer) at round \(round) (\(reason)), before its first gradient: its rows stay in the divisor, so steps are slightly shorter")
                if active.isEmpty { throw CommunicationError.peerLost(rank: 0, peer: peer, reason: "every worker is lost") }
                arrived.remove(peer)
                if synchronous {
                    // The round may have been waiting only for the lost worker.
                    if active.isSubset(of: arrived) { try await synchronousStep() }
                } else {
                    // Workers held back for the lost one (it was the slowest) may go on.
                    try await releaseHeld()
                }
                continue loop
            }
            let k = message.source
            // A worker dropped as lost is out of the sum, even if a late message of it arrives.
            guard active.contains(k) else { continue loop }
            let (computedAt, rows, body) = try Self.split(message)
            // Fields from the network, checked before they index or count anything.
            guard (0...version).contains(computedAt) else {
                throw CommunicationError.badPayload("parameter server: rank \(k)'s gradient says it was computed at model version \(computedAt) (field \"version\"), outside 0...\(version)")
            }
            guard (0...node.totalRows).contains(rows) else {
                throw CommunicationError.badPayload("parameter server: rank \(k)'s gradient covers \(rows) rows (field \"rows\"), outside 0...\(node.totalRows)")
            }
            try incoming.withUnsafeMutableBufferPointer { try codec.decode(body, into: $0) }
            latest[k] = incoming
            reported[k] = true
            rowsOf[k] = rows
            clock[k] += 1
            busy.remove(k)
            node.recorder.recordStaleness(version - computedAt)

            if synchronous {
                arrived.insert(k)
                guard active.isSubset(of: arrived) else { continue }
                // Everyone's gradient of this round is in: one synchronous step.
                try await synchronousStep()
            } else {
                let allIn = active.allSatisfy { reported[$0] }
                let roundBegins = updates % active.count == 0
                // `each` needs the aggregate only for the monitor, at the start of a round.
                if rule == .aggregate || roundBegins {
                    let norm = aggregate()
                    if roundBegins {
                        try endOfRound(norm: allIn ? norm : nil)
                        if stop != nil { break }
                    }
                }
                if rule == .each { arriving(k) }
                let applying = comm.metrics.timeline?.now
                step.apply(g, to: &w, scale: 1 / Double(active.count))
                if let applying { comm.metrics.timeline?.span("apply", cat: "server", since: applying, args: ["worker": "\(k)"]) }
                version += 1; updates += 1
                if updates % active.count == 0 {
                    round += 1
                    if round >= node.job.stopping.maxIterations { stop = .maxIterations; break }
                }
                held.insert(k)
                try await releaseHeld()
            }
        }
        if stop == .maxIterations { node.observe(iteration: round, model: w, gradientNorm: nil, force: true) }
        // Stop every worker: the idle ones now, the busy ones when their gradient arrives.
        for r in workers where active.contains(r) && !busy.contains(r) { try await comm.send([], to: r, tag: Self.modelTag) }
        while !busy.isEmpty {
            do {
                let m = try await comm.receive(from: .any, tag: Self.gradientTag)
                if busy.remove(m.source) != nil { try await comm.send([], to: m.source, tag: Self.modelTag) }
            } catch CommunicationError.peerLost(_, let peer, _) {
                busy.remove(peer)
            }
        }
        return NodeOutcome(rank: 0, role: "server", model: w.map(Double.init), iterations: round, stopReason: stop,
                           learningRate: learningRate, recorder: node.recorder, rows: 0, notes: notes)
    }

    // MARK: Wire helpers

    static func header(version: Int, rows: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(headerBytes)
        withUnsafeBytes(of: UInt64(version).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(rows).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    static func split(_ message: Message) throws -> (version: Int, rows: Int, body: [UInt8]) {
        let p = message.payload
        guard p.count >= headerBytes else {
            throw CommunicationError.badPayload("parameter-server message from rank \(message.source) is \(p.count) bytes, shorter than its header")
        }
        var v: UInt64 = 0, r: UInt64 = 0
        for i in 0..<8 { v |= UInt64(p[i]) << (8 * UInt64(i)); r |= UInt64(p[8 + i]) << (8 * UInt64(i)) }
        // Beyond Int's range (a corrupt or hostile header): a clear error, not a trap.
        guard let version = Int(exactly: v), let rows = Int(exactly: r) else {
            throw CommunicationError.badPayload("parameter-server message from rank \(message.source): version \(v) or row count \(r) is out of range")
        }
        return (version, rows, Array(p[headerBytes...]))
    }
}

/// The parameter server's options (`strategy.parameterServer` in a job file).
public struct ParameterServerOptions: ComponentOptions {
    /// Upper bound on a finite staleness: beyond it a bound never binds (nil is "unbounded").
    public static let maximumStaleness = 1 << 30

    /// How many updates a worker may be ahead of the slowest (SSP, `--staleness`). 0 is
    /// synchronous; nil is fully asynchronous.
    public var staleness: Int? = nil
    /// Apply the sum of the latest gradients (`aggregate`) or each arriving one on its own
    /// (`each`, `--ps-update`).
    public var update: PSUpdateRule = .aggregate

    public init() {}
    public init(staleness: Int?, update: PSUpdateRule = .aggregate) {
        self.staleness = staleness
        self.update = update
    }

    public func validate() throws {
        if let s = staleness, !(0...Self.maximumStaleness).contains(s) {
            throw JobError.invalid(field: "staleness",
                                   message: "the staleness bound must be in 0…\(Self.maximumStaleness) (or unbounded), got \(s)")
        }
    }

    enum CodingKeys: String, CodingKey { case staleness, update }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(staleness: try c.decodeIfPresent(Int.self, forKey: .staleness),
                  update: try c.decodeIfPresent(PSUpdateRule.self, forKey: .update) ?? .aggregate)
    }
    /// `staleness` is written even when nil (`null`: unbounded), so that a report says it.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(staleness, forKey: .staleness)
        try c.encode(update, forKey: .update)
    }
}
