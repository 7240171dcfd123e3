/// The Lanczos method for the largest eigenvalue of a symmetric positive semi-definite operator —
/// here XᵀX, for the step size `auto` = 1/L.
///
/// Power iteration keeps only the last vector of the Krylov sequence v, Av, A²v, …; Lanczos keeps
/// an orthonormal basis of all of it and takes the best estimate the whole space offers: the
/// largest eigenvalue of T_k = V_kᵀAV_k, which is tridiagonal. Its error falls like
/// (1/T_k(1 + 2γ))², a Chebyshev polynomial in the relative gap γ = (λ₁ − λ₂)/(λ₂ − λ_min), against
/// (λ₂/λ₁)^{2k} for power iteration: on an ill-conditioned Gram matrix, whose top eigenvalues are
/// close in ratio, 20 products do what power iteration needs hundreds for. Each product is one
/// data-parallel pass over the shards and one all-reduce, so the count is what matters.
///
/// ```
/// v₁ = s/|s|, β₀ = 0
/// for k = 1, 2, …:
///     w  = A v_k                          // the one application per step
///     α_k = v_kᵀw
///     w −= α_k v_k + β_{k−1} v_{k−1}      // the three-term recurrence
///     w −= V_k (V_kᵀ w), twice            // full reorthogonalisation
///     β_k = |w|, v_{k+1} = w/β_k
///     θ_k = λ_max(T_k)                    // Sturm-sequence bisection, O(k) per probe
/// ```
///
/// Without reorthogonalisation the basis loses orthogonality as soon as a Ritz value converges and
/// the converged eigenvalue reappears as a spurious copy; with at most `maxSteps` vectors of d
/// entries, keeping them and orthogonalising against all of them (twice: "twice is enough",
/// Parlett) costs O(k·d) per step, nothing beside a pass over X.
///
/// Is 1/θ a safe step? θ is a Ritz value, so θ ≤ λ_max: the step 1/θ is a little *longer* than
/// 1/L. Gradient descent on an L-smooth function is stable for any step below 2/L, so 1/θ is safe
/// as long as θ > λ_max/2, an error of 50%. The Ritz value is never worse than the Rayleigh quotient
/// of the power iterate with as many products (that vector lies in the same Krylov space), and even
/// without any gap its relative error falls like (log(d/c²)/k)², c the start vector's component
/// along the top eigenvector (Kuczyński & Woźniakowski, 1992): far below ½ after a few steps. At
/// the stopping tolerance the step is in practice 1/L·(1 + 1e-4). (For the logistic loss L uses
/// σ′ ≤ ¼, itself an over-estimate of the curvature, which adds margin.)
public enum Lanczos {
    /// Estimates λ_max of the symmetric positive semi-definite operator `apply` (v ↦ Av, both
    /// `dimension` entries).
    ///
    /// Starts from the same fixed vector as `PowerIteration` (so every node of an SPMD program
    /// starts alike), and stops when the top Ritz value changes by less than `tolerance`
    /// (relative) from one step to the next, when the Krylov space stops growing (β ≈ 0: the space
    /// is invariant and the Ritz values are exact eigenvalues), or after `maxSteps` applications.
    /// The estimate approaches λ_max from below.
    ///
    /// - Parameters:
    ///   - maxSteps: the most applications of `apply` (each one pass over X and one all-reduce).
    ///   - tolerance: relative change of the top Ritz value that ends the iteration.
    public static func largestEigenvalue(
        dimension: Int, maxSteps: Int = 20, tolerance: Double = 1e-4,
        apply: ([Double]) async throws -> [Double]
    ) async rethrows -> Double {
        guard dimension > 0, maxSteps > 0 else { return 0 }
        var v = (0..<dimension).map { 1.0 + 0.5 * Double(($0 * 7919) % 13) / 13.0 }
        PowerIteration.normalize(&v)
        var basis: [[Double]] = []
        var alpha: [Double] = [], beta: [Double] = []
        var theta = 0.0
        for k in 0..<min(maxSteps, dimension) {
            var w = try await apply(v)
            precondition(w.count == dimension, "apply returned \(w.count) entries for a dimension of \(dimension)")
            let a = dot(v, w)
            alpha.append(a)
            basis.append(v)
            // Three-term recurrence, then full reorthogonalisation against the whole basis, twice.
            subtract(a, v, from: &w)
            if k > 0 { subtract(beta[k - 1], basis[k - 1], from: &w) }
            for _ in 0..<2 {
                for q in basis { subtract(dot(q, w), q, from: &w) }
            }
            let b = PowerIteration.normalize(&w)
            let previous = theta
            theta = largestEigenvalue(tridiagonal: alpha, beta)
            // β ≈ 0 against the size of T: the Krylov space is invariant, T's eigenvalues are A's.
            let scale = max(alpha.map(abs).max() ?? 0, beta.max() ?? 0, abs(theta))
            if b <= 1e-10 * scale || scale == 0 { break }
            if k > 0 && abs(theta - previous) < tolerance * abs(theta) { break }
            beta.append(b)
            v = w
        }
        return theta
    }

