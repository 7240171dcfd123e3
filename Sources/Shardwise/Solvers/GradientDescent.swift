/// Gradient descent: w ← w − η∇L(w), with optional heavy-ball momentum (v ← βv + ∇L; w ← w − ηv).
///
/// The step η is 1/L (L = λ_max(XᵀX)/n + λ, from a few Lanczos rounds at setup) or fixed. With
/// mini-batches each round's gradient is over the batch rows of every node (seeded). One round per
/// iteration, d numbers: the baseline every other solver is measured against.
public struct GradientDescent: Solver {
    public let momentum: Double
    public init(momentum: Double = 0) { self.momentum = momentum }

    public var needsStepSize: Bool { true }

    public func minimize(_ rounds: some SolverRounds, from start: [Double], stopping: StoppingRule,
                         learningRate: Double?) async throws -> SolverResult {
        let eta = learningRate ?? 1
        let d = rounds.features
        var w = start
        var g = [Double](repeating: 0, count: d)
        var velocity = [Double](repeating: 0, count: momentum > 0 ? d : 0)
        var monitor = ConvergenceMonitor(stopping)
        var iteration = 0
        while iteration < stopping.maxIterations {
            let began = rounds.now
            _ = try await rounds.gradient(at: w, into: &g, wantLoss: false)
            let norm = Vectors.norm(g)
            rounds.observe(iteration: iteration, model: w, gradientNorm: norm, began: began)
            if let reason = monitor.check(gradientNorm: norm) {
                if reason == .diverged {
                    throw DivergenceError(iteration: iteration, learningRate: eta, gradientNorm: norm)
                }
                return SolverResult(model: w, iterations: iteration, stopReason: reason)
            }
            // Element by element rather than axpy: the same rounding as the parameter server's and
            // gossip's steps, so staleness-0 PS equals this to the last bit.
            if momentum > 0 {
                for j in 0..<d {
                    velocity[j] = momentum * velocity[j] + g[j]
                    w[j] -= eta * velocity[j]
                }
            } else {
                for j in 0..<d { w[j] -= eta * g[j] }
            }
            iteration += 1
        }
        rounds.observe(iteration: iteration, model: w, gradientNorm: nil, began: rounds.now)
        return SolverResult(model: w, iterations: iteration, stopReason: .maxIterations)
    }
}
