/// Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989) with a strong-Wolfe line search.
///
/// The last m pairs s = w₊ − w, y = ∇L(w₊) − ∇L(w) define an approximation of the inverse
/// Hessian; the two-loop recursion applies it to the gradient in O(m·d) local work, with no
/// communication: the only rounds are the line search's trials, each one the loss and the
/// gradient at a trial point (d + 1 numbers). A Wolfe step of 1 is accepted at once near the
/// optimum, so an iteration costs about one round; the convergence is superlinear. This is the
/// method of scikit-learn's `LogisticRegression(solver="lbfgs")` and Spark MLlib's default.
public struct LBFGS: Solver {
    /// Options of `lbfgs`.
    public struct Options: ComponentOptions {
        public init() {}
        /// Pairs (s, y) kept: m.
        public var memory: Int = 10
        /// Trials one line search may take before it gives up.
        public var maxLineSearch: Int = 20
        public init(memory: Int = 10, maxLineSearch: Int = 20) {
            self.memory = memory
            self.maxLineSearch = maxLineSearch
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            memory = try c.decodeIfPresent(Int.self, forKey: .memory) ?? 10
            maxLineSearch = try c.decodeIfPresent(Int.self, forKey: .maxLineSearch) ?? 20
        }
        enum CodingKeys: String, CodingKey { case memory, maxLineSearch }

        /// The largest memory accepted: m·d pairs are stored on every node that runs the solver.
        public static let maximumMemory = 1000

        public func validate() throws {
            guard (1...Self.maximumMemory).contains(memory) else {
                throw JobError.invalid(field: "memory", message: "the L-BFGS memory m must be in 1…\(Self.maximumMemory), got \(memory)")
            }
            guard (1...1000).contains(maxLineSearch) else {
                throw JobError.invalid(field: "maxLineSearch", message: "the line search needs 1…1000 trials, got \(maxLineSearch)")
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
        var pairs: [(s: [Double], y: [Double], rho: Double)] = []
        var monitor = ConvergenceMonitor(stopping)
        var notes: [String] = []
        var resets = 0
        var iteration = 0
        while true {
            let norm = Vectors.norm(g)
            rounds.observe(iteration: iteration, model: w, gradientNorm: norm, began: began)
            if let reason = monitor.check(gradientNorm: norm) {
                if reason == .diverged { throw DivergenceError(iteration: iteration, learningRate: 0, gradientNorm: norm) }
                return SolverResult(model: w, iterations: iteration, stopReason: reason, notes: notes + resetNote(resets))
            }
            guard iteration < stopping.maxIterations else { break }
            began = rounds.now
            var p = direction(g, pairs)
            if Vectors.dot(p, g) >= 0 {             // not a descent direction: forget the curvature
                pairs.removeAll()
                resets += 1
                p = g.map { -$0 }
            }
            // The first step is scaled so that it moves a unit distance: the memory holds no scale yet.
            let first = pairs.isEmpty ? min(1, 1 / max(norm, 1e-300)) : 1
            var found = try await LineSearch.strongWolfe(rounds, from: w, loss: loss, gradient: g, along: p,
                                                         initialStep: first, maxTrials: options.maxLineSearch)
            if found == nil && !pairs.isEmpty {
                pairs.removeAll()
                resets += 1
                p = g.map { -$0 }
                found = try await LineSearch.strongWolfe(rounds, from: w, loss: loss, gradient: g, along: p,
                                                         initialStep: min(1, 1 / max(norm, 1e-300)),
                                                         maxTrials: options.maxLineSearch)
            }
            guard let next = found else {
                // No decrease along steepest descent to working precision: nothing more to gain.
                notes.append("lbfgs: the line search found no decrease at iteration \(iteration) (|∇L| = \(norm)); "
                             + "the loss is flat to working precision there")
                return SolverResult(model: w, iterations: iteration, stopReason: .converged, notes: notes + resetNote(resets))
            }
            var s = next.w, y = next.gradient
            Vectors.axpy(-1, w, &s)
            Vectors.axpy(-1, g, &y)
            let sy = Vectors.dot(s, y)
            if sy > 1e-12 * Vectors.norm(s) * Vectors.norm(y) {
                if pairs.count == options.memory { pairs.removeFirst() }
                pairs.append((s, y, 1 / sy))
            }
            w = next.w
            g = next.gradient
            loss = next.loss
            iteration += 1
        }
        // Iteration maxIterations was observed, with its gradient norm, at the top of the loop.
        return SolverResult(model: w, iterations: iteration, stopReason: .maxIterations, notes: notes + resetNote(resets))
    }

    /// −H·g by the two-loop recursion, H₀ = (sᵀy / yᵀy)·I from the newest pair.
    func direction(_ g: [Double], _ pairs: [(s: [Double], y: [Double], rho: Double)]) -> [Double] {
        var q = g
        var alphas = [Double](repeating: 0, count: pairs.count)
        for i in pairs.indices.reversed() {
            alphas[i] = pairs[i].rho * Vectors.dot(pairs[i].s, q)
            Vectors.axpy(-alphas[i], pairs[i].y, &q)
        }
        if let newest = pairs.last {
            Vectors.scale(&q, by: 1 / (newest.rho * Vectors.dot(newest.y, newest.y)))
        }
        for i in pairs.indices {
            let beta = pairs[i].rho * Vectors.dot(pairs[i].y, q)
            Vectors.axpy(alphas[i] - beta, pairs[i].s, &q)
        }
        Vectors.scale(&q, by: -1)
        return q
    }

    private func resetNote(_ resets: Int) -> [String] {
        resets > 0 ? ["lbfgs: the curvature memory was reset \(resets) time\(resets == 1 ? "" : "s")"] : []
    }
}
