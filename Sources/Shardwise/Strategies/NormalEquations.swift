/// The `gram` strategy: least squares and ridge in one round, by the normal equations. Because the
/// loss is quadratic, everything the solution depends on is a sum over rows of the sufficient
/// statistics XᵀX (d × d) and Xᵀy (d): every node computes its shard's share, one all-reduce of
/// d² + d numbers adds them, and every node solves
///
///     (XᵀX/n + λI)·w = Xᵀy/n
///
/// by Cholesky — the exact minimiser of 1/(2n)|Xw − y|² + λ/2|w|², whatever the shards.
/// (The distributed normal equations are as old as least squares; in MapReduce form, Chu et al.,
/// 2006, "Map-Reduce for machine learning on multicore", NeurIPS: "summation form".)
///
/// 1. Node k computes G_k = X_kᵀX_k with `dsyrk` (one triangle, mirrored so the message is the
///    whole matrix) and b_k = X_kᵀy_k with `dgemv`, in float64 whatever the storage: float32
///    rows are widened a block at a time (the Gram squares their rounding, see below).
/// 2. One all-reduce of [G_k; b_k] — d² + d numbers per node, float64 on the wire.
/// 3. Every rank factors A = G/n + λI = UᵀU (`dpotrf`) and solves (`dpotrs`) in float64: the
///    all-reduce left the same bits everywhere, so every rank holds the same w.
///
/// The wire is float64 whatever the job's codec, because the normal equations square the
/// condition number: κ(XᵀX) = κ(X)², so a relative error ε in the Gram's entries moves w by up to
/// κ(X)²·ε — float32's 6·10⁻⁸ is already 6·10⁻⁴ at κ(X) = 100, where a gradient method's
/// float32 messages cost only the last digits. `strategy.gram.useJobCodec` sends them under the
/// job's codec instead, to measure exactly that (top-k is refused: a Gram matrix with most
/// entries dropped is not one).
///
/// The price is in d, not n: d² + d numbers per node (a gradient round sends d), n_k·d² flops per
/// node, d³/3 for the factorisation. It wins when d is small beside the rounds a gradient method
/// needs; it is out of reach for large d (the d × d matrix must fit, and LAPACK's 32-bit indices
/// cap d² below 2³¹). Logistic regression has no normal equations (`Job.validate()` refuses it).
/// A Gram matrix that is singular to working precision (λ = 0 and linearly dependent columns, or
/// n < d) fails with `GramError.notPositiveDefinite`, which suggests ridge.
public struct NormalEquations: Strategy {
    public var kind: StrategyKind { .gram }
    public init() {}

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let d = node.features, rows = node.shard.rows
        try Self.checkSize(features: d)
        let began = comm.now
        node.observe(iteration: 0, model: node.startingModel(), gradientNorm: nil, force: true, began: began)

        // 1. My shard's sufficient statistics, [X_kᵀX_k (d × d, row-major); X_kᵀy_k (d)].
        //    The syrk does n_k·d(d+1)/2 multiply-adds where a gradient does 2·n_k·d: charged as
        //    (d+1)/4 gradients (the simulator's cost per element is the memory-bound gradient's,
        //    so this overstates a compute-bound syrk).
        var sums = [Double](repeating: 0, count: d * d + d)
        if rows > 0 {
            await comm.compute(ComputeWork(rows: rows, features: max(d, d * (d + 1) / 4))) {
                Self.sufficientStatistics(node.shard, into: &sums)
            }
        }

        // 2. One all-reduce of the d² + d numbers (float64 unless asked otherwise; see above).
        let codec = node.job.strategy.gram.useJobCodec ? node.codec : CodecSpec.float64.makeCodec()
        node.recorder.startTraining(bytesSent: comm.metrics.snapshot.bytesSent)
        node.recorder.rounds += 1
        try await comm.allReduce(&sums, algorithm: node.job.strategy.allReduce, codec: codec)

