/// Nesterov's accelerated gradient (FISTA's momentum sequence) with adaptive restart.
///
/// ```
/// w₊ = y − η∇L(y)                          // a gradient step from the extrapolated point
/// t₊ = (1 + √(1 + 4t²)) / 2
/// y  = w₊ + ((t − 1)/t₊)(w₊ − w)           // extrapolate
/// restart (t = 1, y = w₊) when ∇L(y)ᵀ(w₊ − w) > 0   // momentum points uphill
/// ```
///
/// The gradient restart of O'Donoghue & Candès ("Adaptive restart for accelerated gradient
/// schemes", 2015) keeps the O(√κ) rate of acceleration on strongly convex problems without
/// knowing the strong-convexity constant, and removes the ripples of plain momentum. One round per
/// iteration (the gradient at y); the stopping rule looks at |∇L(y)|.
public struct Nesterov: Solver {
    /// Options of `nesterov`.
    public struct Options: ComponentOptions {
        public init() {}
        /// Restart the momentum when it points uphill (on by default).
        public var restart: Bool = true
        public init(restart: Bool = true) { self.restart = restart }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            restart = try c.decodeIfPresent(Bool.self, forKey: .restart) ?? true
        }
        enum CodingKeys: String, CodingKey { case restart }
    }

    public let options: Options
    public init(_ options: Options = Options()) { self.options = options }

    public var needsStepSize: Bool { true }

    public func minimize(_ rounds: some SolverRounds, from start: [Double], stopping: StoppingRule,
                         learningRate: Double?) async throws -> SolverResult {
        let eta = learningRate ?? 1
        let d = rounds.features
        var w = start, y = start
        var g = [Double](repeating: 0, count: d)
        var t = 1.0
        var restarts = 0
        var monitor = ConvergenceMonitor(stopping)
        var iteration = 0
        while iteration < stopping.maxIterations {
            let began = rounds.now
            _ = try await rounds.gradient(at: y, into: &g, wantLoss: false)
            let norm = Vectors.norm(g)
            rounds.observe(iteration: iteration, model: y, gradientNorm: norm, began: began)
            if let reason = monitor.check(gradientNorm: norm) {
                if reason == .diverged {
                    throw DivergenceError(iteration: iteration, learningRate: eta, gradientNorm: norm)
                }
                return SolverResult(model: y, iterations: iteration, stopReason: reason, notes: note(restarts))
            }
            let next = Vectors.step(y, -eta, g)
            var move = next
            Vectors.axpy(-1, w, &move)                     // w₊ − w
            if options.restart && Vectors.dot(g, move) > 0 {
                t = 1
                restarts += 1
                y = next
            } else {
                let tNext = (1 + (1 + 4 * t * t).squareRoot()) / 2
                y = Vectors.step(next, (t - 1) / tNext, move)
                t = tNext
            }
            w = next
            iteration += 1
        }
        rounds.observe(iteration: iteration, model: w, gradientNorm: nil, began: rounds.now)
        return SolverResult(model: w, iterations: iteration, stopReason: .maxIterations, notes: note(restarts))
    }

    private func note(_ restarts: Int) -> [String] {
        restarts > 0 ? ["nesterov: the momentum was restarted \(restarts) time\(restarts == 1 ? "" : "s")"] : []
    }
}
