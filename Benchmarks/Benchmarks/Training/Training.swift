import Benchmark
import BenchSupport
import Shardwise

// Issue 3's benchmarks on the threads backend:
// - one MapReduce iteration, 2 nodes, X = 2e5×500 Double, against the 2-thread read probe;
// - coordination overhead: n = 1000, d = 10, 2 nodes, time per iteration beyond the kernel's;
// - codec throughput, encode + decode of a 1e6-entry Double vector.
// Per-iteration times are (t(K iterations) − t(1 iteration)) / (K − 1), from the report's training
// seconds, so data generation, sharding and thread start-up are not in them.

enum Metrics {
    static let perIteration = BenchmarkMetric.custom("per iteration (µs)", useScalingFactor: false)
    static let bandwidth = BenchmarkMetric.custom("X read (MB/s)", polarity: .prefersLarger, useScalingFactor: false)
    static let ofProbe = BenchmarkMetric.custom("of 2-thread probe (%)", polarity: .prefersLarger, useScalingFactor: false)
    static let overhead = BenchmarkMetric.custom("beyond the kernel (ns)", useScalingFactor: false)
    static let codec = BenchmarkMetric.custom("encode+decode (MB/s)", polarity: .prefersLarger, useScalingFactor: false)
}

let benchmarks: @Sendable () -> Void = {
    let count: [BenchmarkMetric: BenchmarkUnits] = [
        Metrics.perIteration: .count, Metrics.bandwidth: .count, Metrics.ofProbe: .count,
        Metrics.overhead: .count, Metrics.codec: .count,
    ]

    nonisolated(unsafe) var mapReduce: MapReduceFixture?
    Benchmark(
        "MapReduce iteration, 2 nodes, float64 200000x500",
        configuration: .init(metrics: [.wallClock, Metrics.perIteration, Metrics.bandwidth, Metrics.ofProbe],
                             timeUnits: .milliseconds, units: count, warmupIterations: 1,
                             maxDuration: .seconds(20), maxIterations: 5)
    ) { benchmark in
        let fixture = mapReduce!
        let probe = fixture.ceilingSeconds()
        let sample = try await fixture.sample()
        let t = sample.secondsPerIteration
        benchmark.measurement(Metrics.perIteration, Int(t * 1e6))
        benchmark.measurement(Metrics.bandwidth, Int(Double(fixture.bytes) / t / 1e6))
        benchmark.measurement(Metrics.ofProbe, Int((100 * probe / t).rounded()))
    } setup: {
        mapReduce = try MapReduceFixture(rows: 200_000, columns: 500, iterations: 11)
    } teardown: {
        mapReduce = nil
    }

    nonisolated(unsafe) var small: MapReduceFixture?
    nonisolated(unsafe) var kernelSeconds = 0.0
    Benchmark(
        "Coordination overhead, 2 nodes, float64 1000x10",
        configuration: .init(metrics: [.wallClock, Metrics.perIteration, Metrics.overhead],
                             timeUnits: .milliseconds, units: count, warmupIterations: 1,
                             maxDuration: .seconds(10), maxIterations: 9)
    ) { benchmark in
        let sample = try await small!.sample()
        let t = sample.secondsPerIteration
        benchmark.measurement(Metrics.perIteration, Int(t * 1e6))
        benchmark.measurement(Metrics.overhead, Int((t - kernelSeconds) * 1e9))
    } setup: {
        small = try MapReduceFixture(rows: 1000, columns: 10, iterations: 2001)
        kernelSeconds = small!.shardKernelSeconds(repeats: 21)
    } teardown: {
        small = nil
    }

    for spec in CodecFixture.all {
        nonisolated(unsafe) var codec: CodecFixture?
        Benchmark(
            "Codec \(spec) encode+decode, 1e6 entries",
            configuration: .init(metrics: [.wallClock, Metrics.codec], timeUnits: .microseconds, units: count,
                                 warmupIterations: 2, maxDuration: .seconds(1), maxIterations: 50)
        ) { benchmark in
            let fixture = codec!
            let (e, d) = try fixture.roundTrip()
            benchmark.measurement(Metrics.codec, Int(Double(fixture.bytes) / (e + d) / 1e6))
        } setup: {
            codec = CodecFixture(spec: spec)
        } teardown: {
            codec = nil
        }
    }
}
