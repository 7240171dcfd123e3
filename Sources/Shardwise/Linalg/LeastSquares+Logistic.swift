#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension LeastSquares {
    /// The exact minimiser of the ℓ2-regularised logistic loss 1/n·Σ[log(1+e^{xᵢᵀw}) − yᵢxᵢᵀw] + λ/2|w|²,
    /// by Newton's method on the Gram matrix with a backtracking line search, computed in Double
    /// whatever the storage.
    ///
    /// Each step is one pass over X in cache-sized row blocks (the gradient, the loss and the
    /// Hessian XᵀDX + nλI by `dsyrk` — X is never copied whole), a Cholesky solve of the d × d
    /// Newton system, and one more pass for XΔ, from which the line search evaluates the loss along
    /// the step in O(n) per trial without touching X again. About ten steps from w = 0; see
    /// `LogisticNewton` for the stopping rule and the rank-deficient case.
    ///
    /// With λ = 0 on separable classes no finite minimiser exists: this throws `.notConverged`
    /// saying so (as soon as an iterate separates the classes, or when the steps do not settle).
    ///
    /// - Parameters:
    ///   - tolerance: stop when a step moves w by at most this much relative to |w|.
    ///   - maxIterations: Newton steps before `.notConverged`.
    public static func solveLogistic<Scalar: BLASScalar>(
        x: MatrixRows<Scalar>, y: ArraySlice<Scalar>, ridge lambda: Double = 0,
        maxIterations: Int = 100, tolerance: Double = 1e-12
    ) throws -> [Scalar] {
        let n = x.rows, d = x.columns
        guard y.count == n else { throw LinalgError.shapeMismatch("X has \(n) rows but y has \(y.count) entries") }
        try checkNewtonWorkspace(rows: n, columns: d, what: "logistic regression")
        // No rows: F = nλ/2·|w|² = 0 everywhere, and w = 0 is the minimum-norm minimiser.
        guard n > 0, d > 0 else { return [Scalar](repeating: 0, count: d) }
        let newton = LogisticNewton(x: x, y: y, lambda: lambda)
        return try newton.minimise(maxIterations: maxIterations, tolerance: tolerance).map { Scalar($0) }
    }
}

/// Newton's method for the logistic loss written as a *sum* (n times the mean loss),
///
///     F(w) = Σᵢ [log(1 + e^{zᵢ}) − yᵢzᵢ] + nλ/2·|w|²,   z = Xw,
///     g = ∇F = Xᵀ(p − y) + nλw,   H = ∇²F = XᵀDX + nλI,   p = σ(z), D = diag(pᵢ(1 − pᵢ)),
///
/// so that g and H are the plain sums BLAS accumulates. One pass over X per step:
///
/// ```
/// for each block b:                 // X_b is (m, d) row-major; z_b, r_b are (m); S_b is (m, d)
///     z_b = X_b w                   // dgemv
///     r_b = σ(z_b) − y_b, F += Σ ℓ(z_b)
///     S_b = diag(√D_b) X_b          // into a block-sized buffer
///     g  += X_bᵀ r_b                // dgemv, X_b still in cache
///     H  += S_bᵀ S_b                // dsyrk, upper triangle, β = 1
/// ```
///
/// then Δ = −H⁻¹g by Cholesky (`dpotrf`, `dpotrs`), u = XΔ (a second pass), and a backtracking
/// (Armijo) line search on F(w + tΔ) = Σ ℓ(zᵢ + t·uᵢ) + nλ/2|w + tΔ|², halving t from 1 — which
/// keeps the first steps from w = 0 safe on badly scaled columns, where a full Newton step can
/// overshoot into the flat tails of σ. Near the optimum t = 1 and convergence is quadratic.
///
/// Forming H squares X's condition number, but the fixed point is where the gradient — computed
/// from X directly — vanishes: an inexact H slows Newton only to a linear rate of about cond(H)·ε,
/// and does not move the answer.
///
/// Stopping: when a step moves w by ≤ `tolerance`·|w|, or when the Newton decrement gᵀH⁻¹g (twice
/// the decrease the quadratic model predicts) falls below what F can resolve (≈ 10³ε·|F|): that last,
/// full step is taken without a line search (Armijo cannot see a decrease below F's rounding) and,
/// the convergence being quadratic, leaves w accurate to rounding. The second rule is what stops
/// ill-conditioned problems, whose steps settle at cond·ε rather than at the tolerance.
///
/// A singular H (λ = 0 and X rank-deficient, or a column of zeros): `dpotrf` fails, or succeeds
/// with a pivot of rounding size — the Schur complement Uⱼⱼ² of column j is at most 10⁻¹⁰·Hⱼⱼ,
/// i.e. column j is numerically in the span of the ones before it (a test independent of the
/// columns' scales). The step is then the minimum-norm solution of HΔ = −g by SVD (`dgelsd` on the
/// d × d H, singular values below 10⁻¹²·σ_max dropped): the pseudo-inverse leaves w in the row
/// space of X, so the iterates converge to the minimum-norm minimiser, as the old least-squares
/// Newton step (`dgelsd` on the (n + d) × d system) did — at d³ rather than n·d² per step. A
/// diagonal jitter would not do: it would let rounding noise in g walk w along the null space.
final class LogisticNewton<Scalar: BLASScalar> {
    let x: MatrixRows<Scalar>
    let n: Int, d: Int
    let nLambda: Double
    /// Rows per block.
    let blockRows: Int
    /// Whether every target is 0 or 1 (only then does separating the classes mean no optimum).
    let binary: Bool

