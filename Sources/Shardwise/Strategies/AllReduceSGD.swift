/// Synchronous data-parallel gradient descent, peer-to-peer: every node holds a replica of w,
/// computes its shard's gradient sum, all-reduces it (ring, reduce+broadcast or all-to-all), and
/// applies the same update. The all-reduce leaves identical bits on every rank, so the replicas
/// never drift apart and every rank makes the same stopping decision without extra messages.
public struct AllReduceSGD: Strategy {
    public var kind: StrategyKind { .allReduce }
    public init() {}

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let learningRate = try await node.resolveLearningRate()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        let d = node.features
        let work = ComputeWork(rows: local.rowsPerStep, features: d)
        var w = node.startingModel()
        var g = [Scalar](repeating: 0, count: d)
        var step = DescentStep<Scalar>(learningRate: learningRate, momentum: node.job.optimizer.momentum, features: d)
        var monitor = ConvergenceMonitor(node.job.stopping)
        var stop: StopReason = .maxIterations
        var iteration = 0
        while iteration < node.job.stopping.maxIterations {
            let began = comm.now
            // 1. Map: my shard's gradient sum.
            _ = try await comm.compute(work) { local.evaluate(w: w, into: &g) }
            // 2. All-reduce the sums.
            try await comm.allReduce(&g, algorithm: node.job.strategy.allReduce, codec: node.codec)
            // 3. Every rank: finish, check, step — identical on every rank.
            w.withUnsafeBufferPointer { wp in
                g.withUnsafeMutableBufferPointer { gp in
                    node.objective.finishGradient(gp.baseAddress!, w: wp.baseAddress!, count: d, rows: rowsPerStep)
                }
            }
            let norm = euclideanNorm(g)
            if node.rank == 0 { node.observe(iteration: iteration, model: w, gradientNorm: norm, began: began) }
            if let reason = monitor.check(gradientNorm: norm) {
                stop = reason
                if reason == .diverged {
                    throw node.divergence(iteration: iteration, learningRate: learningRate, gradientNorm: norm)
                }
                break
            }
            step.apply(g, to: &w)
            iteration += 1
        }
        if stop == .maxIterations && node.rank == 0 {
            node.observe(iteration: iteration, model: w, gradientNorm: nil, force: true)
        }
        return NodeOutcome(rank: node.rank, role: "peer", model: w.map(Double.init), iterations: iteration,
                           stopReason: node.rank == 0 ? stop : nil, learningRate: learningRate,
                           recorder: node.recorder, rows: node.shard.rows)
    }
}
