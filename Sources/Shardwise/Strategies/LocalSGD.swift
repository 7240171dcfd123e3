/// Local SGD (federated averaging, FedAvg: McMahan, Moore, Ramage, Hampson & Agüera y Arcas, 2017,
/// "Communication-efficient learning of deep networks from decentralized data"; local SGD: Stich,
/// 2019, "Local SGD converges fast and communicates little"): every node takes `localSteps` (H)
/// gradient steps on its own shard between two model averages, so one all-reduce of d numbers
/// buys H steps instead of one.
///
/// Each round, from the common model w:
///
/// 1. every node k takes H steps of gradient descent on its shard's objective
///    f_k(w) = 1/n_k·Σ_{i∈k} ℓᵢ(w) + λ/2·|w|² — full batch, or seeded mini-batches of
///    `optimizer.batchSize` rows — with the job's step size η and momentum, reaching w_k;
/// 2. the nodes all-reduce their weighted changes (n_k/n)·(w_k − w), under the job's codec;
/// 3. every node adds the sum to w: the new model is the row-weighted average Σ (n_k/n)·w_k,
///    the same bits on every rank.
///
/// Sending the change rather than the model keeps the sum free of cancellation, and it is what a
/// lossy codec compresses well (it shrinks as training settles). With H = 1 and full batches the
/// average is exactly a step of synchronous gradient descent: the round's change is −η∇L(w).
/// With H > 1 each node drifts toward its own shard's optimum ("client drift"): on IID shards the
/// optima are close and the extra steps are nearly free progress, on non-IID shards
/// (`--partition sorted`) the averaged model settles at a fixed point away from w*, at a distance
/// that grows with H and η.
///
/// An iteration is one round of communication. The step size is the job's (`auto` is 1/L for the
/// *global* smoothness L; a shard much worse conditioned than the whole may need a smaller `--lr`
/// for its local steps). Stopping uses the round's change, free of extra traffic: the monitor
/// watches |Σₖ(n_k/n)(w_k − w)| / (ηH), the norm of the average pseudo-gradient, which with H = 1
/// is |∇L(w)| itself, against `stopping.tolerance` relative to its first value.
public struct LocalSGD: Strategy {
    public var kind: StrategyKind { .localSGD }
    public init() {}

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let localSteps = node.job.strategy.localSGD.localSteps
        let learningRate = try await node.resolveLearningRate()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let d = node.features
        let work = local.kernel.work(rows: local.rowsPerStep)
        // This node's weight in the average: its share of the rows.
        let weight = Scalar(Double(node.shard.rows) / Double(max(node.totalRows, 1)))
        var w = node.startingModel()
        var localModel = w
        var displacement = [Scalar](repeating: 0, count: d)   // w_k − w, accumulated step by step
        var g = [Scalar](repeating: 0, count: d)
        var step = DescentStep<Scalar>(learningRate: learningRate, momentum: node.job.optimizer.momentum, features: d)
        var monitor = ConvergenceMonitor(node.job.stopping)
        var stop: StopReason = .maxIterations
        var round = 0
        node.recorder.startTraining(bytesSent: comm.metrics.snapshot.bytesSent)
        while round < node.job.stopping.maxIterations {
            let began = comm.now
            // 1. H local steps on f_k from the common model. The steps are summed into the
            //    displacement, so w_k − w never comes from subtracting two nearby models.
            for j in 0..<d { displacement[j] = 0 }
            if node.shard.rows > 0 {
                for _ in 0..<localSteps {
                    for j in 0..<d { localModel[j] = w[j] + displacement[j] }
                    _ = await comm.compute(work) { local.evaluate(w: localModel, into: &g) }
                    localModel.withUnsafeBufferPointer { wp in
                        g.withUnsafeMutableBufferPointer { gp in
                            node.objective.finishGradient(gp.baseAddress!, w: wp.baseAddress!, count: d, rows: local.rowsPerStep)
                        }
                    }
                    step.apply(g, to: &displacement)
                }
            }
            // 2. All-reduce the weighted changes: Σₖ (n_k/n)(w_k − w) = average − w.
            for j in 0..<d { displacement[j] *= weight }
            node.recorder.rounds += 1
            try await comm.allReduce(&displacement, algorithm: node.job.strategy.allReduce, codec: node.codec)
            // 3. Check the average pseudo-gradient (|∇L(w)| when H = 1), then move to the average.
            let norm = euclideanNorm(displacement) / (learningRate * Double(localSteps))
            if node.rank == 0 { node.observe(iteration: round, model: w, gradientNorm: norm, began: began) }
            if let reason = monitor.check(gradientNorm: norm) {
                stop = reason
                if reason == .diverged {
                    throw node.divergence(iteration: round, learningRate: learningRate, gradientNorm: norm)
                }
                break
            }
            for j in 0..<d { w[j] += displacement[j] }
            round += 1
        }
        if stop == .maxIterations && node.rank == 0 {
            node.observe(iteration: round, model: w, gradientNorm: nil, force: true)
        }
        return NodeOutcome(rank: node.rank, role: "peer", model: w.map(Double.init), iterations: round,
                           stopReason: node.rank == 0 ? stop : nil, learningRate: learningRate,
                           recorder: node.recorder, rows: node.shard.rows)
    }
}

/// Local SGD's options (`strategy.localSGD` in a job file).
public struct LocalSGDOptions: ComponentOptions {
    public init() {}
    /// H: local steps between two averages (`--local-steps`); 1 is synchronous gradient descent.
    public var localSteps: Int = 10

    /// The largest H: beyond it a round is a whole local training run.
    public static let maximumLocalSteps = 1_000_000

    public init(localSteps: Int = 10) { self.localSteps = localSteps }

    /// - Throws: `JobError.invalid` naming `localSteps`.
    public func validate() throws {
        guard (1...Self.maximumLocalSteps).contains(localSteps) else {
            throw JobError.invalid(field: "localSteps",
                                   message: "local SGD takes 1…\(Self.maximumLocalSteps) local steps per round, got \(localSteps)")
        }
    }

    enum CodingKeys: String, CodingKey { case localSteps }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(localSteps: try c.decodeIfPresent(Int.self, forKey: .localSteps) ?? 10)
    }
}
