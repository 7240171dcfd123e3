import Foundation

/// CoCoA+ (Smith, Forte, Ma, Takáč, Jordan & Jaggi, 2018, "CoCoA: a general framework for
/// communication-efficient distributed optimization", JMLR 18(230); Ma, Smith, Jaggi, Jordan,
/// Richtárik & Takáč, 2015, "Adding vs. averaging in distributed primal-dual optimization"): every
/// node improves the dual variables of its own rows by a few passes of stochastic dual coordinate
/// ascent (SDCA, Shalev-Shwartz & Zhang, 2013) on a local subproblem, and one all-reduce of the
/// resulting model change per round combines them. The duality gap is a certificate of accuracy
/// at every round, computed from two numbers per node.
///
/// The primal is the job's objective P(w) = 1/n·Σ ℓᵢ(xᵢᵀw) + λ/2·|w|² (λ > 0 required: the dual
/// needs strong convexity), with ℓᵢ(z) = ½(z − yᵢ)² (ridge) or log(1 + e^{−bᵢz}), bᵢ = 2yᵢ − 1 ∈ ±1
/// (logistic, the 0/1 labels mapped). The dual is D(α) = 1/n·Σ −ℓᵢ*(−αᵢ) − λ/2·|w(α)|² with
/// w(α) = 1/(λn)·Xᵀα, and weak duality gives D(α) ≤ P(w*) ≤ P(w) for every α and w: the gap
/// P(w(α)) − D(α) bounds the suboptimality P(w) − P(w*) of the model held.
///
/// Each round, from (w, α) with w = w(α):
///
/// 1. node k computes its certificate sums: Σ_{i∈k} ℓᵢ(xᵢᵀw) (one pass over X_k) and
///    Σ_{i∈k} −ℓᵢ*(−αᵢ) (from α_k alone);
/// 2. node k runs H = `localPasses` passes of SDCA, in a seeded random order, on its subproblem
///    G_k(Δα_k) = 1/n·Σ −ℓᵢ*(−αᵢ − Δαᵢ) − 1/n·wᵀX_kᵀΔα_k − (λσ′/2)·|X_kᵀΔα_k/(λn)|², where σ′ = K
///    (the number of shards) makes the K subproblems safe to *add*. Coordinate i maximises G_k
///    along Δαᵢ, seeing the local model v = w + σ′·u, u = X_kᵀΔα_k/(λn):
///    - ridge, in closed form: δ = (yᵢ − xᵢᵀv − αᵢ) / (1 + σ′|xᵢ|²/(λn));
///    - logistic, with sᵢ = αᵢbᵢ ∈ (0, 1): the root t of log((1 − t)/t) − bᵢxᵢᵀv − σ′|xᵢ|²/(λn)·(t − sᵢ),
///      by safeguarded Newton steps (a few; see `logisticDualStep`), then δ = bᵢ(t − sᵢ);
/// 3. one all-reduce of the d + 2 numbers [u_k; the two certificate sums], float64 on the wire;
/// 4. every node learns the gap at (w, α), and unless it is small enough, applies the round:
///    w ← w + γ·Σₖ u_k and α_k ← α_k + γ·Δα_k, with γ = 1 ("adding", CoCoA+). The `averaging`
///    aggregation is the original CoCoA (γ = 1/K, σ′ = 1), safe but slower with many shards.
///
/// Where it pays: σ′ = K is safe for any data, and tight when the shards' rows span the same few
/// directions. On dense data with d ≪ n_k (IID shards of a tall X) the rounds then grow with K and
/// extra local passes do not reduce them (the tests' ridge problem, n = 4000, d = 20, λ = 0.01:
/// 8 rounds to a 10⁻⁸ relative gap on one node, about 300 on four, H = 1 or 4 alike — an
/// independent NumPy implementation agrees); on sparse or wide data, whose shards are nearly
/// orthogonal, the K local solves add up without interfering and CoCoA+ needs few rounds.
///
/// The all-reduce leaves the same bits on every rank, so every replica of w is the same and equals
/// w(α) up to rounding — which is why the codec must be lossless (`Job.validate()` refuses the
/// others: a compressed Δw would leave w ≠ w(α), and the gap would certify nothing).
///
/// Stopping: when the gap is at most `gapTolerance` (absolute, when given: then the model is
/// certified to within that of the optimal loss), else at most `stopping.tolerance` times the
/// first round's gap (relative; 0 disables it), or after `stopping.maxIterations` rounds. An
/// iteration is one round. When the rounds run out the nodes compute the final model's gap with
/// one more all-reduce of two numbers, so the certificate is always that of the model returned:
/// the monitor rank keeps every round's gap in `NodeOutcome.dualityGaps` (entry k for the model
/// after k rounds) and states the last in its notes.
public struct CoCoA: Strategy {
    public var kind: StrategyKind { .cocoa }
    public init() {}

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let options = node.job.strategy.cocoa
        let lambda = node.objective.lambda
        guard lambda > 0 else {   // Job.validate() refuses this first; kept for library callers.
            throw JobError.invalid(field: "objective", message: "cocoa needs λ > 0 (ridge or logistic): the dual needs strong convexity")
        }
        let logistic = node.objective.link == .logistic
        let n = Double(max(node.totalRows, 1))
        let shards = Double(node.job.shardCount)
        let (gamma, sigma) = options.aggregation == .adding ? (1.0, shards) : (1 / shards, 1.0)
        let passes = options.localPasses
        let x = node.shard.x, rows = x.rows, d = x.columns
        let inverseLambdaN = 1 / (lambda * n)
        // bᵢ: the targets for ridge, the labels as ±1 for logistic.
        let labels = node.shard.y.map { logistic ? 2 * Double($0) - 1 : Double($0) }

