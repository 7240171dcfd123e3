/// The link between the linear predictor z = Xw and the residual that the gradient needs.
///
/// - `identity`: least squares / ridge. r = z − y, per-row loss ½r².
/// - `logistic`: logistic regression with labels in {0, 1}. r = σ(z) − y,
///   per-row loss log(1 + eᶻ) − y·z (the negative log-likelihood).
public enum Link: String, Codable, Sendable, CaseIterable {
    case identity
    case logistic
}

/// Which implementation computes the fused gradient of a `GradientKernel`.
///
/// - `blas`: the block-fused cblas path, two `cblas_?gemv` per cache block.
/// - `avx2`: the hand-written AVX2+FMA kernel (`CShardwiseKernels`): one sequential pass over X;
///   every other row, the loop of row i's dot product with w also adds r_{i−2}·x_{i−2} + r_{i−1}·x_{i−1}
///   (still in L1) to g. Identity and logistic links.
///   Chosen at run time: it needs a CPU with AVX2 and FMA; elsewhere (older x86-64, non-x86) a kernel
///   asked for `avx2` runs the `blas` path.
public enum KernelPath: String, Codable, Sendable, CaseIterable {
    case blas
    case avx2

    /// Whether this CPU runs the `avx2` path (AVX2 and FMA, checked once).
    public static var avx2Available: Bool { shardwise_kernels_avx2_available() != 0 }

    /// The default path for `Scalar` on this CPU: `avx2` wherever it runs, for both precisions;
    /// `blas` when AVX2+FMA is missing.
    ///
    /// A rule, not a measurement at first use: the two paths round differently, and a choice made by
    /// timing would let the same job give different bits on two runs. The rule is `make bench`'s:
    /// on this machine (one thread, ratio to the read ceiling of the same run) the AVX2 kernel reached
    /// 89.9% at 2e5×500 and 92.6% at 1e6×100 in Double where block-fused dgemv reached 60.4% and
    /// 37.6%, and it leads in Float too (the earlier choice of dgemv for Double rested on an older
    /// measurement). The kernel table of `make bench` prints every path beside the default, so a
    /// machine where the rule is wrong shows it.
    public static func preferred<Scalar: BLASScalar>(for _: Scalar.Type) -> KernelPath {
        avx2Available ? .avx2 : .blas
    }
}

/// What one evaluation of a shard's gradient returns besides the gradient itself.
public struct ShardEvaluation: Sendable, Equatable {
    /// Σᵢ ℓᵢ over the shard's rows: ½|Xw − y|² for least squares. Accumulated in Double.
    public var lossSum: Double
    /// Number of rows the sums cover.
    public var rows: Int

    public init(lossSum: Double, rows: Int) {
        self.lossSum = lossSum
        self.rows = rows
    }
}

/// The hot path: the gradient *sum* of one shard, Xᵀ(link(Xw) − y), with X streamed from memory once.
///
/// X is processed in blocks of rows small enough to stay in cache:
///
/// ```
/// for each block b:                  // X_b is (rows_b, d) row-major, w is (d), r_b is (rows_b)
///     r_b = X_b w − y_b              // cblas_?gemv, reads X_b from memory
///     loss += ½|r_b|²  (or the logistic loss, link applied to r_b here)
///     g  += X_bᵀ r_b                 // cblas_?gemv, reads X_b again — from cache
/// ```
///
/// On a CPU with AVX2 and FMA the gradient may instead take the hand-written kernel (`KernelPath.avx2`,
/// the default for Float); the cblas path above stays, and is the default for Double.
///
/// The naive loop (`naiveGradientSum`) and the plain two-pass version (`twoPassGradientSum`) stay
/// beside it as references for the tests and the benchmarks.
///
/// A kernel owns its workspace (one residual block), allocated once; it is not thread-safe — each
/// node owns its own kernel.
public final class GradientKernel<Scalar: BLASScalar>: @unchecked Sendable {
    public let x: MatrixRows<Scalar>
    public let link: Link
    /// The targets, copied once into the kernel's own buffer (n entries; small beside X).
    let targets: UnsafeMutablePointer<Scalar>
    /// Rows per cache block.
    public let blockRows: Int
    /// The path `gradientSum` takes: the one asked for, or `blas` when this CPU lacks AVX2+FMA.
    public let path: KernelPath
    private let residual: UnsafeMutablePointer<Scalar>
    /// The mini-batch kernel of `gradientSum(ofRows:w:into:)` and its rows, made at its first call.
    var batch: GradientKernel<Scalar>?
    var batchStorage: AlignedStorage<Scalar>?