    /// λ_max(XᵀX) of one shard (or a whole dataset held by one node).
    public static func largestEigenvalue<Scalar: BLASScalar>(
        of kernel: any ShardKernel<Scalar>, maxSteps: Int = 20, tolerance: Double = 1e-4
    ) async -> Double {
        var vs = [Scalar](repeating: 0, count: kernel.features)
        var out = [Scalar](repeating: 0, count: kernel.features)
        return await largestEigenvalue(dimension: kernel.features, maxSteps: maxSteps, tolerance: tolerance) { v in
            for j in 0..<v.count { vs[j] = Scalar(v[j]) }
            vs.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { kernel.gramProduct(vp.baseAddress!, into: $0.baseAddress!) }
            }
            return out.map(Double.init)
        }
    }

    /// The largest eigenvalue of the symmetric tridiagonal matrix with diagonal `alpha` (k) and
    /// off-diagonal `beta` (at least k − 1; extra entries are ignored), by bisection on Sturm
    /// sequences.
    ///
    /// The number of eigenvalues below x is the number of negative pivots of T − xI in its LDLᵀ
    /// factorisation, qᵢ = (αᵢ − x) − βᵢ₋₁²/qᵢ₋₁ (Sturm's theorem); bisection on the Gershgorin
    /// interval for the smallest x with all k below it converges to full precision in ≈ 60 halvings.
    static func largestEigenvalue(tridiagonal alpha: [Double], _ beta: [Double]) -> Double {
        let k = alpha.count
        guard k > 1 else { return alpha.first ?? 0 }
        var lo = Double.infinity, hi = -Double.infinity
        for i in 0..<k {
            let radius = (i > 0 ? abs(beta[i - 1]) : 0) + (i < k - 1 ? abs(beta[i]) : 0)
            lo = min(lo, alpha[i] - radius)
            hi = max(hi, alpha[i] + radius)
        }
        let norm = max(abs(lo), abs(hi))
        if norm == 0 { return 0 }
        // A zero pivot is replaced by a tiny one (LAPACK's pivmin), so the count stays defined.
        let pivmin = Double.leastNormalMagnitude * max(1, norm * norm)
        func below(_ x: Double) -> Int {
            var count = 0
            var q = alpha[0] - x
            for i in 0..<k {
                if i > 0 { q = (alpha[i] - x) - beta[i - 1] * beta[i - 1] / q }
                if abs(q) < pivmin { q = -pivmin }
                if q < 0 { count += 1 }
            }
            return count
        }
        // Invariant: below(hi) == k, below(lo) < k.
        lo -= 2 * Double.ulpOfOne * norm + pivmin
        hi += 2 * Double.ulpOfOne * norm + pivmin
        while hi - lo > 2 * Double.ulpOfOne * max(abs(lo), abs(hi)) {
            let mid = 0.5 * (lo + hi)
            if mid <= lo || mid >= hi { break }
            if below(mid) == k { hi = mid } else { lo = mid }
        }
        return 0.5 * (lo + hi)
    }

    /// w ← w − c·q.
    private static func subtract(_ c: Double, _ q: [Double], from w: inout [Double]) {
        q.withUnsafeBufferPointer { qp in
            w.withUnsafeMutableBufferPointer { Double.axpy(count: qp.count, alpha: -c, x: qp.baseAddress!, y: $0.baseAddress!) }
        }
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double {
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { Double.dot(count: a.count, ap.baseAddress!, $0.baseAddress!) } }
    }
}