        // Setup: qᵢ = |xᵢ|²/(λn), the curvature of coordinate i's subproblem (before σ′).
        var curvature = [Double](repeating: 0, count: rows)
        if rows > 0 {
            await comm.compute(ComputeWork(rows: rows, features: d)) {
                for i in 0..<rows {
                    let row = x.base + i * d
                    curvature[i] = Double(Scalar.dot(count: d, row, row)) * inverseLambdaN
                }
            }
        }

        var alpha = [Double](repeating: 0, count: rows)        // α_k; w(0) = 0
        var deltaAlpha = [Double](repeating: 0, count: rows)   // this round's Δα_k
        var w = [Scalar](repeating: 0, count: d)
        var v = w                                              // w + σ′u, the model coordinate i sees
        var u = w                                              // X_kᵀΔα_k/(λn)
        var message = [Double](repeating: 0, count: d + 2)
        var order = Array(0..<rows)
        var rng = Xoshiro256(seed: node.job.seed, stream: 2000 + UInt64(node.rank))
        var gaps: [Double] = []
        var firstGap: Double?
        var stop: StopReason = .maxIterations
        var round = 0

        /// The gap at (w, α) from the all-reduced sums: P − D = (Σℓ − Σ(−ℓ*))/n + λ|w|².
        func gap(primalSum: Double, dualSum: Double) -> (gap: Double, primal: Double) {
            let norm2 = w.reduce(0.0) { $0 + Double($1) * Double($1) }
            let primal = primalSum / n + 0.5 * lambda * norm2
            return (primal - (dualSum / n - 0.5 * lambda * norm2), primal)
        }