    /// Default bytes of X per block: a quarter of a typical 1 MiB L2, leaving room for w and g.
    public static var defaultBlockBytes: Int { 128 * 1024 }

    /// - Parameters:
    ///   - x: the shard's rows, (n, d) row-major.
    ///   - y: the shard's targets, n entries.
    ///   - link: identity (least squares) or logistic.
    ///   - blockBytes: bytes of X per block (cblas path); the block has at least one row.
    ///   - path: the gradient's implementation; nil (the default) takes `KernelPath.preferred(for:)`.
    ///     `avx2` on a CPU without AVX2+FMA runs `blas`.
    public init(x: MatrixRows<Scalar>, y: ArraySlice<Scalar>, link: Link = .identity,
                blockBytes: Int = GradientKernel.defaultBlockBytes, path: KernelPath? = nil) {
        let path = path ?? KernelPath.preferred(for: Scalar.self)
        precondition(x.rows == y.count, "X has \(x.rows) rows but y has \(y.count) entries")
        self.x = x
        self.link = link
        self.path = path == .avx2 && KernelPath.avx2Available ? .avx2 : .blas
        let t = UnsafeMutablePointer<Scalar>.allocate(capacity: max(1, y.count))
        y.withUnsafeBufferPointer { if let b = $0.baseAddress { t.update(from: b, count: y.count) } }
        targets = t
        let rowBytes = max(1, x.columns * Scalar.byteWidth)
        blockRows = max(1, min(max(x.rows, 1), blockBytes / rowBytes))
        residual = .allocate(capacity: blockRows)
        residual.initialize(repeating: 0, count: blockRows)
    }

    deinit {
        residual.deallocate()
        targets.deallocate()
    }

    /// The shard's targets (a copy).
    public var y: [Scalar] { Array(UnsafeBufferPointer(start: targets, count: x.rows)) }

    public var rows: Int { x.rows }
    public var features: Int { x.columns }

    /// g ← Σ over the shard of xᵢ·(link(xᵢᵀw) − yᵢ); returns the loss sum and the row count.
    ///
    /// - Parameters:
    ///   - w: the model, `features` entries.
    ///   - g: receives the gradient sum, `features` entries (overwritten, not accumulated).
    @discardableResult
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func gradientSum(w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> ShardEvaluation {
        let d = x.columns
        g.update(repeating: 0, count: d)
        guard d > 0 else { return ShardEvaluation(lossSum: 0, rows: x.rows) }
        if path == .avx2, let loss = avx2GradientSum(w: w, into: g) {
            return ShardEvaluation(lossSum: loss, rows: x.rows)
        }
        var loss = 0.0
        let n = x.rows
        var start = 0
        let yBase = UnsafePointer(targets)
        do {
            while start < n {
                let m = min(blockRows, n - start)
                let xb = x.base + start * d
                // r_b = X_b w − y_b: start from y_b, then gemv with β = −1.
                residual.update(from: yBase + start, count: m)
                Scalar.gemv(transpose: false, rows: m, cols: d, alpha: 1, a: xb, lda: d,
                            x: w, beta: -1, y: residual)
                switch link {
                case .identity:
                    loss += 0.5 * Double(Scalar.dot(count: m, residual, residual))
                case .logistic:
                    // residual holds z − y; recover z, then r = σ(z) − y.
                    for i in 0..<m {
                        let yi = yBase[start + i]
                        let z = Double(residual[i] + yi)
                        loss += logistic1pExp(z) - Double(yi) * z
                        residual[i] = Scalar(sigmoid(z)) - yi
                    }
                }
                // g += X_bᵀ r_b, with X_b still in cache.
                Scalar.gemv(transpose: true, rows: m, cols: d, alpha: 1, a: xb, lda: d,
                            x: residual, beta: 1, y: g)
                start += m
            }
        }
        return ShardEvaluation(lossSum: loss, rows: n)
    }

    /// The `avx2` path: one call into `CShardwiseKernels`. nil when it did not run (no AVX2+FMA, or
    /// a scalar type other than Float and Double).
    @inline(__always)
    private func avx2GradientSum(w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> Double? {
        let n = x.rows, d = x.columns
        let code: Int32 = link == .logistic ? Int32(SHARDWISE_LINK_LOGISTIC) : Int32(SHARDWISE_LINK_IDENTITY)
        var loss = 0.0
        let done: Int32
        if Scalar.self == Double.self {
            done = UnsafeRawPointer(x.base).withMemoryRebound(to: Double.self, capacity: n * d) { xp in
                UnsafeRawPointer(targets).withMemoryRebound(to: Double.self, capacity: n) { yp in
                    UnsafeRawPointer(w).withMemoryRebound(to: Double.self, capacity: d) { wp in
                        UnsafeMutableRawPointer(g).withMemoryRebound(to: Double.self, capacity: d) { gp in
                            shardwise_gradient_sum_f64(xp, yp, wp, gp, n, d, code, &loss)
                        }
                    }
                }
            }
        } else if Scalar.self == Float.self {
            done = UnsafeRawPointer(x.base).withMemoryRebound(to: Float.self, capacity: n * d) { xp in
                UnsafeRawPointer(targets).withMemoryRebound(to: Float.self, capacity: n) { yp in
                    UnsafeRawPointer(w).withMemoryRebound(to: Float.self, capacity: d) { wp in
                        UnsafeMutableRawPointer(g).withMemoryRebound(to: Float.self, capacity: d) { gp in
                            shardwise_gradient_sum_f32(xp, yp, wp, gp, n, d, code, &loss)
                        }
                    }
                }
            }
        } else {
            return nil
        }
        return done != 0 ? loss : nil
    }

    /// Array convenience for `gradientSum(w:into:)`.
    public func gradientSum(w: [Scalar], into g: inout [Scalar]) -> ShardEvaluation {
        precondition(w.count == features && g.count == features, "w and g need \(features) entries")
        return w.withUnsafeBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in gradientSum(w: wp.baseAddress!, into: gp.baseAddress!) }
        }
    }

