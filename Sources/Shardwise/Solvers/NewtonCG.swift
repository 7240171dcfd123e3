/// Truncated Newton (line-search Newton-CG; Nocedal & Wright, Algorithm 7.1, the idea of
/// LIBLINEAR's TRON without its trust region).
///
/// ```
/// g = ∇L(w)                                  // one round (with the loss)
/// solve ∇²L(w)·p = −g approximately by CG:   // one round per Hessian-vector product
///     stop when |∇²L p + g| ≤ η|g|, η = min(½, √(|g|/|g₀|))   (forcing sequence: superlinear)
///     or at negative curvature (take the last iterate, or −g at the first)
/// w ← w + αp, α by backtracking from 1 (Armijo); a trial is one round and its gradient the next g
/// ```
///
/// The Hessian-vector product (XᵀD(w)X p)/n + λp travels as d numbers, like a gradient; each node
/// keeps D(w) = σ′(Xw) of its own rows, so no n-vector ever moves. Logistic regression typically
/// needs 5–15 outer iterations whatever the conditioning; least squares and ridge take one (the
/// Newton step is exact) plus the CG steps inside it.
public struct NewtonCG: Solver {
    /// Options of `newton-cg`.
    public struct Options: ComponentOptions {
        public init() {}
        /// Hessian-vector products one inner CG solve may take (capped at d).
        public var maxInner: Int = 250
        public init(maxInner: Int = 250) { self.maxInner = maxInner }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxInner = try c.decodeIfPresent(Int.self, forKey: .maxInner) ?? 250
        }
        enum CodingKeys: String, CodingKey { case maxInner }

        public func validate() throws {
            guard (1...1_000_000).contains(maxInner) else {
                throw JobError.invalid(field: "maxInner", message: "the inner CG budget must be in 1…1000000 products, got \(maxInner)")
            }
        }
    }

    public let options: Options
    public init(_ options: Options = Options()) { self.options = options }

    public var needsStepSize: Bool { false }

    public func minimize(_ rounds: some SolverRounds, from start: [Double], stopping: StoppingRule,
                         learningRate: Double?) async throws -> SolverResult {
        let d = rounds.features
        var w = start
        var g = [Double](repeating: 0, count: d)
        var began = rounds.now
        var loss = try await rounds.lossAndGradient(at: w, into: &g)
        var monitor = ConvergenceMonitor(stopping)
        var iteration = 0
        var innerTotal = 0
        let g0 = max(Vectors.norm(g), 1e-300)
        var hp = [Double](repeating: 0, count: d)
        while true {
            let norm = Vectors.norm(g)
            rounds.observe(iteration: iteration, model: w, gradientNorm: norm, began: began)
            if let reason = monitor.check(gradientNorm: norm) {
                if reason == .diverged { throw DivergenceError(iteration: iteration, learningRate: 0, gradientNorm: norm) }
                return SolverResult(model: w, iterations: iteration, stopReason: reason, notes: note(innerTotal, iteration))
            }
            guard iteration < stopping.maxIterations else { break }
            began = rounds.now

            // Inner CG on ∇²L p = −g (the Hessian at w, fixed by the gradient round above).
            let forcing = min(0.5, (norm / g0).squareRoot())
            var p = [Double](repeating: 0, count: d)
            var r = g                      // residual ∇²L p + g
            var dir = g.map { -$0 }
            var rr = Vectors.dot(r, r)
            for inner in 0..<min(options.maxInner, max(d, 1)) {
                try await rounds.hessianProduct(dir, into: &hp)
                innerTotal += 1
                let curvature = Vectors.dot(dir, hp)
                if curvature <= 0 {
                    if inner == 0 { p = g.map { -$0 } }
                    break
                }
                let alpha = rr / curvature
                Vectors.axpy(alpha, dir, &p)
                Vectors.axpy(alpha, hp, &r)
                let rrNext = Vectors.dot(r, r)
                if rrNext.squareRoot() <= forcing * norm { break }
                let beta = rrNext / rr
                rr = rrNext
                for j in 0..<d { dir[j] = -r[j] + beta * dir[j] }
            }
            guard let next = try await LineSearch.backtracking(rounds, from: w, loss: loss, gradient: g, along: p) else {
                return SolverResult(model: w, iterations: iteration, stopReason: .converged,
                                    notes: note(innerTotal, iteration) + ["newton-cg: the line search found no decrease at iteration \(iteration) (|∇L| = \(norm)); the loss is flat to working precision there"])
            }
            w = next.w
            g = next.gradient
            loss = next.loss
            iteration += 1
        }
        return SolverResult(model: w, iterations: iteration, stopReason: .maxIterations, notes: note(innerTotal, iteration))
    }

    private func note(_ inner: Int, _ outer: Int) -> [String] {
        ["newton-cg: \(outer) Newton step\(outer == 1 ? "" : "s"), \(inner) Hessian-vector product\(inner == 1 ? "" : "s")"]
    }
}
