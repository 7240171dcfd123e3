/// Per-column standardisation: each feature column is centred and scaled to unit deviation, so that
/// gradient descent sees a better-conditioned problem. A constant column (such as an intercept of
/// ones) is left as it is. Coefficients learnt on the standardised data map back to the original
/// scale with `originalCoefficients(_:)`.
public struct Standardization: Codable, Sendable, Equatable {
    public var means: [Double]
    public var deviations: [Double]
    /// Columns left untouched because they are constant (deviation 0).
    public var constantColumns: [Int]
    /// Whether the targets were centred too (only when the data has no intercept column).
    public var targetMean: Double

    /// Computes the statistics of `data` and returns it standardised along with them.
    ///
    /// When X has a constant column, y is left as it is (the constant column absorbs the
    /// intercept). Otherwise y is centred and the intercept comes back in
    /// `originalIntercept(_:)` — unless `centerTarget` is false: labels of a classifier (logistic
    /// regression's 0 and 1) are classes, not a quantity to shift.
    public static func fit<Scalar: BLASScalar>(_ data: Dataset<Scalar>, centerTarget: Bool = true) -> (Standardization, Dataset<Scalar>) {
        let n = data.rows, d = data.features
        var sum = [Double](repeating: 0, count: d)
        var sq = [Double](repeating: 0, count: d)
        data.x.withUnsafeBufferPointer { xs in
            for i in 0..<n { for j in 0..<d { sum[j] += Double(xs[i * d + j]) } }
            let mean = sum.map { $0 / Double(max(n, 1)) }
            for i in 0..<n { for j in 0..<d { let c = Double(xs[i * d + j]) - mean[j]; sq[j] += c * c } }
        }
        let means = sum.map { $0 / Double(max(n, 1)) }
        let devs = sq.map { ($0 / Double(max(n, 1))).squareRoot() }
        let constant = (0..<d).filter { devs[$0] <= 1e-12 * max(1, abs(means[$0])) }
        let targetMean = constant.isEmpty && centerTarget ? data.y.reduce(0.0) { $0 + Double($1) } / Double(max(n, 1)) : 0
        let s = Standardization(means: means, deviations: devs, constantColumns: constant, targetMean: targetMean)
        return (s, s.apply(to: data))
    }

    /// Applies these statistics to other data (e.g. a test set).
    public func apply<Scalar: BLASScalar>(to data: Dataset<Scalar>) -> Dataset<Scalar> {
        var out = data
        let d = data.features
        let isConstant = Set(constantColumns)
        out.x.withUnsafeMutableBufferPointer { xs in
            for i in 0..<data.rows {
                for j in 0..<d where !isConstant.contains(j) {
                    xs[i * d + j] = Scalar((Double(xs[i * d + j]) - means[j]) / deviations[j])
                }
            }
        }
        if targetMean != 0 { out.y = data.y.map { Scalar(Double($0) - targetMean) } }
        return out
    }

    /// Coefficients on the original scale: wⱼ / σⱼ for scaled columns; the constant column (the
    /// intercept) absorbs −Σ wⱼ μⱼ / σⱼ.
    public func originalCoefficients(_ w: [Double]) -> [Double] {
        let isConstant = Set(constantColumns)
        var out = w
        var shift = 0.0
        for j in w.indices where !isConstant.contains(j) {
            out[j] = w[j] / deviations[j]
            shift += out[j] * means[j]
        }
        if let c = constantColumns.first, means[c] != 0 {
            out[c] = w[c] - shift / means[c]
        }
        return out
    }

    /// The intercept on the original scale when the data had no constant column:
    /// ȳ − Σ wⱼ μⱼ / σⱼ.
    public func originalIntercept(_ w: [Double]) -> Double {
        guard constantColumns.isEmpty else { return 0 }
        var shift = 0.0
        for j in w.indices { shift += w[j] / deviations[j] * means[j] }
        return targetMean - shift
    }
}
