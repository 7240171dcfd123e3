import Shardwise

/// The kernels the benchmarks compare, all on the same X.
public enum KernelName: String, CaseIterable, Sendable {
    /// The read probe typed like X (SIMD8<Double> or SIMD16<Float> sums).
    case probe = "read probe"
    /// The read probe over X's bytes as 64-bit integers.
    case probeBytes = "read probe (bytes)"
    case fused = "fused gemv"
    case twoPass = "two-pass gemv"
    /// The hand-written AVX2+FMA fused kernel (`KernelPath.avx2`; the cblas path on a CPU without it).
    case avx2 = "fused avx2"
}

/// Shapes of the kernel benchmark.
public let kernelShapes: [(rows: Int, columns: Int)] = [(200_000, 500), (1_000_000, 100)]

/// One fixture alive at a time (each X is 400–800 MB), rebuilt when another is asked for.
public enum FixtureCache {
    nonisolated(unsafe) static var current: (key: String, value: AnyObject)?

    public static func kernel<S: BLASScalar>(_: S.Type, rows: Int, columns: Int) -> KernelFixture<S> {
        let key = "\(S.precisionName) \(rows)×\(columns)"
        if let c = current, c.key == key, let f = c.value as? KernelFixture<S> { return f }
        current = nil
        let f = KernelFixture<S>(rows: rows, columns: columns)
        current = (key, f)
        return f
    }

    public static func clear() { current = nil }
}
