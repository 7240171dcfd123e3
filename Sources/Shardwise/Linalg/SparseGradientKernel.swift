import CShardwiseKernels

/// The hot path on sparse data: the gradient *sum* of one shard, Xᵀ(link(Xw) − y), with X a CSR
/// row view read once, and the other products a solver needs (Xv, Xᵀu, the weighted Gram
/// product, the logistic curvature weights) on the same view.
///
/// One pass over the rows, each row's nonzeros read from memory once:
///
/// ```
/// for each row i:                    // x_i = (values, indices)[offsets[i] ..< offsets[i+1]]
///     z_i = Σ_k v_k · w[j_k]         // gather from w (d entries, in cache)
///     r_i = link(z_i) − y_i          // loss += ½r² or log(1 + eᶻ) − y·z, in Double
///     g[j_k] += r_i · v_k            // scatter into g, the row still in L1
/// ```
///
/// The loops are in C (`CShardwiseKernels/sparse.c`, several accumulators, portable); the naive
/// Swift loops below (`naiveSparseGradientSum` and friends) are the references the tests compare
/// against. Costs are per nonzero, not per column: a d-wide zero row costs one offset.
///
/// A kernel owns a copy of its targets; it is not thread-safe — each node owns its own kernel.
public final class SparseGradientKernel<Scalar: BLASScalar>: @unchecked Sendable {
    public let x: CSRRows<Scalar>
    public let link: Link
    /// The targets, copied once into the kernel's own buffer (rows entries).
    let targets: UnsafeMutablePointer<Scalar>

    /// - Parameters:
    ///   - x: the shard's rows.
    ///   - y: the shard's targets, one per row.
    ///   - link: identity (least squares) or logistic.
    public init(x: CSRRows<Scalar>, y: ArraySlice<Scalar>, link: Link = .identity) {
        precondition(Scalar.self == Double.self || Scalar.self == Float.self, "sparse kernels take Float or Double")
        precondition(x.rowCount == y.count, "X has \(x.rowCount) rows but y has \(y.count) entries")
        self.x = x
        self.link = link
        let t = UnsafeMutablePointer<Scalar>.allocate(capacity: max(1, y.count))
        y.withUnsafeBufferPointer { if let b = $0.baseAddress { t.update(from: b, count: y.count) } }
        targets = t
    }

    deinit { targets.deallocate() }

    /// The shard's targets (a copy).
    public var y: [Scalar] { Array(UnsafeBufferPointer(start: targets, count: x.rowCount)) }
    public var rows: Int { x.rowCount }
    public var features: Int { x.columnCount }

    private var linkCode: Int32 { link == .logistic ? Int32(SHARDWISE_LINK_LOGISTIC) : Int32(SHARDWISE_LINK_IDENTITY) }

