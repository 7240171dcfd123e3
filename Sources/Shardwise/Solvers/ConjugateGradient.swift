/// Conjugate gradient on the normal equations of least squares and ridge:
/// (XᵀX/n + λI) w = Xᵀy/n, i.e. ∇L(w) = 0 with the constant Hessian H = XᵀX/n + λI.
///
/// ```
/// r = −∇L(w₀)                    // one gradient round
/// p = r
/// repeat:
///     q = H p                    // one round: the all-reduce of Xᵀ(X p), d numbers
///     α = rᵀr / pᵀq
///     w += α p;  r −= α q
///     p = r + (r₊ᵀr₊ / rᵀr) p
/// ```
///
/// The residual r is −∇L(w) in exact arithmetic, so |r| is the gradient norm the stopping rule
/// watches; exact in ≤ d rounds (Hestenes & Stiefel 1952), and after k rounds the error in the
/// H-norm falls like ((√κ − 1)/(√κ + 1))^k where gradient descent's falls like ((κ − 1)/(κ + 1))^k.
/// In floating point the recurrence drifts from the true gradient, so when it says "converged"
/// one more gradient round checks; if the true gradient is not small enough, CG restarts from it.
/// No step size, no line search: one round of d numbers per iteration.
public struct ConjugateGradient: Solver {
    public init() {}

    public var needsStepSize: Bool { false }

    public func minimize(_ rounds: some SolverRounds, from start: [Double], stopping: StoppingRule,
                         learningRate: Double?) async throws -> SolverResult {
        precondition(rounds.objective.link == .identity, "cg solves the normal equations of least squares and ridge")
        let d = rounds.features
        var w = start
        var r = [Double](repeating: 0, count: d)
        var q = [Double](repeating: 0, count: d)
        var monitor = ConvergenceMonitor(stopping)
        var iteration = 0
        var restarts = 0

        // r = −∇L(w), from a true gradient round; p = r.
        func trueResidual() async throws -> Double {
            _ = try await rounds.gradient(at: w, into: &r, wantLoss: false)
            Vectors.scale(&r, by: -1)
            return Vectors.dot(r, r)
        }
        var began = rounds.now
        var rr = try await trueResidual()
        var p = r
        var confirmed = false     // whether rr is from a true gradient round at this w
        while iteration < stopping.maxIterations {
            var norm = rr.squareRoot()
            if !confirmed { rounds.observe(iteration: iteration, model: w, gradientNorm: norm, began: began) }
            if var reason = monitor.check(gradientNorm: norm) {
                if reason == .converged && !confirmed && iteration > 0 {
                    // Confirm with the true gradient (the recurrence may have drifted).
                    rr = try await trueResidual()
                    norm = rr.squareRoot()
                    confirmed = true
                    guard let checked = monitor.check(gradientNorm: norm) else {
                        restarts += 1
                        p = r
                        continue
                    }
                    reason = checked
                }
                if reason == .diverged {
                    throw DivergenceError(iteration: iteration, learningRate: 0, gradientNorm: norm)
                }
                return SolverResult(model: w, iterations: iteration, stopReason: reason, notes: note(restarts))
            }
            began = rounds.now
            try await rounds.hessianProduct(p, into: &q)
            let curvature = Vectors.dot(p, q)
            if rr == 0 || !(curvature > 0) && Vectors.norm(q) <= 1e-300 {
                // The residual vanished (an exact answer, e.g. with tolerance 0): nothing is left to do.
                return SolverResult(model: w, iterations: iteration, stopReason: .converged, notes: note(restarts))
            }
            guard curvature > 0 else {
                // H is positive semi-definite: pᵀHp = 0 means p is in X's null space (rank-deficient
                // least squares, λ = 0) and the minimum along p is already reached.
                return SolverResult(model: w, iterations: iteration, stopReason: .converged,
                                    notes: note(restarts) + ["cg: pᵀHp = \(curvature) at iteration \(iteration): "
                                        + "the data is rank-deficient along the search direction (add --lambda for a unique answer)"])
            }
            let alpha = rr / curvature
            Vectors.axpy(alpha, p, &w)
            Vectors.axpy(-alpha, q, &r)
            let rrNext = Vectors.dot(r, r)
            let beta = rrNext / rr
            rr = rrNext
            for j in 0..<d { p[j] = r[j] + beta * p[j] }
            confirmed = false
            iteration += 1
        }
        rounds.observe(iteration: iteration, model: w, gradientNorm: nil, began: rounds.now)
        return SolverResult(model: w, iterations: iteration, stopReason: .maxIterations, notes: note(restarts))
    }

    private func note(_ restarts: Int) -> [String] {
        restarts > 0 ? ["cg: restarted \(restarts) time\(restarts == 1 ? "" : "s") from the true gradient (the recurrence had drifted)"] : []
    }
}
