/// Decentralised gradient descent by gossip (D-PSGD, Lian et al., 2017): there is no server and no
/// global sum. Each node i keeps its own replica xᵢ and, every iteration,
///
/// 1. computes its local gradient ∇fᵢ(xᵢ), where fᵢ(x) = (m/n)·½|X_i x − y_i|² + λ/2·|x|² (the
///    average of the fᵢ is the global loss);
/// 2. exchanges replicas with its neighbours in the `Topology`;
/// 3. mixes and steps: xᵢ ← Σⱼ W_ij xⱼ − η·∇fᵢ(xᵢ), W the Metropolis–Hastings mixing matrix.
///
/// The average of the replicas follows gradient descent on the global loss; how close the replicas
/// stay to their average — the consensus distance √(1/m·Σ|xᵢ − x̄|²) — depends on the spectral gap
/// of W (a complete graph mixes in one step, a ring slowly; a disconnected graph never agrees).
/// With a constant step D-PSGD settles in a neighbourhood of w* of size O(η·heterogeneity of the
/// shards); balanced shards of the same distribution keep it small.
///
/// Gradient tracking (DIGing, Nedić, Olshevsky & Shi, 2017; `gradientTracking`): each node also
/// keeps yᵢ, its estimate of the *average* gradient, and steps along it instead of its own:
/// xᵢ ← Σⱼ W_ij xⱼ − η·yᵢ, then yᵢ ← Σⱼ W_ij yⱼ + ∇fᵢ(xᵢ⁺) − ∇fᵢ(xᵢ). The average of the yᵢ is
/// always the average gradient, so at a fixed point the replicas agree and the gradient vanishes:
/// tracking converges to w* exactly with a constant step, at the price of sending 2d numbers per
/// neighbour instead of d. (A lossy codec breaks that invariant; use float64 with it.) Its step
/// must respect how fast the graph mixes: with `--lr auto` tracking steps by η·(1 − λ₂(W)), the
/// spectral gap of the mixing matrix; a fixed `--lr` is taken as given.
///
/// Asynchronous variant: a node does not wait for its neighbours; it mixes the latest replica each
/// neighbour has sent (its own value for one that has sent nothing yet) and goes on.
///
/// Stopping: synchronous gossip checks every `checkEvery` iterations, by one all-reduce of
/// (Σ∇fᵢ, Σxᵢ, Σ|xᵢ|²), whether the averaged gradient is below tolerance; that monitoring traffic
/// is counted like any other. The asynchronous variant runs its iteration budget.
public struct Gossip: Strategy {
    public var kind: StrategyKind { .gossip }
    public var checkEvery: Int
    public init(checkEvery: Int = 10) { self.checkEvery = checkEvery }

