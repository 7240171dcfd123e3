/// Errors from the dense linear algebra layer.
public enum LinalgError: Error, CustomStringConvertible, Equatable {
    /// A LAPACK routine returned `info ≠ 0`.
    case lapack(routine: String, info: Int)
    /// Operand shapes do not agree.
    case shapeMismatch(String)
    /// The iterative reference (Newton for logistic regression) did not converge.
    case notConverged(String)

    public var description: String {
        switch self {
        case .lapack(let routine, let info) where info < 0:
            return "LAPACK \(routine) rejected its argument \(-info) (info = \(info)); this is a bug in Shardwise"
        case .lapack(let routine, let info) where routine.hasSuffix("gels"):
            return "LAPACK \(routine) failed: the matrix does not have full column rank (diagonal element \(info) of R is zero to working precision); use the SVD solver (gelsd) for rank-deficient data"
        case .lapack(let routine, let info):
            return "LAPACK \(routine) failed: the SVD did not converge (\(info) off-diagonal elements did not reach zero)"
        case .shapeMismatch(let what):
            return "shape mismatch: \(what)"
        case .notConverged(let what):
            return what
        }
    }
}

/// The exact least-squares solution, the yardstick every iterative run is measured against.
public struct LeastSquaresSolution<Scalar: BLASScalar>: Sendable {
    public enum Method: String, Codable, Sendable, CaseIterable {
        /// QR factorisation (`?gels`); requires full column rank.
        case qr
        /// SVD with rank determination (`?gelsd`); handles rank-deficient X (minimum-norm w*).
        case svd
    }

    /// The minimiser w* (d entries).
    public var w: [Scalar]
    /// |Xw* − y|₂ (of the unregularised problem).
    public var residualNorm: Double
    /// Effective rank of X (d for QR, LAPACK's estimate for SVD).
    public var rank: Int
    public var method: Method
}

/// Exact solutions by LAPACK.
public enum LeastSquares {
    /// Solves min_w 1/(2n)|Xw − y|² + λ/2·|w|².
    ///
    /// With λ > 0 the problem is solved as the augmented least-squares system
    /// `[X; √(nλ)·I] w ≈ [y; 0]`, whose normal equations are (XᵀX + nλI)w = Xᵀy.
    ///
    /// - Parameters:
    ///   - method: `.qr` (fast, full rank) or `.svd` (rank-deficient safe). `nil` tries QR and falls
    ///     back to SVD when QR reports rank deficiency or n < d.
    /// - Throws: `LinalgError.lapack` naming the routine when LAPACK fails.
    public static func solve<Scalar: BLASScalar>(
        x: MatrixRows<Scalar>, y: ArraySlice<Scalar>, ridge lambda: Double = 0,
        method: LeastSquaresSolution<Scalar>.Method? = nil
    ) throws -> LeastSquaresSolution<Scalar> {
        let n = x.rows, d = x.columns
        guard y.count == n else { throw LinalgError.shapeMismatch("X has \(n) rows but y has \(y.count) entries") }
        guard d > 0 else { return LeastSquaresSolution(w: [], residualNorm: norm(y), rank: 0, method: method ?? .qr) }
        try checkWorkspace(rows: n, columns: d, ridge: lambda, as: Scalar.self, what: "least squares")
        let extra = lambda > 0 ? d : 0
        let m = n + extra
        // Working copies: LAPACK overwrites A and B.
        func buildSystem() -> ([Scalar], [Scalar]) {
            var a = [Scalar](repeating: 0, count: m * d)
            var b = [Scalar](repeating: 0, count: max(m, d))
            a.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: x.base, count: n * d) }
            if extra > 0 {
                let s = Scalar((Double(n) * lambda).squareRoot())
                for j in 0..<d { a[(n + j) * d + j] = s }
            }
            for i in 0..<n { b[i] = y[y.startIndex + i] }
            return (a, b)
        }
        var chosen = method ?? (m >= d ? .qr : .svd)
        var (a, b) = buildSystem()
        var rank = d
        if chosen == .qr {
            let info = a.withUnsafeMutableBufferPointer { ap in
                b.withUnsafeMutableBufferPointer { bp in
                    Scalar.gels(m: m, n: d, nrhs: 1, a: ap.baseAddress!, lda: d, b: bp.baseAddress!, ldb: 1)
                }
            }
            // dgels reports only an exactly zero diagonal of R; a numerically zero one is caught
            // here, by the ratio of the smallest to the largest |R_ii| (R is A's upper triangle).
            var deficient = info > 0 ? info : 0
            if info == 0 && m >= d {
                let diag = (0..<d).map { abs(Double(a[$0 * d + $0])) }
                let largest = diag.max() ?? 0
                let threshold = largest * Double(Scalar.ulpOfOne) * Double(max(m, d)) * 10
                if let j = diag.firstIndex(where: { $0 <= threshold }) { deficient = j + 1 }
            }
            if deficient > 0 && method == nil {
                chosen = .svd
                (a, b) = buildSystem()
            } else if deficient > 0 {
                throw LinalgError.lapack(routine: Scalar.self == Float.self ? "sgels" : "dgels", info: deficient)
            } else if info != 0 {
                throw LinalgError.lapack(routine: Scalar.self == Float.self ? "sgels" : "dgels", info: info)
            }
        }
        if chosen == .svd {
            var s = [Scalar](repeating: 0, count: min(m, d))
            var r = 0
            let info = a.withUnsafeMutableBufferPointer { ap in
                b.withUnsafeMutableBufferPointer { bp in
                    s.withUnsafeMutableBufferPointer { sp in
                        Scalar.gelsd(m: m, n: d, nrhs: 1, a: ap.baseAddress!, lda: d, b: bp.baseAddress!, ldb: 1,
                                     s: sp.baseAddress!, rcond: -1, rank: &r)
                    }
                }
            }
            if info != 0 {
                throw LinalgError.lapack(routine: Scalar.self == Float.self ? "sgelsd" : "dgelsd", info: info)
            }
            rank = r
        }
        let w = Array(b.prefix(d))
        // Residual of the unregularised fit, computed afresh (not read off LAPACK's B).
        var residual = 0.0
        for i in 0..<n {
            var z = 0.0
            for j in 0..<d { z += Double(x[i, j]) * Double(w[j]) }
            let r = z - Double(y[y.startIndex + i])
            residual += r * r
        }
        return LeastSquaresSolution(w: w, residualNorm: residual.squareRoot(), rank: rank, method: chosen)
    }

    private static func norm<Scalar: BLASScalar>(_ v: ArraySlice<Scalar>) -> Double {
        v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }
}
