import Benchmark
import BenchSupport
import Shardwise

// The gradient kernels against the read ceiling (the faster of the typed and the byte probe), one OpenBLAS thread, X of 2e5×500 and
// 1e6×100 in Double and Float. Every iteration of a kernel's benchmark first runs the probe on
// the same X (outside the measurement), so "of read probe" compares two passes milliseconds apart;
// both in on-CPU time of the thread (see `cpuSeconds`), as the machine may be shared.
// `BenchSummary` prints the same comparison as one table.

enum Metrics {
    static let bandwidth = BenchmarkMetric.custom("X read (MB/s)", polarity: .prefersLarger, useScalingFactor: false)
    static let ofProbe = BenchmarkMetric.custom("of read ceiling (%)", polarity: .prefersLarger, useScalingFactor: false)
}

let benchmarks: @Sendable () -> Void = {
    BLASThreading.set(threads: 1)
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, Metrics.bandwidth, Metrics.ofProbe],
        timeUnits: .milliseconds,
        units: [Metrics.bandwidth: .count, Metrics.ofProbe: .count],
        warmupIterations: 1,
        maxDuration: .seconds(3),
        maxIterations: 12
    )

    func register<S: BLASScalar>(_: S.Type, rows: Int, columns: Int) {
        let label = "\(S.precisionName) \(rows)x\(columns)"
        for kernel in KernelName.allCases {
            Benchmark("\(label) \(kernel.rawValue)", configuration: configuration) { benchmark in
                let fixture = FixtureCache.kernel(S.self, rows: rows, columns: columns)
                let probe = fixture.ceilingSeconds()
                benchmark.startMeasurement()
                // The probe's own benchmark measures a second probe pass: its ratio is the noise floor.
                let t = cpuSeconds { fixture.run(kernel) }
                benchmark.stopMeasurement()
                benchmark.measurement(Metrics.bandwidth, Int(Double(fixture.bytes) / t / 1e6))
                benchmark.measurement(Metrics.ofProbe, Int((100 * probe / t).rounded()))
            }
        }
    }
    for (rows, columns) in kernelShapes {
        register(Double.self, rows: rows, columns: columns)
        register(Float.self, rows: rows, columns: columns)
    }
}
