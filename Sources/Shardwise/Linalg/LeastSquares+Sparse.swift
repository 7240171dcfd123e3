/// The exact w* for data that must not be densified (CSR), by Krylov methods on the kernel's
/// products: nothing of size n × d or d × d is formed, so memory is X plus a few vectors.
///
/// - Least squares and ridge: conjugate gradients on the normal equations
///   (XᵀX/n + λI) w = Xᵀy/n, from w = 0, to a relative residual of 1e-13. From 0 the iterates stay
///   in the row space of X, so on rank-deficient data CG converges to the minimum-norm solution,
///   the one LAPACK's `gelsd` returns.
/// - Logistic: Newton's method, each step H p = −∇L solved by CG on Hessian-vector products
///   (H = XᵀDX/n + λI, D = σ′(Xw)), with a backtracking line search on the loss, until
///   |∇L| ≤ 1e-12·max(1, |∇L(0)|).
///
/// Works on any `ShardKernel<Double>` (the tests hold it to LAPACK on dense data).
public enum KrylovReference {
    /// Relative residual at which the normal equations count as solved.
    public static let residualTolerance = 1e-13
    /// Gradient norm (relative to max(1, |∇L(0)|)) at which Newton stops.
    public static let gradientTolerance = 1e-12

    /// w* for `objective` on the kernel's rows (all of the data).
    /// - Throws: `LinalgError.notConverged` naming how far it got.
    public static func solve(_ kernel: any ShardKernel<Double>, objective: Objective) throws -> [Double] {
        switch objective {
        case .leastSquares, .ridge: return try normalEquations(kernel, lambda: objective.lambda)
        case .logistic: return try newton(kernel, lambda: objective.lambda)
        }
    }

    /// CG on (XᵀX/n + λI) w = b (b = Xᵀy/n unless given), from `start` (zeros).
    static func normalEquations(_ kernel: any ShardKernel<Double>, lambda: Double, weights: [Double]? = nil,
                                rhs: [Double]? = nil, tolerance: Double = residualTolerance,
                                maxIterations: Int? = nil, strict: Bool = true) throws -> [Double] {
        let n = Double(max(kernel.rows, 1)), d = kernel.features
        let b: [Double]
        if let rhs { b = rhs } else {
            var xty = [Double](repeating: 0, count: d)
            let y = kernel.y
            y.withUnsafeBufferPointer { yp in xty.withUnsafeMutableBufferPointer { kernel.transposedProduct(yp.baseAddress!, into: $0.baseAddress!) } }
            b = xty.map { $0 / n }
        }
        let bNorm = norm(b)
        var w = [Double](repeating: 0, count: d)
        guard bNorm > 0 else { return w }
        var r = b, p = b, ap = [Double](repeating: 0, count: d)
        var rr = dot(r, r)
        let limit = maxIterations ?? max(1000, 4 * d)
        for _ in 0..<limit {
            if rr.squareRoot() <= tolerance * bNorm { return w }
            p.withUnsafeBufferPointer { pp in
                ap.withUnsafeMutableBufferPointer { out in
                    if let weights {
                        weights.withUnsafeBufferPointer { kernel.weightedGramProduct(pp.baseAddress!, weights: $0.baseAddress!, into: out.baseAddress!) }
                    } else {
                        kernel.weightedGramProduct(pp.baseAddress!, weights: nil, into: out.baseAddress!)
                    }
                }
            }
            for j in 0..<d { ap[j] = ap[j] / n + lambda * p[j] }
            let pap = dot(p, ap)
            guard pap > 0 else { break }   // the residual left lies in XᵀX's null space
            let alpha = rr / pap
            for j in 0..<d { w[j] += alpha * p[j]; r[j] -= alpha * ap[j] }
            let next = dot(r, r)
            let beta = next / rr
            rr = next
            for j in 0..<d { p[j] = r[j] + beta * p[j] }
        }
        let relative = rr.squareRoot() / bNorm
        // Rounding stops CG a little above 1e-13 on an ill-conditioned system; far above is a failure.
        if strict && relative > 1e-9 {
            throw LinalgError.notConverged("conjugate gradients on the normal equations stopped at relative residual \(relative)")
        }
        return w
    }

    /// Newton-CG for regularised logistic regression.
    static func newton(_ kernel: any ShardKernel<Double>, lambda: Double) throws -> [Double] {
        let d = kernel.features, n = kernel.rows, rows = Double(max(n, 1))
        var w = [Double](repeating: 0, count: d)
        var g = [Double](repeating: 0, count: d)
        var weights = [Double](repeating: 0, count: n)
        func lossAndGradient(_ w: [Double], _ g: inout [Double]) -> Double {
            let e = kernel.gradientSum(w: w, into: &g)
            for j in 0..<d { g[j] = g[j] / rows + lambda * w[j] }
            return e.lossSum / rows + 0.5 * lambda * dot(w, w)
        }
        var loss = lossAndGradient(w, &g)
        let scale = max(1, norm(g))
        for _ in 0..<200 {
            let gNorm = norm(g)
            if gNorm <= gradientTolerance * scale { return w }
            w.withUnsafeBufferPointer { wp in weights.withUnsafeMutableBufferPointer { kernel.curvatureWeights(w: wp.baseAddress!, into: $0.baseAddress!) } }
            // Inexact Newton: the inner tolerance tightens with |∇L| (superlinear convergence).
            let eta = min(0.1, gNorm.squareRoot())
            let p = try normalEquations(kernel, lambda: lambda, weights: weights, rhs: g.map { -$0 },
                                        tolerance: eta, maxIterations: max(200, 2 * d), strict: false)
            let slope = dot(g, p)
            var t = 1.0, trial = w, gTrial = g, next = loss
            var accepted = false
            // Near w* the decrease the step promises (|slope|) is below the loss's rounding, so the
            // line search cannot tell steps apart: take the full Newton step, locally quadratic.
            if -slope <= 1e-13 * max(1, abs(loss)) {
                for j in 0..<d { trial[j] = w[j] + p[j] }
                next = lossAndGradient(trial, &gTrial)
                w = trial; g = gTrial; loss = next
                continue
            }
            for _ in 0..<50 {
                for j in 0..<d { trial[j] = w[j] + t * p[j] }
                next = lossAndGradient(trial, &gTrial)
                if next <= loss + 1e-4 * t * slope { accepted = true; break }
                t /= 2
            }
            if !accepted {
                // No decrease left at rounding level: accept if the gradient is already tiny.
                if gNorm <= 1e-9 * scale { return w }
                throw LinalgError.notConverged("Newton-CG (logistic reference) found no descent at |∇L| = \(gNorm)")
            }
            w = trial; g = gTrial; loss = next
        }
        throw LinalgError.notConverged("Newton-CG (logistic reference) did not reach |∇L| ≤ \(gradientTolerance) in 200 steps (|∇L| = \(norm(g))); "
                                       + "separable data has no minimiser without λ > 0")
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for j in a.indices { s += a[j] * b[j] }
        return s
    }

    private static func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }
}
