/// Line searches along a descent direction p from w: every trial point costs one round (the loss
/// and the gradient travel together), and the accepted point's gradient is the next iterate's, so
/// no round is spent twice.
struct LineSearchPoint {
    var alpha: Double
    var w: [Double]
    var loss: Double
    var gradient: [Double]
    /// φ′(α) = ∇L(w + αp)ᵀp.
    var slope: Double
}

enum LineSearch {
    /// One trial: L and ∇L at w + αp.
    static func evaluate(_ rounds: some SolverRounds, from w: [Double], along p: [Double], alpha: Double) async throws
        -> LineSearchPoint {
        let x = Vectors.step(w, alpha, p)
        var g = [Double](repeating: 0, count: w.count)
        let loss = try await rounds.lossAndGradient(at: x, into: &g)
        return LineSearchPoint(alpha: alpha, w: x, loss: loss, gradient: g, slope: Vectors.dot(g, p))
    }

    /// A step satisfying the strong Wolfe conditions
    ///
    ///     L(w + αp) ≤ L(w) + c₁ α ∇L(w)ᵀp          (sufficient decrease)
    ///     |∇L(w + αp)ᵀp| ≤ c₂ |∇L(w)ᵀp|            (curvature)
    ///
    /// by bracketing and zooming with safeguarded cubic interpolation (Nocedal & Wright,
    /// *Numerical Optimization*, 2nd ed., Algorithms 3.5 and 3.6). The curvature condition makes
    /// sᵀy > 0, which keeps the L-BFGS matrix positive definite.
    ///
    /// Returns nil when `maxTrials` trials found no point with sufficient decrease (the loss is
    /// flat to working precision along p); otherwise the Wolfe point, or, when the budget ran out
    /// while zooming, the best point with sufficient decrease.
    static func strongWolfe(_ rounds: some SolverRounds, from w: [Double], loss f0: Double, gradient g0: [Double],
                            along p: [Double], initialStep: Double, c1: Double = 1e-4, c2: Double = 0.9,
                            maxTrials: Int = 20) async throws -> LineSearchPoint? {
        let slope0 = Vectors.dot(g0, p)
        guard slope0 < 0 else { return nil }
        var trials = 0
        // Near the optimum a step's decrease, ~|∇L|²/L, falls below the rounding of L itself, and
        // the sufficient-decrease test then fails for every step. Hager & Zhang's approximate
        // Wolfe conditions (CG_DESCENT, 2005) rescue it: a loss within a rounding error of L(w)
        // is accepted when the slope shows the step is a descent step that went far enough.
        let flat = 1e-12 * abs(f0)
        func armijo(_ t: LineSearchPoint) -> Bool {
            guard t.loss.isFinite else { return false }
            if t.loss <= f0 + c1 * t.alpha * slope0 { return true }
            return t.loss <= f0 + flat && t.slope <= -0.8 * slope0 && t.slope >= c2 * slope0   // δ = 0.1, σ = c₂
        }
        func wolfe(_ t: LineSearchPoint) -> Bool { abs(t.slope) <= -c2 * slope0 }

        let origin = LineSearchPoint(alpha: 0, w: w, loss: f0, gradient: g0, slope: slope0)
        var previous = origin
        var alpha = initialStep
        var bracket: (lo: LineSearchPoint, hi: LineSearchPoint)?
        while bracket == nil {
            guard trials < maxTrials else { return previous.alpha > 0 ? previous : nil }
            let t = try await evaluate(rounds, from: w, along: p, alpha: alpha)
            trials += 1
            if !t.loss.isFinite {
                // Overshot into overflow: shrink towards the last good step.
                alpha = previous.alpha + (alpha - previous.alpha) / 4
                continue
            }
            if !armijo(t) || (previous.alpha > 0 && t.loss >= previous.loss) {
                bracket = (previous, t)
            } else if wolfe(t) {
                return t
            } else if t.slope >= 0 {
                bracket = (t, previous)
            } else {
                previous = t
                alpha *= 2
            }
        }
        // Zoom: lo always satisfies sufficient decrease and has the lowest loss so far; the
        // minimiser lies between lo and hi.
        var (lo, hi) = bracket!
        while trials < maxTrials {
            let a = interpolate(lo, hi)
            let t = try await evaluate(rounds, from: w, along: p, alpha: a)
            trials += 1
            if !armijo(t) || t.loss >= lo.loss {
                hi = t
            } else {
                if wolfe(t) { return t }
                if t.slope * (hi.alpha - lo.alpha) >= 0 { hi = lo }
                lo = t
            }
            if abs(hi.alpha - lo.alpha) <= 1e-12 * max(1, lo.alpha) { break }
        }
        return lo.alpha > 0 ? lo : nil
    }

    /// The minimiser of the cubic through (α, φ, φ′) at both ends, kept at least a tenth of the
    /// interval away from either end (else the midpoint).
    static func interpolate(_ a: LineSearchPoint, _ b: LineSearchPoint) -> Double {
        let lo = min(a.alpha, b.alpha), hi = max(a.alpha, b.alpha)
        let mid = (lo + hi) / 2
        guard a.loss.isFinite, b.loss.isFinite, a.alpha != b.alpha else { return mid }
        // Nocedal & Wright (3.59).
        let d1 = a.slope + b.slope - 3 * (a.loss - b.loss) / (a.alpha - b.alpha)
        let disc = d1 * d1 - a.slope * b.slope
        guard disc >= 0 else { return mid }
        let d2 = (b.alpha > a.alpha ? 1.0 : -1.0) * disc.squareRoot()
        let x = b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / (b.slope - a.slope + 2 * d2)
        let margin = 0.1 * (hi - lo)
        guard x.isFinite, x >= lo + margin, x <= hi - margin else { return mid }
        return x
    }

    /// Backtracking from α = 1 until sufficient decrease (Armijo), halving each time; nil after
    /// `maxTrials` (no decrease to working precision).
    static func backtracking(_ rounds: some SolverRounds, from w: [Double], loss f0: Double, gradient g0: [Double],
                             along p: [Double], c1: Double = 1e-4, maxTrials: Int = 30) async throws -> LineSearchPoint? {
        let slope0 = Vectors.dot(g0, p)
        guard slope0 < 0 else { return nil }
        var alpha = 1.0
        let flat = 1e-12 * abs(f0)   // as in strongWolfe: rounding of L near the optimum
        for _ in 0..<maxTrials {
            let t = try await evaluate(rounds, from: w, along: p, alpha: alpha)
            if t.loss.isFinite && t.loss <= f0 + c1 * alpha * slope0 { return t }
            if t.loss.isFinite && t.loss <= f0 + flat && abs(t.slope) <= -0.9 * slope0 { return t }
            alpha /= 2
        }
        return nil
    }
}