    /// Targets, z = Xw and u = XΔ, n each.
    private let y: UnsafeMutablePointer<Double>
    private let z: UnsafeMutablePointer<Double>
    private let u: UnsafeMutablePointer<Double>
    /// A block of X in Double (Float storage only), √Dᵢ·xᵢ of the block, (blockRows, d) each;
    /// p − y of the block (blockRows).
    private let block: UnsafeMutablePointer<Double>
    private let scaled: UnsafeMutablePointer<Double>
    private let residual: UnsafeMutablePointer<Double>
    /// H (upper triangle) and its factor (d, d); g, Δ and the SVD's singular values (d).
    private let h: UnsafeMutablePointer<Double>
    private let factor: UnsafeMutablePointer<Double>
    private let g: UnsafeMutablePointer<Double>
    private let step: UnsafeMutablePointer<Double>
    private let singular: UnsafeMutablePointer<Double>

    /// Steps that took the SVD instead of Cholesky (for the tests).
    private(set) var pseudoInverseSteps = 0

    /// Bytes of X per block: a few hundred rows for d in the hundreds — enough for `dsyrk` to run
    /// near its peak (its rank-k update is compute-bound only for k beyond ~100), still in L2.
    static var blockBytes: Int { 512 * 1024 }
    /// A Cholesky pivot at most this fraction of its diagonal entry marks a dependent column.
    static var pivotFloor: Double { 1e-10 }
    /// Singular values of H below this fraction of the largest are dropped by the SVD step.
    static var singularFloor: Double { 1e-12 }
    /// A Newton decrement below this fraction of |F| is beneath F's rounding.
    static var decrementFloor: Double { 1e3 * Double.ulpOfOne }
    /// Armijo's sufficient-decrease fraction.
    static var armijo: Double { 1e-4 }

    init(x: MatrixRows<Scalar>, y targets: ArraySlice<Scalar>, lambda: Double) {
        self.x = x
        n = x.rows
        d = x.columns
        nLambda = Double(n) * lambda
        blockRows = max(1, min(n, max(64, Self.blockBytes / (8 * max(d, 1)))))
        y = .allocate(capacity: n)
        var binary = true
        for (i, t) in targets.enumerated() {
            y[i] = Double(t)
            if y[i] != 0 && y[i] != 1 { binary = false }
        }
        self.binary = binary
        z = .allocate(capacity: n)
        u = .allocate(capacity: n)
        block = .allocate(capacity: Scalar.self == Double.self ? 1 : blockRows * d)
        scaled = .allocate(capacity: blockRows * d)
        residual = .allocate(capacity: blockRows)
        h = .allocate(capacity: d * d)
        factor = .allocate(capacity: d * d)
        g = .allocate(capacity: d)
        step = .allocate(capacity: d)
        singular = .allocate(capacity: d)
    }

    deinit {
        for p in [y, z, u, block, scaled, residual, h, factor, g, step, singular] { p.deallocate() }
    }

    /// Rows start..<start+m of X as Double: in place for Double storage, converted into `block`
    /// otherwise.
    private func rows(_ start: Int, _ m: Int) -> UnsafePointer<Double> {
        if Scalar.self == Double.self {
            return UnsafeRawPointer(x.base + start * d).assumingMemoryBound(to: Double.self)
        }
        let source = x.base + start * d
        for k in 0..<(m * d) { block[k] = Double(source[k]) }
        return UnsafePointer(block)
    }

    /// One pass over X at w: z = Xw, g = ∇F(w), H = ∇²F(w) (upper triangle). Returns F(w), and
    /// whether w classifies every row strictly right ((2yᵢ − 1)·zᵢ > 0, targets 0/1).
    private func evaluate(_ w: UnsafePointer<Double>) -> (loss: Double, separates: Bool) {
        g.update(repeating: 0, count: d)
        h.update(repeating: 0, count: d * d)
        var loss = 0.0, right = 0
        var start = 0
        while start < n {
            let m = min(blockRows, n - start)
            let xb = rows(start, m)
            let zb = z + start, yb = y + start
            Double.gemv(transpose: false, rows: m, cols: d, alpha: 1, a: xb, lda: d, x: w, beta: 0, y: zb)
            for i in 0..<m {
                let zi = zb[i], yi = yb[i]
                loss += logistic1pExp(zi) - yi * zi
                residual[i] = sigmoid(zi) - yi
                if (yi == 1 && zi > 0) || (yi == 0 && zi < 0) { right += 1 }
                // p(1 − p) = e^{−|z|}/(1 + e^{−|z|})², without the cancellation of 1 − p near 1.
                let e = exp(-abs(zi))
                let root = e.squareRoot() / (1 + e)
                let row = xb + i * d, out = scaled + i * d
                for j in 0..<d { out[j] = root * row[j] }
            }
            Double.gemv(transpose: true, rows: m, cols: d, alpha: 1, a: xb, lda: d, x: residual, beta: 1, y: g)
            Double.syrkTransposed(n: d, k: m, alpha: 1, a: scaled, lda: d, beta: 1, c: h, ldc: d)
            start += m
        }
        if nLambda > 0 {
            Double.axpy(count: d, alpha: nLambda, x: w, y: g)
            for j in 0..<d { h[j * d + j] += nLambda }
            loss += 0.5 * nLambda * Double.dot(count: d, w, w)
        }
        return (loss, binary && right == n)
    }