    /// g ← Σ over the shard of xᵢ·(link(xᵢᵀw) − yᵢ); returns the loss sum and the row count.
    ///
    /// - Parameters:
    ///   - w: the model, `features` entries.
    ///   - g: receives the gradient sum, `features` entries (overwritten, not accumulated).
    @discardableResult
    public func gradientSum(w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> ShardEvaluation {
        let n = x.rowCount, d = x.columnCount, code = linkCode
        let loss = x.withUnsafeArrays { v, j, o -> Double in
            if Scalar.self == Double.self {
                return shardwise_csr_gradient_sum_f64(v.bound(Double.self), j, o, n, targets.bound(Double.self), w.bound(Double.self),
                                                      g.boundMutable(Double.self), d, code)
            }
            return shardwise_csr_gradient_sum_f32(v.bound(Float.self), j, o, n, targets.bound(Float.self), w.bound(Float.self),
                                                  g.boundMutable(Float.self), d, code)
        }
        return ShardEvaluation(lossSum: loss, rows: n)
    }

    /// Array convenience for `gradientSum(w:into:)`.
    public func gradientSum(w: [Scalar], into g: inout [Scalar]) -> ShardEvaluation {
        precondition(w.count == features && g.count == features, "w and g need \(features) entries")
        return w.withUnsafeBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in gradientSum(w: wp.baseAddress!, into: gp.baseAddress!) }
        }
    }

    /// Loss sum only (one pass, no gradient).
    public func lossSum(w: UnsafePointer<Scalar>) -> Double {
        let n = x.rowCount, code = linkCode
        return x.withUnsafeArrays { v, j, o in
            if Scalar.self == Double.self {
                return shardwise_csr_loss_sum_f64(v.bound(Double.self), j, o, n, targets.bound(Double.self), w.bound(Double.self), code)
            }
            return shardwise_csr_loss_sum_f32(v.bound(Float.self), j, o, n, targets.bound(Float.self), w.bound(Float.self), code)
        }
    }

    /// out ← X v: `v` has `features` entries, `out` `rows` entries.
    public func product(_ v: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        let n = x.rowCount
        x.withUnsafeArrays { val, j, o in
            if Scalar.self == Double.self {
                shardwise_csr_multiply_f64(val.bound(Double.self), j, o, n, v.bound(Double.self), out.boundMutable(Double.self))
            } else {
                shardwise_csr_multiply_f32(val.bound(Float.self), j, o, n, v.bound(Float.self), out.boundMutable(Float.self))
            }
        }
    }

    /// out ← Xᵀ u: `u` has `rows` entries, `out` `features` entries (overwritten).
    public func transposedProduct(_ u: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        let n = x.rowCount, d = x.columnCount
        x.withUnsafeArrays { val, j, o in
            if Scalar.self == Double.self {
                shardwise_csr_multiply_transposed_f64(val.bound(Double.self), j, o, n, u.bound(Double.self), out.boundMutable(Double.self), d)
            } else {
                shardwise_csr_multiply_transposed_f32(val.bound(Float.self), j, o, n, u.bound(Float.self), out.boundMutable(Float.self), d)
            }
        }
    }

    /// out ← X_kᵀ diag(weights) X_k v over the shard (`weights` nil: X_kᵀX_k v), in one pass: the
    /// Hessian-vector product of a solver round (Gauss-Newton for logistic regression, with
    /// weights σ′(Xw) from `curvatureWeights`). `out` (`features` entries) is overwritten.
    public func weightedGramProduct(_ v: UnsafePointer<Scalar>, weights: UnsafePointer<Scalar>?,
                                    into out: UnsafeMutablePointer<Scalar>) {
        let n = x.rowCount, d = x.columnCount
        x.withUnsafeArrays { val, j, o in
            if Scalar.self == Double.self {
                shardwise_csr_weighted_gram_f64(val.bound(Double.self), j, o, n, v.bound(Double.self), weights.map { $0.bound(Double.self) },
                                                out.boundMutable(Double.self), d)
            } else {
                shardwise_csr_weighted_gram_f32(val.bound(Float.self), j, o, n, v.bound(Float.self), weights.map { $0.bound(Float.self) },
                                                out.boundMutable(Float.self), d)
            }
        }
    }

    /// out ← X_kᵀ X_k v over the shard (the Gram product the step size's Lanczos needs).
    public func gramProduct(_ v: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        weightedGramProduct(v, weights: nil, into: out)
    }

    /// D_i = σ′(x_iᵀw) = σ(1 − σ) for every row (the logistic Hessian's row weights), into
    /// `weights` (`rows` entries). One pass over X.
    public func curvatureWeights(w: UnsafePointer<Scalar>, into weights: UnsafeMutablePointer<Scalar>) {
        product(w, into: weights)
        for i in 0..<x.rowCount {
            let p = sigmoid(Double(weights[i]))
            weights[i] = Scalar(p * (1 - p))
        }
    }
}

extension UnsafePointer {
    /// The same address as another element type: only where `Pointee` *is* `T` (a generic
    /// `Scalar` known to be `Double` or `Float`), so the memory is already bound to `T`.
    @inline(__always)
    func bound<T>(_: T.Type) -> UnsafePointer<T> { UnsafeRawPointer(self).assumingMemoryBound(to: T.self) }
}

extension UnsafeMutablePointer {
    @inline(__always)
    func bound<T>(_: T.Type) -> UnsafePointer<T> { UnsafeRawPointer(self).assumingMemoryBound(to: T.self) }
    @inline(__always)
    func boundMutable<T>(_: T.Type) -> UnsafeMutablePointer<T> { UnsafeMutableRawPointer(self).assumingMemoryBound(to: T.self) }
}

// MARK: - References

/// Reference: the naive loop over a CSR view, accumulated in Double. Slow; for tests only.
public func naiveSparseGradientSum<Scalar: BLASScalar>(
    x: CSRRows<Scalar>, y: ArraySlice<Scalar>, link: Link = .identity, w: [Scalar]
) -> (gradient: [Double], lossSum: Double) {
    var g = [Double](repeating: 0, count: x.columnCount)
    var loss = 0.0
    for i in 0..<x.rowCount {
        let (columns, values) = x.row(i)
        var z = 0.0
        for (j, v) in zip(columns, values) { z += Double(v) * Double(w[Int(j)]) }
        let r = link.residual(z, Double(y[y.startIndex + i]), loss: &loss)
        for (j, v) in zip(columns, values) { g[Int(j)] += Double(v) * r }
    }
    return (g, loss)
}

/// Reference: X v by the naive loop, in Double.
public func naiveSparseProduct<Scalar: BLASScalar>(x: CSRRows<Scalar>, _ v: [Scalar]) -> [Double] {
    (0..<x.rowCount).map { i in
        let (columns, values) = x.row(i)
        return zip(columns, values).reduce(0.0) { $0 + Double($1.1) * Double(v[Int($1.0)]) }
    }
}

/// Reference: Xᵀ u by the naive loop, in Double.
public func naiveSparseTransposedProduct<Scalar: BLASScalar>(x: CSRRows<Scalar>, _ u: [Scalar]) -> [Double] {
    var out = [Double](repeating: 0, count: x.columnCount)
    for i in 0..<x.rowCount {
        let (columns, values) = x.row(i)
        for (j, v) in zip(columns, values) { out[Int(j)] += Double(v) * Double(u[i]) }
    }
    return out
}
