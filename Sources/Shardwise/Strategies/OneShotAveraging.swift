/// One-shot model averaging (the "average mixture" AVGM of Zhang, Duchi & Wainwright, 2012,
/// "Communication-efficient algorithms for statistical optimization", NeurIPS; JMLR 2013): every
/// node solves its own shard's problem exactly, and one all-reduce averages the solutions. One
/// round of d numbers, whatever the accuracy asked for — the least communication possible.
///
/// 1. Node k minimises its shard's objective f_k(w) = 1/n_k·Σ_{i∈k} ℓᵢ(w) + λ/2·|w|² (the shard's
///    *mean* loss, so λ weighs the same as in the global problem): least squares and ridge by
///    LAPACK (`LeastSquares.solve`, QR or SVD), logistic by Newton (`LeastSquares.solveLogistic`),
///    in float64 whatever the storage.
/// 2. The nodes all-reduce their weighted solutions, (n_k/n)·w_k (or w_k/K with `uniform`
///    weighting, the paper's), under the job's codec: the average is the model.
///
/// The average is not w*. Zhang et al. show that on IID shards its error is that of the
/// centralised estimator plus a bias of order (K/n)² in the mean squared error, which the
/// statistical error dominates while K ≪ √n; for least squares on IID data the shard solutions
/// are nearly unbiased and the average is close. On non-IID shards (`--partition sorted`: each
/// shard a slice of the targets) every w_k is biased its own way and the average is far from w*:
/// one-shot averaging is a statistical method, only as good as the shards are alike.
///
/// A shard with fewer rows than features has an underdetermined least-squares problem: its
/// minimum-norm solution (SVD) enters the average, and the node says so in its notes. A logistic
/// shard whose classes separate has no solution without λ > 0: the node fails, naming its shard.
public struct OneShotAveraging: Strategy {
    public var kind: StrategyKind { .oneShot }
    public init() {}

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let d = node.features, rows = node.shard.rows
        let began = comm.now
        node.observe(iteration: 0, model: node.startingModel(), gradientNorm: nil, force: true, began: began)
        var notes: [String] = []
        if rows > 0 && rows < d && node.objective.link == .identity {
            notes.append("one-shot: shard \(node.shard.index) has \(rows) rows for \(d) features: its least-squares problem is "
                         + "underdetermined, and its minimum-norm solution enters the average")
        }

        // 1. My shard's exact solution. A QR of n_k × d costs about 2·n_k·d² flops where a
        //    gradient costs 4·n_k·d: charged as d/2 gradients (logistic's Newton takes several
        //    such solves, so its simulated time is a lower bound).
        var solution = [Double](repeating: 0, count: d)
        if rows > 0 {
            solution = try await comm.compute(ComputeWork(rows: rows, features: d * max(1, d / 2))) {
                try Self.solve(node.shard, objective: node.objective)
            }
        }

        // 2. One all-reduce of the weighted solutions.
        let weight: Double
        switch node.job.strategy.oneShot.weighting {
        case .rows: weight = Double(rows) / Double(max(node.totalRows, 1))
        case .uniform: weight = rows > 0 ? 1 / Double(node.job.shardCount) : 0
        }
        var w = solution.map { Scalar(weight * $0) }
        node.recorder.startTraining(bytesSent: comm.metrics.snapshot.bytesSent)
        node.recorder.rounds += 1
        try await comm.allReduce(&w, algorithm: node.job.strategy.allReduce, codec: node.codec)
        if node.rank == 0 { node.observe(iteration: 1, model: w, gradientNorm: nil, force: true) }
        return NodeOutcome(rank: node.rank, role: "peer", model: w.map(Double.init), iterations: 1,
                           stopReason: node.rank == 0 ? .completed : nil, learningRate: 0,
                           recorder: node.recorder, rows: rows, notes: notes)
    }

    /// The minimiser of the shard's mean loss + λ/2·|w|², in float64.
    /// - Throws: `LinalgError` (LAPACK, or Newton on a separable shard), naming the shard.
    static func solve<Scalar: BLASScalar>(_ shard: Shard<Scalar>, objective: Objective) throws -> [Double] {
        do {
            switch objective {
            case .leastSquares, .ridge:
                if let x = shard.x as? MatrixRows<Double>, let y = shard.y as? ArraySlice<Double> {
                    return try LeastSquares.solve(x: x, y: y, ridge: objective.lambda).w
                }
                let x = Matrix<Double>(rows: shard.rows, columns: shard.features) { i, j in Double(shard.x[i, j]) }
                return try LeastSquares.solve(x: x.view, y: shard.y.map(Double.init)[...], ridge: objective.lambda).w
            case .logistic:
                // Newton computes in float64 whatever the storage.
                return try LeastSquares.solveLogistic(x: shard.x, y: shard.y, ridge: objective.lambda).map(Double.init)
            }
        } catch LinalgError.notConverged(let why) {
            throw LinalgError.notConverged("one-shot: shard \(shard.index) (\(shard.rows) rows) has no exact solution: \(why)")
        }
    }
}

/// One-shot averaging's options (`strategy.oneShot` in a job file).
public struct OneShotOptions: ComponentOptions {
    public init() {}
    /// How the shard solutions are weighted in the average.
    public enum Weighting: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
        /// By rows, n_k/n: on balanced shards the same as uniform; on skewed ones each row counts once.
        case rows
        /// 1/K for each of the K shards, as in Zhang, Duchi & Wainwright.
        case uniform
        public var description: String { rawValue }
    }

    /// `--one-shot-weighting`.
    public var weighting: Weighting = .rows

    public init(weighting: Weighting = .rows) { self.weighting = weighting }

    /// Nothing to check beyond the decoder's: every weighting runs on any data.
    public func validate() throws {}

    enum CodingKeys: String, CodingKey { case weighting }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(weighting: try c.decodeIfPresent(Weighting.self, forKey: .weighting) ?? .rows)
    }
}
