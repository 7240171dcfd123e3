/// What solvers and strategies need of a shard's X: the fused gradient sum with its loss, the loss
/// alone, Xv, Xᵀu, the (weighted) Gram product and the logistic curvature weights, the row and
/// column counts, and the gradient of a few chosen rows (a mini-batch). Dense row-major
/// (`GradientKernel`) and CSR (`SparseGradientKernel`) both provide it, so nothing above `Linalg/`
/// asks which it has.
///
/// Shapes (n = `rows`, d = `features`): `w`, `v`, `g`, `out` of a product with Xᵀ have d entries;
/// `u`, `weights` and the output of `product` have n. Every output is overwritten, never
/// accumulated. A kernel owns its workspace and is not thread-safe: each node owns its own.
public protocol ShardKernel<Scalar>: AnyObject, Sendable {
    associatedtype Scalar: BLASScalar
    var rows: Int { get }
    var features: Int { get }
    var link: Link { get }
    /// The shard's targets (a copy).
    var y: [Scalar] { get }
    /// Bytes one pass over X reads (n·d·s dense; the nonzeros, their indices and the offsets for CSR).
    var bytes: Int { get }
    /// Elements of X one row costs: d dense, the mean nonzeros per row (rounded up) for CSR.
    var elementsPerRow: Int { get }

    /// g ← Σ over the shard of xᵢ·(link(xᵢᵀw) − yᵢ); returns the loss sum and the row count.
    @discardableResult
    func gradientSum(w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> ShardEvaluation
    /// Σᵢ ℓᵢ(w) over the shard.
    func lossSum(w: UnsafePointer<Scalar>) -> Double
    /// out ← X v.
    func product(_ v: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>)
    /// out ← Xᵀ u.
    func transposedProduct(_ u: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>)
    /// out ← Xᵀ diag(weights) X v (`weights` nil: XᵀX v).
    func weightedGramProduct(_ v: UnsafePointer<Scalar>, weights: UnsafePointer<Scalar>?, into out: UnsafeMutablePointer<Scalar>)
    /// weights ← σ′(Xw), one per row.
    func curvatureWeights(w: UnsafePointer<Scalar>, into weights: UnsafeMutablePointer<Scalar>)
    /// The gradient sum over the chosen rows only (indices into the shard, repeats allowed), into g.
    @discardableResult
    func gradientSum(ofRows chosen: [Int], w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> ShardEvaluation
}

extension ShardKernel {
    /// What a pass over `rows` rows costs, for the communicator's compute accounting (the
    /// simulator charges it per element): rows × `elementsPerRow`.
    public func work(rows: Int) -> ComputeWork { ComputeWork(rows: rows, features: elementsPerRow) }

    /// out ← XᵀX v (the Gram product the step size's Lanczos needs).
    public func gramProduct(_ v: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        weightedGramProduct(v, weights: nil, into: out)
    }

    /// Array convenience for `gradientSum(w:into:)`.
    @discardableResult
    public func gradientSum(w: [Scalar], into g: inout [Scalar]) -> ShardEvaluation {
        precondition(w.count == features && g.count == features, "w and g need \(features) entries")
        return w.withUnsafeBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in gradientSum(w: wp.baseAddress!, into: gp.baseAddress!) }
        }
    }
}

/// The rows of a shard's X: dense row-major or CSR, both views that copy nothing.
public enum DesignRows<Scalar: BLASScalar>: Sendable {
    case dense(MatrixRows<Scalar>)
    case sparse(CSRRows<Scalar>)

    public var rows: Int {
        switch self {
        case .dense(let x): return x.rows
        case .sparse(let x): return x.rowCount
        }
    }

    public var columns: Int {
        switch self {
        case .dense(let x): return x.columns
        case .sparse(let x): return x.columnCount
        }
    }

    public var isSparse: Bool { if case .sparse = self { return true } else { return false } }

    /// Bytes one pass over these rows reads.
    public var bytes: Int {
        switch self {
        case .dense(let x): return x.rows * x.columns * Scalar.byteWidth
        case .sparse(let x): return x.bytes
        }
    }

    /// A kernel over these rows with targets `y`.
    public func makeKernel(y: ArraySlice<Scalar>, link: Link) -> any ShardKernel<Scalar> {
        switch self {
        case .dense(let x): return GradientKernel(x: x, y: y, link: link)
        case .sparse(let x): return SparseGradientKernel(x: x, y: y, link: link)
        }
    }
}

// MARK: - Conformances

extension GradientKernel: ShardKernel {
    public var bytes: Int { x.rows * x.columns * Scalar.byteWidth }
    public var elementsPerRow: Int { x.columns }

    /// out ← X v over the whole shard (one gemv).
    public func product(_ v: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        guard x.rows > 0 else { return }
        guard x.columns > 0 else { out.update(repeating: 0, count: x.rows); return }
        Scalar.gemv(transpose: false, rows: x.rows, cols: x.columns, alpha: 1, a: x.base, lda: x.columns, x: v, beta: 0, y: out)
    }

    /// out ← Xᵀ u over the whole shard (one gemv).
    public func transposedProduct(_ u: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>) {
        out.update(repeating: 0, count: x.columns)
        guard x.rows > 0, x.columns > 0 else { return }
        Scalar.gemv(transpose: true, rows: x.rows, cols: x.columns, alpha: 1, a: x.base, lda: x.columns, x: u, beta: 0, y: out)
    }

    /// The chosen rows are copied into a batch buffer (allocated at the first call, kept for the
    /// next batch of the same size) and the fused kernel runs on it, at BLAS speed.
    public func gradientSum(ofRows chosen: [Int], w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> ShardEvaluation {
        let b = chosen.count, d = x.columns
        if batch == nil || batch!.rows != b {
            let storage = AlignedStorage<Scalar>(count: b * d)
            batch = GradientKernel(x: MatrixRows(storage: storage, firstRow: 0, rows: b, columns: d),
                                   y: [Scalar](repeating: 0, count: b)[...], link: link, path: path)
            batchStorage = storage
        }
        let kernel = batch!, base = batchStorage!.base
        for (i, row) in chosen.enumerated() {
            (base + i * d).update(from: x.base + row * d, count: d)
            kernel.targets[i] = targets[row]
        }
        return kernel.gradientSum(w: w, into: g)
    }
}

extension SparseGradientKernel: ShardKernel {
    public var bytes: Int { x.bytes }
    public var elementsPerRow: Int { x.rowCount > 0 ? (x.nonzeroCount + x.rowCount - 1) / x.rowCount : 0 }

    /// Row by row over the chosen rows: z = Σ v·w[j] in Double, then g[j] += r·v.
    public func gradientSum(ofRows chosen: [Int], w: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) -> ShardEvaluation {
        g.update(repeating: 0, count: x.columnCount)
        var loss = 0.0
        x.withUnsafeArrays { values, indices, offsets in
            for row in chosen {
                let lo = Int(offsets[row]), hi = Int(offsets[row + 1])
                var z = 0.0
                for k in lo..<hi { z += Double(values[k]) * Double(w[Int(indices[k])]) }
                let yi = Double(targets[row])
                let r: Double
                switch link {
                case .identity:
                    r = z - yi
                    loss += 0.5 * r * r
                case .logistic:
                    r = sigmoid(z) - yi
                    loss += logistic1pExp(z) - yi * z
                }
                let rs = Scalar(r)
                for k in lo..<hi { g[Int(indices[k])] += rs * values[k] }
            }
        }
        return ShardEvaluation(lossSum: loss, rows: chosen.count)
    }
}
