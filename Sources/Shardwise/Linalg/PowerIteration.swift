/// Power iteration for the largest eigenvalue of a symmetric positive semi-definite operator — here
/// XᵀX, whose largest eigenvalue divided by n is the smoothness constant L of the least-squares loss.
/// The step size `auto` is 1/L.
///
/// The operator is a closure so that the product can be data-parallel: each node applies its shard's
/// X_kᵀX_k and the sum is all-reduced.
public enum PowerIteration {
    /// Estimates λ_max of the operator `apply` (which maps v to Av, both `dimension` entries).
    ///
    /// Starts from a fixed vector (so every node of an SPMD program starts from the same one), and
    /// stops when the Rayleigh quotient changes by less than `tolerance` (relative) or after
    /// `maxIterations`. The estimate approaches λ_max from below.
    public static func largestEigenvalue(
        dimension: Int, maxIterations: Int = 200, tolerance: Double = 1e-6,
        apply: ([Double]) async throws -> [Double]
    ) async rethrows -> Double {
        guard dimension > 0 else { return 0 }
        // A fixed, non-symmetric start so that it is unlikely to be orthogonal to the top eigenvector.
        var v = (0..<dimension).map { 1.0 + 0.5 * Double(($0 * 7919) % 13) / 13.0 }
        normalize(&v)
        var lambda = 0.0
        for _ in 0..<maxIterations {
            var av = try await apply(v)
            let rayleigh = zip(v, av).reduce(0.0) { $0 + $1.0 * $1.1 }
            let norm = normalize(&av)
            if norm == 0 { return 0 }
            let converged = abs(rayleigh - lambda) <= tolerance * abs(rayleigh)
            lambda = rayleigh
            v = av
            if converged { break }
        }
        return lambda
    }

    /// λ_max(XᵀX) of one shard (or a whole dataset held by one node).
    public static func largestEigenvalue<Scalar: BLASScalar>(
        of kernel: any ShardKernel<Scalar>, maxIterations: Int = 200, tolerance: Double = 1e-6
    ) async -> Double {
        var vs = [Scalar](repeating: 0, count: kernel.features)
        var out = [Scalar](repeating: 0, count: kernel.features)
        return await largestEigenvalue(dimension: kernel.features, maxIterations: maxIterations,
                                       tolerance: tolerance) { v in
            for j in 0..<v.count { vs[j] = Scalar(v[j]) }
            vs.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { kernel.gramProduct(vp.baseAddress!, into: $0.baseAddress!) }
            }
            return out.map(Double.init)
        }
    }

    @discardableResult
    static func normalize(_ v: inout [Double]) -> Double {
        let norm = v.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for i in v.indices { v[i] /= norm } }
        return norm
    }
}