        // 3. Cholesky on every rank: A = G/n + λI, b = Xᵀy/n. (d³/3 flops: charged as d rows of d²/12.)
        let w = try await comm.compute(ComputeWork(rows: d, features: max(1, d * d / 12))) {
            try Self.solve(sums, features: d, rows: node.totalRows, lambda: node.objective.lambda)
        }.map { Scalar($0) }
        if node.rank == 0 { node.observe(iteration: 1, model: w, gradientNorm: nil, force: true) }
        return NodeOutcome(rank: node.rank, role: "peer", model: w.map(Double.init), iterations: 1,
                           stopReason: node.rank == 0 ? .completed : nil, learningRate: 0,
                           recorder: node.recorder, rows: rows)
    }

    /// [X_kᵀX_k; X_kᵀy_k] of a shard, in float64, into `sums` (d² + d entries, overwritten).
    static func sufficientStatistics<Scalar: BLASScalar>(_ shard: Shard<Scalar>, into sums: inout [Double]) {
        let rows = shard.rows, d = shard.features
        sums.withUnsafeMutableBufferPointer { p in
            let gram = p.baseAddress!, xty = p.baseAddress! + d * d
            p.update(repeating: 0)
            if let x = shard.x as? MatrixRows<Double>, let y = shard.y as? ArraySlice<Double> {
                // X (rows, d) row-major: G ← XᵀX (upper), b ← Xᵀy.
                Double.syrkTransposed(n: d, k: rows, alpha: 1, a: x.base, lda: d, beta: 0, c: gram, ldc: d)
                y.withUnsafeBufferPointer { Double.gemv(transpose: true, rows: rows, cols: d, alpha: 1, a: x.base, lda: d,
                                                         x: $0.baseAddress!, beta: 0, y: xty) }
            } else {
                // Float rows, widened a block (≤ 128 KiB of float64) at a time: G += X_bᵀX_b, b += X_bᵀy_b.
                let blockRows = max(1, min(rows, (128 << 10) / max(1, 8 * d)))
                var xb = [Double](repeating: 0, count: blockRows * d)
                var yb = [Double](repeating: 0, count: blockRows)
                var start = 0
                while start < rows {
                    let m = min(blockRows, rows - start)
                    let block = shard.x.base + start * d
                    for i in 0..<m {
                        for j in 0..<d { xb[i * d + j] = Double(block[i * d + j]) }
                        yb[i] = Double(shard.y[shard.y.startIndex + start + i])
                    }
                    xb.withUnsafeBufferPointer { xp in
                        yb.withUnsafeBufferPointer { yp in
                            Double.syrkTransposed(n: d, k: m, alpha: 1, a: xp.baseAddress!, lda: d, beta: 1, c: gram, ldc: d)
                            Double.gemv(transpose: true, rows: m, cols: d, alpha: 1, a: xp.baseAddress!, lda: d,
                                        x: yp.baseAddress!, beta: 1, y: xty)
                        }
                    }
                    start += m
                }
            }
            for i in 0..<d { for j in 0..<i { gram[i * d + j] = gram[j * d + i] } }   // upper → lower: the whole matrix
        }
    }

    /// Solves (G/n + λI)·w = b/n from `sums` = [G (d × d, row-major); b (d)] by Cholesky.
    /// - Throws: `GramError.notPositiveDefinite` when the matrix is singular to working precision.
    static func solve(_ sums: [Double], features d: Int, rows n: Int, lambda: Double) throws -> [Double] {
        precondition(sums.count == d * d + d, "the normal equations of \(d) features have \(d * d + d) numbers")
        guard d > 0 else { return [] }
        let scale = 1 / Double(max(n, 1))
        var a = (0..<(d * d)).map { sums[$0] * scale }
        for j in 0..<d { a[j * d + j] += lambda }
        var b = (0..<d).map { sums[d * d + $0] * scale }
        let info = a.withUnsafeMutableBufferPointer { Double.potrf(n: d, a: $0.baseAddress!, lda: d) }
        if info < 0 { throw LinalgError.lapack(routine: "dpotrf", info: info) }
        if info > 0 { throw GramError.notPositiveDefinite(column: info, lambda: lambda) }
        // potrf succeeds on a matrix that is singular only to rounding, with a tiny pivot: U_jj² is
        // then at rounding level beside the largest, and κ(A) ≥ (max U_jj / min U_jj)² ≳ 1/ε.
        let pivots = (0..<d).map { a[$0 * d + $0] }
        let largest = pivots.max()!
        if let j = pivots.firstIndex(where: { $0 <= largest * (Double(d) * .ulpOfOne).squareRoot() }) {
            throw GramError.notPositiveDefinite(column: j + 1, lambda: lambda)
        }
        let solved = a.withUnsafeBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { Double.potrs(n: d, nrhs: 1, a: ap.baseAddress!, lda: d, b: $0.baseAddress!, ldb: 1) }
        }
        if solved != 0 { throw LinalgError.lapack(routine: "dpotrs", info: solved) }
        return b
    }

    /// The d × d matrix must fit LAPACK's 32-bit indices and this machine's memory (a few copies:
    /// the node's, the float64 sums, the factor).
    static func checkSize(features d: Int) throws {
        let (cells, overflow) = d.multipliedReportingOverflow(by: d)
        guard !overflow, cells + d <= Int(Int32.max) else { throw GramError.tooManyFeatures(d) }
        try MemoryBudget.check(elements: 4 * (cells + d), bytesPerElement: 8,
                               what: "gram: the \(d) × \(d) Gram matrix (XᵀX, with its copies)")
    }
}

/// Why the `gram` strategy could not solve.
public enum GramError: Error, CustomStringConvertible, Equatable {
    /// XᵀX/n + λI is singular to working precision: column `column` (1-based) of X is, to
    /// rounding, a combination of the columns before it (or there are fewer rows than columns).
    case notPositiveDefinite(column: Int, lambda: Double)
    /// d² + d does not fit LAPACK's 32-bit indices.
    case tooManyFeatures(Int)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let column, let lambda) where lambda == 0:
            return "gram: the Gram matrix XᵀX/n is singular to working precision (column \(column) of X depends on the columns before it, "
                + "or there are fewer rows than columns): least squares has no unique solution — use ridge, "
                + "--objective ridge --lambda λ (λ > 0, e.g. 1e-6), or a gradient strategy"
        case .notPositiveDefinite(let column, let lambda):
            return "gram: XᵀX/n + λI with λ = \(lambda) is not positive definite to working precision (at column \(column)): "
                + "λ is too small beside the scale of XᵀX/n — use a larger --lambda"
        case .tooManyFeatures(let d):
            return "gram: \(d) features make a \(d) × \(d) Gram matrix, beyond LAPACK's 32-bit indices; use a gradient strategy"
        }
    }
}

/// The `gram` strategy's options (`strategy.gram` in a job file).
public struct GramOptions: ComponentOptions {
    public init() {}
    /// Send XᵀX and Xᵀy under the job's codec instead of float64 (`--gram-use-codec`): an
    /// experiment in what compressing the normal equations costs (see `NormalEquations`).
    public var useJobCodec: Bool = false

    public init(useJobCodec: Bool = false) { self.useJobCodec = useJobCodec }

    /// Nothing to check on its own; the codec it may use is checked with the job (`Job.validate()`).
    public func validate() throws {}

    enum CodingKeys: String, CodingKey { case useJobCodec }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(useJobCodec: try c.decodeIfPresent(Bool.self, forKey: .useJobCodec) ?? false)
    }
}
