/// Synchronous data-parallel training, peer-to-peer: every node holds a replica of w and runs the
/// same solver; each round it computes its shard's part (a gradient sum, or a Hessian-vector sum),
/// all-reduces it (ring, reduce+broadcast or all-to-all), and takes the same decision. The
/// all-reduce leaves identical bits on every rank, so the replicas never drift apart and every
/// rank makes the same stopping decision without extra messages.
///
/// When a round also needs the loss (line searches), the loss sum travels in the same all-reduce
/// as entry d + 1 where the codec is exact and the storage is Double; otherwise (a lossy codec, or
/// Float storage that would round it) beside it, in a one-number exact all-reduce.
public struct AllReduceSGD: Strategy {
    public var kind: StrategyKind { .allReduce }
    public init() {}

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let (solver, learningRate) = try await node.prepareSolver()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        node.recorder.startTraining(bytesSent: node.comm.metrics.snapshot.bytesSent)
        let rounds = PeerRounds(node: node, shard: ShardWork(node: node, local: local), rowsPerStep: rowsPerStep)
        let result = try await solver.minimize(rounds, from: node.startingModelDouble(), stopping: node.job.stopping,
                                               learningRate: learningRate)
        return NodeOutcome(rank: node.rank, role: "peer", model: result.model, iterations: result.iterations,
                           stopReason: node.rank == 0 ? result.stopReason : nil, learningRate: learningRate ?? 0,
                           recorder: node.recorder, rows: node.shard.rows, notes: node.rank == 0 ? result.notes : [])
    }

    /// One rank's side of every round: map its shard, all-reduce, finish — the same on every rank.
    final class PeerRounds<Scalar: BLASScalar>: SolverRounds {
        let node: Node<Scalar>
        let shard: ShardWork<Scalar>
        let rowsPerStep: Int
        /// Whether the loss can ride in the gradient's all-reduce exactly.
        let packsLoss: Bool
        private var packed: [Scalar]

        init(node: Node<Scalar>, shard: ShardWork<Scalar>, rowsPerStep: Int) {
            self.node = node
            self.shard = shard
            self.rowsPerStep = rowsPerStep
            packsLoss = Scalar.self == Double.self && node.job.codec.isLossless
            packed = []
        }

        var features: Int { node.features }
        var objective: Objective { node.objective }
        var now: Double { node.comm.now }

        func gradient(at w: [Double], into g: inout [Double], wantLoss: Bool) async throws -> Double? {
            node.recorder.rounds += 1
            let comm = node.comm, algorithm = node.job.strategy.allReduce
            var loss = await shard.gradientSum(at: w.map { Scalar($0) })
            if wantLoss && packsLoss {
                packed = shard.gradient
                packed.append(Scalar(loss))
                try await comm.allReduce(&packed, algorithm: algorithm, codec: node.codec)
                loss = Double(packed.removeLast())
                objective.finishedGradient(packed, w: w, rows: rowsPerStep, into: &g)
            } else {
                try await comm.allReduce(&shard.gradient, algorithm: algorithm, codec: node.codec)
                if wantLoss {
                    var v = [loss]
                    try await comm.allReduce(&v, algorithm: .reduceBroadcast, codec: setupCodec.makeCodec())
                    loss = v[0]
                }
                objective.finishedGradient(shard.gradient, w: w, rows: rowsPerStep, into: &g)
            }
            return wantLoss ? objective.finishedLoss(loss, w: w, rows: rowsPerStep) : nil
        }

        func hessianProduct(_ p: [Double], into out: inout [Double]) async throws {
            node.recorder.rounds += 1
            await shard.hessianSum(p.map { Scalar($0) })
            try await node.comm.allReduce(&shard.product, algorithm: node.job.strategy.allReduce, codec: node.codec)
            objective.finishedHessianProduct(shard.product, p: p, rows: node.totalRows, into: &out)
        }

        func observe(iteration: Int, model: [Double], gradientNorm: Double?, began: Double) {
            if node.rank == 0 { node.observe(iteration: iteration, model: model, gradientNorm: gradientNorm, began: began) }
        }
    }
}