        node.recorder.startTraining(bytesSent: comm.metrics.snapshot.bytesSent)
        while round < node.job.stopping.maxIterations {
            let began = comm.now
            // 1. My certificate sums at (w, α).
            let (primalSum, dualSum) = try await certificateSums(node, w: w, alpha: alpha, labels: labels, logistic: logistic)

            // 2. H passes of SDCA over my coordinates, on the σ′-subproblem.
            for j in 0..<d { v[j] = w[j]; u[j] = 0 }
            for i in 0..<rows { deltaAlpha[i] = 0 }
            if rows > 0 {
                await comm.compute(ComputeWork(rows: rows * passes, features: d)) {
                    v.withUnsafeMutableBufferPointer { vp in
                        u.withUnsafeMutableBufferPointer { up in
                            for _ in 0..<passes {
                                for i in stride(from: rows - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                                for i in order {
                                    let row = x.base + i * d
                                    let z = Double(Scalar.dot(count: d, row, vp.baseAddress!))
                                    let a = alpha[i] + deltaAlpha[i]
                                    let c = sigma * curvature[i]
                                    let delta: Double
                                    if logistic {
                                        let b = labels[i]
                                        delta = b * Self.logisticDualStep(s: a * b, margin: b * z, curvature: c) - a
                                    } else {
                                        delta = (labels[i] - z - a) / (1 + c)
                                    }
                                    deltaAlpha[i] += delta
                                    let step = delta * inverseLambdaN
                                    Scalar.axpy(count: d, alpha: Scalar(sigma * step), x: row, y: vp.baseAddress!)
                                    Scalar.axpy(count: d, alpha: Scalar(step), x: row, y: up.baseAddress!)
                                }
                            }
                        }
                    }
                }
            }

            // 3. One all-reduce: the model changes and the certificate sums travel together.
            for j in 0..<d { message[j] = Double(u[j]) }
            message[d] = primalSum
            message[d + 1] = dualSum
            node.recorder.rounds += 1
            try await comm.allReduce(&message, algorithm: node.job.strategy.allReduce, codec: node.codec)

            // 4. The gap at (w, α) decides; else apply the round.
            let (g, primal) = gap(primalSum: message[d], dualSum: message[d + 1])
            gaps.append(g)
            if node.rank == 0 { node.observe(iteration: round, model: w, gradientNorm: nil, loss: primal, began: began) }
            guard g.isFinite else { throw Self.notFinite(g, round: round) }
            if firstGap == nil { firstGap = g }
            if let target = options.gapTolerance ?? (node.job.stopping.tolerance > 0 ? node.job.stopping.tolerance * firstGap! : nil),
               g <= target {
                stop = .converged
                break
            }
            for j in 0..<d { w[j] += Scalar(gamma * message[j]) }
            for i in 0..<rows { alpha[i] += gamma * deltaAlpha[i] }
            round += 1
        }
        if stop == .maxIterations {
            // The rounds ran out after an update: certify the model returned (two more numbers).
            let (primalSum, dualSum) = try await certificateSums(node, w: w, alpha: alpha, labels: labels, logistic: logistic)
            var sums = [primalSum, dualSum]
            node.recorder.rounds += 1
            try await comm.allReduce(&sums, algorithm: node.job.strategy.allReduce, codec: node.codec)
            let (g, _) = gap(primalSum: sums[0], dualSum: sums[1])
            gaps.append(g)
            if node.rank == 0 { node.observe(iteration: round, model: w, gradientNorm: nil, force: true) }
            guard g.isFinite else { throw Self.notFinite(g, round: round) }
        }
        var outcome = NodeOutcome(rank: node.rank, role: "peer", model: w.map(Double.init), iterations: round,
                                  stopReason: node.rank == 0 ? stop : nil, learningRate: 0,
                                  recorder: node.recorder, rows: rows)
        if node.rank == 0 {
            outcome.dualityGaps = gaps
            outcome.notes.append("cocoa: duality gap P(w) − D(α) = \(gaps.last!) after \(round) rounds (\(gaps[0]) at the start): "
                                 + "certifies L(w) − L(w*) ≤ \(gaps.last!)")
        }
        return outcome
    }

    /// Σ_{i∈k} ℓᵢ(xᵢᵀw) (one pass over the shard, charged as such) and Σ_{i∈k} −ℓᵢ*(−αᵢ).
    private func certificateSums<Scalar: BLASScalar>(
        _ node: Node<Scalar>, w: [Scalar], alpha: [Double], labels: [Double], logistic: Bool
    ) async throws -> (primal: Double, dual: Double) {
        guard node.shard.rows > 0 else { return (0, 0) }
        let primal = await node.comm.compute(ComputeWork(rows: node.shard.rows, features: node.features)) {
            w.withUnsafeBufferPointer { node.kernel.lossSum(w: $0.baseAddress!) }
        }
        var dual = 0.0
        for i in alpha.indices {
            // ridge: −ℓ*(−α) = αy − α²/2; logistic: −ℓ*(−α) = H(αb), the binary entropy.
            dual += logistic ? Self.binaryEntropy(alpha[i] * labels[i]) : alpha[i] * labels[i] - 0.5 * alpha[i] * alpha[i]
        }
        return (primal, dual)
    }

    private static func notFinite(_ gap: Double, round: Int) -> LinalgError {
        .notConverged("cocoa: the duality gap became \(gap) at round \(round): the data holds values too large for the dual updates")
    }

