import Shardwise

/// Shared helpers for the test targets: seeded data, approximate comparison, small problems.
public enum TestData {
    /// A seeded random matrix with entries in [-1, 1).
    public static func matrix<Scalar: BLASScalar>(rows: Int, columns: Int, seed: UInt64, as: Scalar.Type = Scalar.self) -> Matrix<Scalar> {
        var rng = SplitMix64(seed: seed)
        return Matrix(rows: rows, columns: columns) { _, _ in Scalar(Double(rng.next() >> 11) * 0x1.0p-52 - 1) }
    }

    /// A seeded random vector with entries in [-1, 1).
    public static func vector<Scalar: BLASScalar>(_ count: Int, seed: UInt64, as: Scalar.Type = Scalar.self) -> [Scalar] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Scalar(Double(rng.next() >> 11) * 0x1.0p-52 - 1) }
    }

    /// The well-conditioned problem the strategy tests use.
    public static func wellConditioned(rows: Int = 20_000, features: Int = 50, seed: UInt64 = 7) -> SyntheticSpec {
        SyntheticSpec(rows: rows, features: features, noise: 0.1, condition: 3, seed: seed)
    }
}

/// max_i |a_i − b_i| / max(|b|_∞, tiny): a relative error that is meaningful for vectors.
public func relativeError<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(_ a: [A], _ b: [B]) -> Double {
    precondition(a.count == b.count, "lengths differ: \(a.count) vs \(b.count)")
    var worst = 0.0, scale = 0.0
    for i in a.indices {
        worst = max(worst, abs(Double(a[i]) - Double(b[i])))
        scale = max(scale, abs(Double(b[i])))
    }
    return worst / max(scale, .leastNormalMagnitude)
}

/// Whether |a − b| ≤ tolerance · max(|a|, |b|, 1e-300).
public func isClose(_ a: Double, _ b: Double, relative tolerance: Double) -> Bool {
    abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-300)
}