    /// Loss sum only (one gemv pass, no gradient).
    public func lossSum(w: UnsafePointer<Scalar>) -> Double {
        let d = x.columns
        guard d > 0 else { return 0 }
        var loss = 0.0
        var start = 0
        let yBase = UnsafePointer(targets)
        do {
            while start < x.rows {
                let m = min(blockRows, x.rows - start)
                residual.update(from: yBase + start, count: m)
                Scalar.gemv(transpose: false, rows: m, cols: d, alpha: 1, a: x.base + start * d, lda: d,
                            x: w, beta: -1, y: residual)
                switch link {
                case .identity: loss += 0.5 * Double(Scalar.dot(count: m, residual, residual))
                case .logistic:
                    for i in 0..<m {
                        let yi = yBase[start + i]
                        let z = Double(residual[i] + yi)
                        loss += logistic1pExp(z) - Double(yi) * z
                    }
                }
                start += m
            }
        }
        return loss
    }
}

// MARK: - References

/// Reference: the plain two-pass version, r = Xw − y over the whole shard, then g = Xᵀr.
/// Reads X from memory twice. `r` must have `x.rows` entries.
public func twoPassGradientSum<Scalar: BLASScalar>(
    x: MatrixRows<Scalar>, y: ArraySlice<Scalar>, link: Link = .identity,
    w: UnsafePointer<Scalar>, g: UnsafeMutablePointer<Scalar>, r: UnsafeMutablePointer<Scalar>
) -> ShardEvaluation {
    let n = x.rows, d = x.columns
    g.update(repeating: 0, count: d)
    guard n > 0, d > 0 else { return ShardEvaluation(lossSum: 0, rows: n) }
    y.withUnsafeBufferPointer { r.update(from: $0.baseAddress!, count: n) }
    Scalar.gemv(transpose: false, rows: n, cols: d, alpha: 1, a: x.base, lda: d, x: w, beta: -1, y: r)
    var loss = 0.0
    switch link {
    case .identity:
        loss = 0.5 * Double(Scalar.dot(count: n, r, r))
    case .logistic:
        for i in 0..<n {
            let yi = y[y.startIndex + i]
            let z = Double(r[i] + yi)
            loss += logistic1pExp(z) - Double(yi) * z
            r[i] = Scalar(sigmoid(z)) - yi
        }
    }
    Scalar.gemv(transpose: true, rows: n, cols: d, alpha: 1, a: x.base, lda: d, x: r, beta: 0, y: g)
    return ShardEvaluation(lossSum: loss, rows: n)
}

