import Shardwise

extension ComputeModel {
    /// Measures this machine's gradient kernel: seconds per matrix element of one fused gradient
    /// (`X_bᵀ(X_b w − y_b)` by row blocks) on a `rows` × `features` shard, with one BLAS thread —
    /// the cost each simulated node is charged per element.
    ///
    /// Runs the kernel for at least `minimumSeconds` (after a warm-up) and takes the median of
    /// several batches, so a busy machine skews it less.
    /// - Throws: `JobError` when the shard would not fit in memory (`MemoryBudget`).
    public static func calibrated(rows: Int, features: Int, precision: Precision = .float64,
                                  minimumSeconds: Double = 0.2) throws -> ComputeModel {
        switch precision {
        case .float64: return ComputeModel(secondsPerElement: try measure(Double.self, rows: rows, features: features, minimumSeconds: minimumSeconds), calibrated: true)
        case .float32: return ComputeModel(secondsPerElement: try measure(Float.self, rows: rows, features: features, minimumSeconds: minimumSeconds), calibrated: true)
        }
    }

    static func measure<Scalar: BLASScalar>(_: Scalar.Type, rows: Int, features: Int, minimumSeconds: Double) throws -> Double {
        try BLASThreading.withOneThread { try measureOnOneThread(Scalar.self, rows: rows, features: features, minimumSeconds: minimumSeconds) }
    }

    private static func measureOnOneThread<Scalar: BLASScalar>(_: Scalar.Type, rows: Int, features: Int, minimumSeconds: Double) throws -> Double {
        let data = try SyntheticSpec(rows: max(rows, 1), features: max(features, 1), seed: 99).generate(Scalar.self)
        let kernel = GradientKernel(x: data.x.view, y: data.y[...])
        var w = [Scalar](repeating: 0.01, count: data.features)
        var g = [Scalar](repeating: 0, count: data.features)
        _ = kernel.gradientSum(w: w, into: &g)   // warm-up
        var batches: [Double] = []
        let start = MonotonicClock.now()
        repeat {
            var calls = 0
            let t0 = MonotonicClock.now()
            repeat {
                _ = kernel.gradientSum(w: w, into: &g)
                w[0] += g[0] * 1e-30   // keep the call observable
                calls += 1
            } while MonotonicClock.now() - t0 < minimumSeconds / 5
            batches.append((MonotonicClock.now() - t0) / Double(calls))
        } while MonotonicClock.now() - start < minimumSeconds || batches.count < 3
        batches.sort()
        return batches[batches.count / 2] / Double(data.rows * data.features)
    }
}