    /// −s·log s − (1 − s)·log(1 − s), 0 at s = 0 and s = 1.
    static func binaryEntropy(_ s: Double) -> Double {
        guard s > 0 && s < 1 else { return 0 }
        return -s * log(s) - (1 - s) * log1p(-s)
    }

    /// The largest Double below 1: t stays in the open interval (0, 1), where the logistic
    /// conjugate's derivative log((1 − t)/t) is finite.
    static let belowOne = 1 - 0x1p-53

    /// One logistic SDCA coordinate: the root t ∈ (0, 1) of
    ///
    ///     h(t) = log((1 − t)/t) − m − c·(t − s),
    ///
    /// where s = αᵢbᵢ is the coordinate's current value, m = bᵢxᵢᵀv its margin and c = σ′|xᵢ|²/(λn)
    /// its curvature; the new αᵢ is bᵢt. h falls from +∞ to −∞ on (0, 1), so the root is unique,
    /// and it lies between s and t₀ = 1/(1 + eᵐ), the root for c = 0 (h(s) and h(t₀) have opposite
    /// signs). Newton steps from t₀ (h′(t) = −1/(t(1 − t)) − c), each kept inside that bracket by
    /// a bisection when it would leave it: quadratic convergence, typically 2–4 steps, never a
    /// step outside (0, 1).
    static func logisticDualStep(s: Double, margin m: Double, curvature c: Double) -> Double {
        let start = min(max(1 / (1 + exp(m)), .leastNormalMagnitude), belowOne)
        var lo = max(min(s, start), 0), hi = min(max(s, start), 1)
        guard c > 0, hi > lo else { return start }
        var t = start
        for _ in 0..<50 {
            let h = log((1 - t) / t) - m - c * (t - s)
            if h == 0 { return t }
            if h > 0 { lo = t } else { hi = t }
            var next = t - h / (-1 / (t * (1 - t)) - c)
            if !(next > lo && next < hi) { next = 0.5 * (lo + hi) }
            next = min(max(next, .leastNormalMagnitude), belowOne)
            if abs(next - t) <= 1e-14 * min(next, 1 - next) { return next }
            t = next
        }
        return t
    }
}

/// CoCoA's options (`strategy.cocoa` in a job file).
public struct CoCoAOptions: ComponentOptions {
    public init() {}
    /// How the nodes' updates combine.
    public enum Aggregation: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
        /// CoCoA+: γ = 1 with σ′ = K, the updates added.
        case adding
        /// CoCoA: γ = 1/K with σ′ = 1, the updates averaged.
        case averaging
        public var description: String { rawValue }
    }

    /// H: SDCA passes over the shard's coordinates per round (`--local-passes`).
    public var localPasses: Int = 1
    /// Stop when the duality gap P(w) − D(α) is at most this (absolute: a certificate
    /// L(w) − L(w*) ≤ gapTolerance), instead of `stopping.tolerance` × the first gap (`--gap-tolerance`).
    public var gapTolerance: Double? = nil
    /// `--cocoa-aggregation`.
    public var aggregation: Aggregation = .adding

    /// The most passes per round: beyond it a round is a whole local solve.
    public static let maximumLocalPasses = 100_000

    public init(localPasses: Int = 1, gapTolerance: Double? = nil, aggregation: Aggregation = .adding) {
        self.localPasses = localPasses
        self.gapTolerance = gapTolerance
        self.aggregation = aggregation
    }

    /// - Throws: `JobError.invalid` naming `localPasses` or `gapTolerance`.
    public func validate() throws {
        guard (1...Self.maximumLocalPasses).contains(localPasses) else {
            throw JobError.invalid(field: "localPasses",
                                   message: "cocoa takes 1…\(Self.maximumLocalPasses) local passes per round, got \(localPasses)")
        }
        if let g = gapTolerance, !(g > 0 && g.isFinite) {
            throw JobError.invalid(field: "gapTolerance", message: "the duality-gap tolerance must be a positive number, got \(g)")
        }
    }

    enum CodingKeys: String, CodingKey { case localPasses, gapTolerance, aggregation }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(localPasses: try c.decodeIfPresent(Int.self, forKey: .localPasses) ?? 1,
                  gapTolerance: try c.decodeIfPresent(Double.self, forKey: .gapTolerance),
                  aggregation: try c.decodeIfPresent(Aggregation.self, forKey: .aggregation) ?? .adding)
    }
}