/// Reference: the naive loop, accumulated in Double. Slow; for tests only.
public func naiveGradientSum<Scalar: BLASScalar>(
    x: MatrixRows<Scalar>, y: ArraySlice<Scalar>, link: Link = .identity, w: [Scalar]
) -> (gradient: [Double], lossSum: Double) {
    let n = x.rows, d = x.columns
    var g = [Double](repeating: 0, count: d)
    var loss = 0.0
    for i in 0..<n {
        var z = 0.0
        for j in 0..<d { z += Double(x[i, j]) * Double(w[j]) }
        let r = link.residual(z, Double(y[y.startIndex + i]), loss: &loss)
        for j in 0..<d { g[j] += Double(x[i, j]) * r }
    }
    return (g, loss)
}

// MARK: - Scalar helpers

extension Link {
    /// link(z) − y for one row, adding its loss (½r², or log(1 + eᶻ) − y·z) to `loss`: the rule
    /// the naive references state plainly (the C kernels' `shardwise_residual`).
    func residual(_ z: Double, _ y: Double, loss: inout Double) -> Double {
        switch self {
        case .identity:
            let r = z - y
            loss += 0.5 * r * r
            return r
        case .logistic:
            loss += logistic1pExp(z) - y * z
            return sigmoid(z) - y
        }
    }
}

/// σ(z) = 1 / (1 + e^−z), without overflow for large |z|.
@inlinable
func sigmoid(_ z: Double) -> Double {
    if z >= 0 { return 1 / (1 + exp(-z)) }
    let e = exp(z)
    return e / (1 + e)
}

/// log(1 + e^z), without overflow for large z.
@inlinable
func logistic1pExp(_ z: Double) -> Double {
    z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))
}

import CShardwiseKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension GradientKernel {
    /// out ← X_kᵀ X_k v over the shard (the Gram product the step size's Lanczos needs): the
    /// unweighted case of `weightedGramProduct`. `out` is overwritten.
    public func gramProduct(_ v: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        weightedGramProduct(v, weights: nil, into: out)
    }
}

extension GradientKernel {
    /// D_i = σ′(x_iᵀw) = σ(1 − σ) for every row (the logistic Hessian's row weights), into
    /// `weights` (`rows` entries). One pass over X.
    public func curvatureWeights(w: UnsafePointer<Scalar>, into weights: UnsafeMutablePointer<Scalar>) {
        let d = x.columns, n = x.rows
        guard d > 0 else { weights.update(repeating: 0.25, count: n); return }
        var start = 0
        while start < n {
            let m = min(blockRows, n - start)
            // z_b = X_b w, straight into the weights' block.
            Scalar.gemv(transpose: false, rows: m, cols: d, alpha: 1, a: x.base + start * d, lda: d,
                        x: w, beta: 0, y: weights + start)
            for i in start..<(start + m) {
                let p = sigmoid(Double(weights[i]))
                weights[i] = Scalar(p * (1 - p))
            }
            start += m
        }
    }

    /// out ← X_kᵀ diag(weights) X_k v over the shard (`weights` nil: X_kᵀX_k v), streamed once by
    /// the gradient's blocking: the Hessian-vector product of a solver round (the Gauss-Newton
    /// product for logistic regression, with weights σ′(Xw)). `out` is overwritten.
    public func weightedGramProduct(_ v: UnsafePointer<Scalar>, weights: UnsafePointer<Scalar>?,
                                    into out: UnsafeMutablePointer<Scalar>) {
        let d = x.columns
        out.update(repeating: 0, count: d)
        var start = 0
        while start < x.rows {
            let m = min(blockRows, x.rows - start)
            let xb = x.base + start * d
            // X is (m, d) row-major: t_b = X_b v, t_b ∘= D_b (when weighted), out += X_bᵀ t_b.
            Scalar.gemv(transpose: false, rows: m, cols: d, alpha: 1, a: xb, lda: d, x: v, beta: 0, y: residual)
            if let weights { for i in 0..<m { residual[i] *= weights[start + i] } }
            Scalar.gemv(transpose: true, rows: m, cols: d, alpha: 1, a: xb, lda: d, x: residual, beta: 1, y: out)
            start += m
        }
    }
}