    static let replicaTag = Tag(21)

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let topology = try Topology(node.job.strategy.gossip.topology, nodes: node.size)
        let neighbours = topology.neighbours[node.rank]
        let asynchronous = node.job.strategy.gossip.asynchronous
        var learningRate = try await node.resolveLearningRate()
        let tracking = node.job.strategy.gossip.gradientTracking && !asynchronous
        if tracking, case .auto = node.job.optimizer.learningRate { learningRate *= topology.spectralGap }
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        let d = node.features, m = node.size
        let scale = Scalar(Double(m) / Double(max(rowsPerStep, 1)))
        let lambda = Scalar(node.objective.lambda)
        let selfWeight = Scalar(topology.selfWeight(node.rank))
        let weights = neighbours.map { Scalar(topology.weight(node.rank, $0)) }
        var x = node.startingModel()
        var g = [Scalar](repeating: 0, count: d)
        var step = DescentStep<Scalar>(learningRate: learningRate, momentum: node.job.optimizer.momentum, features: d)
        var monitor = ConvergenceMonitor(node.job.stopping)
        var tracker = [Scalar](), previousGradient = [Scalar](), mixedTracker = [Scalar]()
        var latest: [[Scalar]] = neighbours.map { _ in x }
        var stop: StopReason = .maxIterations
        var iteration = 0
        let monitorCodec = setupCodec.makeCodec()
        while iteration < node.job.stopping.maxIterations {
            let began = comm.now
            // 1. Local gradient of fᵢ at xᵢ.
            _ = try await comm.compute(local.kernel.work(rows: local.rowsPerStep)) { local.evaluate(w: x, into: &g) }
            for j in 0..<d { g[j] = g[j] * scale + lambda * x[j] }
            if tracking {
                // yₖ = W yₖ₋₁ + ∇f(xₖ) − ∇f(xₖ₋₁), with y₀ = ∇f(x₀).
                if iteration == 0 { tracker = g } else { for j in 0..<d { tracker[j] = mixedTracker[j] + g[j] - previousGradient[j] } }
                previousGradient = g
            }

            // Monitoring (synchronous only): every rank takes part, so every rank decides alike.
            if !asynchronous && (iteration % checkEvery == 0) {
                var v = [Double](repeating: 0, count: 2 * d + 1)
                for j in 0..<d { v[j] = Double(g[j]); v[d + j] = Double(x[j]) }
                v[2 * d] = x.reduce(0.0) { $0 + Double($1) * Double($1) }
                try await comm.allReduce(&v, algorithm: node.job.strategy.allReduce, codec: monitorCodec)
                let meanGradient = (0..<d).map { v[$0] / Double(m) }
                let mean = (0..<d).map { v[d + $0] / Double(m) }
                let consensus = max(0, v[2 * d] / Double(m) - mean.reduce(0.0) { $0 + $1 * $1 }).squareRoot()
                let norm = euclideanNorm(meanGradient)
                if node.rank == 0 {
                    node.recorder.progress(TrainingProgress(rank: 0, iteration: iteration, maxIterations: node.job.stopping.maxIterations,
                                                    time: comm.now, loss: nil, gradientNorm: norm,
                                                    distance: node.reference.map { relativeDistanceToReference(mean, $0) }))
                }
                // Converged only when the replicas also agree (to the same relative tolerance).
                if let reason = monitor.check(gradientNorm: norm) {
                    let meanNorm = euclideanNorm(mean)
                    if reason == .diverged {
                        throw node.divergence(iteration: iteration, learningRate: learningRate, gradientNorm: norm)
                    }
                    if consensus <= max(node.job.stopping.tolerance, 1e-12) * max(meanNorm, 1) {
                        stop = reason
                        record(node, iteration, x, began: began)
                        break
                    }
                }
            }
            if node.recorder.wants(iteration) { record(node, iteration, x, began: began) }

            // 2. Exchange replicas with the neighbours.
            if asynchronous {
                let bytes = comm.encode(x, codec: node.codec, stream: CodecStream(tag: Self.replicaTag, peer: -1))
                for peer in neighbours { try await comm.send(bytes, to: peer, tag: Self.replicaTag) }
                for (i, peer) in neighbours.enumerated() {
                    // Drain to the newest replica this neighbour has sent.
                    while let message = try await comm.poll(from: .rank(peer), tag: Self.replicaTag) {
                        try comm.decode(message, codec: node.codec, into: &latest[i])
                    }
                }
            } else if tracking {
                // One message carries both the replica and the tracker.
                let both = try await comm.exchange(x + tracker, with: neighbours, codec: node.codec, tag: Self.replicaTag)
                latest = both.map { Array($0[0..<d]) }
                mixedTracker = mix(tracker, both.map { Array($0[d...]) }, selfWeight, weights)
            } else {
                latest = try await comm.exchange(x, with: neighbours, codec: node.codec, tag: Self.replicaTag)
            }

            // 3. Mix, then step along my local gradient (or, tracking, along the tracker).
            var mixed = mix(x, latest, selfWeight, weights)
            step.apply(tracking ? tracker : g, to: &mixed)
            x = mixed
            iteration += 1
        }
        if stop == .maxIterations { record(node, iteration, x) }
        return NodeOutcome(rank: node.rank, role: "peer", model: x.map(Double.init), iterations: iteration,
                           stopReason: node.rank == 0 ? stop : nil, learningRate: learningRate,
                           recorder: node.recorder, rows: node.shard.rows)
    }

    /// Σⱼ W_ij vⱼ: my weight on my own vector plus the neighbours' weights on theirs.
    private func mix<Scalar: BLASScalar>(_ mine: [Scalar], _ theirs: [[Scalar]], _ selfWeight: Scalar, _ weights: [Scalar]) -> [Scalar] {
        var out = mine.map { selfWeight * $0 }
        for (i, v) in theirs.enumerated() {
            let w = weights[i]
            for j in out.indices { out[j] += w * v[j] }
        }
        return out
    }

    /// Every gossip node records its replica at trace points; the report averages them and measures
    /// their spread. The time is when the iteration began (see `Node.observe`), now for the final point.
    private func record<Scalar: BLASScalar>(_ node: Node<Scalar>, _ iteration: Int, _ x: [Scalar], began: Double? = nil) {
        node.recorder.record(TracePoint(iteration: iteration, time: began ?? node.comm.now, model: x.map(Double.init)))
    }
}

/// Gossip's options (`strategy.gossip` in a job file).
public struct GossipOptions: ComponentOptions {
    /// The communication graph (`--topology`).
    public var topology: TopologySpec = .ring
    /// Synchronous rounds, or asynchronous: each node mixes whatever has arrived (`--async`).
    public var asynchronous: Bool = false
    /// Gradient tracking (DIGing), which converges to w* exactly; synchronous only (`--tracking`).
    public var gradientTracking: Bool = false

    public init() {}
    public init(topology: TopologySpec, asynchronous: Bool = false, gradientTracking: Bool = false) {
        self.topology = topology
        self.asynchronous = asynchronous
        self.gradientTracking = gradientTracking
    }

    /// The graph's own rules; its fit to the node count is checked with the job.
    public func validate() throws {
        try JobError.within("topology") { try topology.validate() }
        if gradientTracking && asynchronous {
            throw JobError.invalid(field: "gradientTracking",
                                   message: "gossip gradient tracking needs synchronous rounds, not the asynchronous variant")
        }
    }

    enum CodingKeys: String, CodingKey { case topology, asynchronous, gradientTracking }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(topology: try c.decodeIfPresent(TopologySpec.self, forKey: .topology) ?? .ring,
                  asynchronous: try c.decodeIfPresent(Bool.self, forKey: .asynchronous) ?? false,
                  gradientTracking: try c.decodeIfPresent(Bool.self, forKey: .gradientTracking) ?? false)
    }
}