    /// u = XΔ, a pass over X.
    private func applyStep() {
        var start = 0
        while start < n {
            let m = min(blockRows, n - start)
            Double.gemv(transpose: false, rows: m, cols: d, alpha: 1, a: rows(start, m), lda: d, x: step, beta: 0,
                        y: u + start)
            start += m
        }
    }

    /// F(w + tΔ) from z and u, without X.
    private func lossAlongStep(_ t: Double, from w: UnsafePointer<Double>) -> Double {
        var loss = 0.0
        for i in 0..<n {
            let zi = z[i] + t * u[i]
            loss += logistic1pExp(zi) - y[i] * zi
        }
        if nLambda > 0 {
            var norm = 0.0
            for j in 0..<d { let v = w[j] + t * step[j]; norm += v * v }
            loss += 0.5 * nLambda * norm
        }
        return loss
    }

    /// Δ = −H⁻¹g: Cholesky, or the SVD's minimum-norm solution when H is (numerically) singular.
    private func solveNewtonSystem() throws {
        factor.update(from: h, count: d * d)
        var singularH = Double.potrf(n: d, a: factor, lda: d) != 0
        if !singularH {
            for j in 0..<d where factor[j * d + j] * factor[j * d + j] <= Self.pivotFloor * h[j * d + j] {
                singularH = true
                break
            }
        }
        for j in 0..<d { step[j] = -g[j] }
        if !singularH {
            let info = Double.potrs(n: d, nrhs: 1, a: factor, lda: d, b: step, ldb: 1)
            if info != 0 { throw LinalgError.lapack(routine: "dpotrs", info: info) }
            return
        }
        // dgelsd wants the whole matrix: mirror the upper triangle.
        for i in 0..<d {
            for j in 0..<d { factor[i * d + j] = i <= j ? h[i * d + j] : h[j * d + i] }
        }
        var rank = 0
        let info = Double.gelsd(m: d, n: d, nrhs: 1, a: factor, lda: d, b: step, ldb: 1, s: singular,
                                rcond: Self.singularFloor, rank: &rank)
        if info != 0 { throw LinalgError.lapack(routine: "dgelsd", info: info) }
        pseudoInverseSteps += 1
    }

    func minimise(maxIterations: Int, tolerance: Double) throws -> [Double] {
        var w = [Double](repeating: 0, count: d)
        for k in 0..<max(maxIterations, 0) {
            let (loss, separates) = w.withUnsafeBufferPointer { evaluate($0.baseAddress!) }
            if separates && nLambda == 0 {
                throw LinalgError.notConverged(
                    "the logistic reference has no finite optimum: Newton step \(k) found a w that separates the "
                    + "classes, so the loss falls towards 0 only as |w| grows without bound — add an ℓ2 term, --lambda λ > 0")
            }
            try solveNewtonSystem()
            let decrement = -Double.dot(count: d, g, step)
            guard decrement.isFinite else { break }
            if decrement <= Self.decrementFloor * abs(loss) {
                for j in 0..<d { w[j] += step[j] }
                return w
            }
            applyStep()
            var t = 1.0
            while w.withUnsafeBufferPointer({ lossAlongStep(t, from: $0.baseAddress!) }) > loss - Self.armijo * t * decrement {
                t /= 2
                if t < 0x1p-40 {
                    throw LinalgError.notConverged(
                        "Newton's method for the logistic reference found no decrease along its step \(k) "
                        + "(Newton decrement \(decrement) at loss \(loss)); the data may be too badly scaled — try --standardize")
                }
            }
            var stepNorm = 0.0, wNorm = 0.0
            for j in 0..<d {
                w[j] += t * step[j]
                stepNorm += t * t * step[j] * step[j]
                wNorm += w[j] * w[j]
            }
            if !wNorm.isFinite || wNorm > 1e30 { break }
            if stepNorm.squareRoot() <= tolerance * wNorm.squareRoot() { return w }
        }
        throw LinalgError.notConverged(
            "Newton's method for the logistic reference did not converge in \(maxIterations) steps; "
            + "the classes may be separable (no finite optimum) — add an ℓ2 term, --lambda λ > 0")
    }
}
