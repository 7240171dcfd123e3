import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// The simulator against the network model's closed forms: α latency, β bandwidth (bytes/s),
/// s bytes per entry, d entries, m nodes. Every collective here is the generic point-to-point
/// algorithm from the core, timed by the simulator.
@Suite struct ClosedFormTests {
    static let alpha = 50e-6
    static let beta = 1.25e9   // 10 Gbit/s
    static func backend(compute: Double = 1e-9) -> SimulationBackend {
        SimulationBackend(model: SimulationModel(network: NetworkModel(latency: alpha, bandwidth: beta),
                                                 compute: ComputeModel(secondsPerElement: compute)))
    }

    /// Ring all-reduce: 2(m−1) steps, each one message of d/m entries per rank.
    @Test(arguments: [2, 3, 4, 8, 16, 64], [1200, 9600])
    func ringAllReduce(m: Int, d: Int) async throws {
        let run = try await Self.backend().simulate(nodes: m) { comm in
            var v = [Double](repeating: Double(comm.rank + 1), count: d)
            try await comm.ringAllReduce(&v, codec: CodecSpec.float64.makeCodec())
            return v
        }
        let expected = 2 * Double(m - 1) * (Self.alpha + Double(d / m) * 8 / Self.beta)
        #expect(d % m == 0 || d / m > 0)
        #expect(isClose(run.seconds, expected, relative: 1e-3), "ring m=\(m) d=\(d): \(run.seconds) vs \(expected)")
        let sum = Double(m * (m + 1) / 2)
        for v in run.results { #expect(v.allSatisfy { $0 == sum }) }
    }

    /// Reduce then broadcast through rank 0: the m−1 other ranks' vectors queue on rank 0's
    /// downlink, then rank 0's uplink sends m−1 copies: (m−1)·(α + d·s/β) each way.
    @Test(arguments: [2, 4, 8, 33], [CodecSpec.float64, .float32])
    func reduceBroadcastThroughServer(m: Int, codec: CodecSpec) async throws {
        let d = 1000
        let run = try await Self.backend().simulate(nodes: m) { comm in
            var v = [Double](repeating: 1, count: d)
            try await comm.reduceBroadcastAllReduce(&v, codec: codec.makeCodec())
            return v[0]
        }
        let s = Double(codec.makeCodec().encodedSize(count: d))
        let oneWay = Double(m - 1) * (Self.alpha + s / Self.beta)
        #expect(isClose(run.seconds, 2 * oneWay, relative: 1e-3), "m=\(m): \(run.seconds) vs \(2 * oneWay)")
        #expect(run.results.allSatisfy { $0 == Double(m) })
        // The server's link was busy the whole time: its time is communication, not waiting.
        #expect(isClose(run.metrics[0].communicationSeconds, 2 * oneWay, relative: 1e-3))
    }
}

/// One synchronous MapReduce iteration under the model, with c = α + d·s/β and C the compute of
/// one shard: the server's uplink sends the model m−1 times ((m−1)·c, worker i has it at i·c),
/// every node computes C, and the gradients come back through the server's downlink. Worker i's
/// gradient is ready at i·c + C and its transfer ends at (i+1)·c + C, after worker i−1's: the
/// gather is pipelined behind the broadcast, so only the last gradient adds to the critical path:
///
///     T = C + (m−1)·c + c        (= compute + broadcast + gather for m = 2)
@Suite struct MapReduceIterationTests {
    @Test(arguments: [2, 4, 8, 16])
    func iterationTime(m: Int) async throws {
        let d = 40, rowsPerNode = 500
        var job = Job(data: .synthetic(SyntheticSpec(rows: rowsPerNode * m, features: d, seed: 3)))
        job.nodes = m
        job.strategy.kind = .mapReduce
        job.optimizer.learningRate = .fixed(0.05)
        job.stopping = StoppingRule(maxIterations: 6, tolerance: 0)
        job.traceEvery = 1
        let spe = 2e-9
        let backend = ClosedFormTests.backend(compute: spe)
        let report = try await backend.run(job)
        let c = ClosedFormTests.alpha + Double(8 * d) / ClosedFormTests.beta
        let compute = Double(rowsPerNode * d) * spe
        let expected = compute + Double(m - 1) * c + c
        let times = report.trace.map(\.time)
        #expect(times.count == 7)
        // A point is stamped when its iteration began, the last one (the final model, after
        // iteration 5's step) included: six iterations, six equal intervals.
        for k in 0..<(times.count - 1) {
            let t = times[k + 1] - times[k]
            #expect(isClose(t, expected, relative: 1e-3), "m=\(m) iteration \(k): \(t) vs \(expected)")
        }
        // The first iteration began at once (a fixed step: no setup rounds).
        #expect(times[0] == 0)
        if m == 2 {
            // compute + broadcast + gather, literally.
            #expect(isClose(expected, compute + c + c, relative: 1e-12))
        }
    }
}

/// The scaling study's per-iteration figures against the same closed forms, at any iteration
/// count: one iteration is C + (the collective's time), C = rows per node · d · cost per element,
/// and the study must report it whether the run had 1 iteration or 100, with setup rounds before
/// the first (`--lr auto` runs a power iteration) or none. (The trace point of iteration k is
/// stamped when the iteration began; stamped after its rounds instead, every point but the final
/// one came an iteration late and the slope missed one iteration in N: 264.6 µs for 294.0 µs at
/// N = 10 below.)
///
/// With m = 8, d = 1000, s = 8, α = 20 µs, β = 1 GB/s and c = α + d·s/β:
/// - ring: 2(m−1)·(α + (d/m)·s/β) = 294.0 µs; native: the same, modelled in closed form;
/// - MapReduce: (m−1)·c + c, the gather pipelined behind the broadcast (see `MapReduceIterationTests`);
/// - reduce + broadcast through rank 0: the first iteration is one isolated all-reduce, 2(m−1)·c
///   (every rank sends at once and queues on rank 0's downlink); from the second on, rank r sends
///   its gradient as soon as it has the model, while rank 0 still broadcasts, so the gather is
///   pipelined as in MapReduce: (m−1)·c + c. Over N iterations the figure is their mean. After
///   setup rounds through the same server (`--lr auto`), the first iteration is pipelined too.
/// One node takes m·C and sends nothing.
///
/// The time split (compute / communication + waiting) is the whole run's, scaled to the
/// iteration: exact when the run is nothing but equal iterations (a fixed step, no teardown), as
/// for the ring and the native all-reduce; with setup rounds or MapReduce's stop messages it only
/// sums to the iteration.
@Suite struct StudyPerIterationTests {
    enum Shape: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case ring, native, reduceBroadcast, mapReduce
        var testDescription: String { rawValue }
    }

    static let m = 8, d = 1000, rowsPerNode = 40
    static let alpha = 20e-6, beta = 1e9

    /// One iteration's closed form at `nodes`, with `spe` seconds per element.
    static func expected(_ shape: Shape, nodes: Int, spe: Double, iterations: Int = 1, setup: Bool = true)
        -> (total: Double, compute: Double)
    {
        let compute = Double(m * rowsPerNode / nodes * d) * spe
        guard nodes > 1 else { return (compute, compute) }
        let bytes = { (count: Int) in Double(CodecSpec.float64.makeCodec().encodedSize(count: count)) }
        let c = alpha + bytes(d) / beta
        let k = Double(nodes - 1)
        let communication: Double
        switch shape {
        case .ring: communication = 2 * k * (alpha + bytes(d / nodes) / beta)
        case .native: communication = 2 * k * (alpha + bytes((d + nodes - 1) / nodes) / beta)
        case .reduceBroadcast:
            let first = setup ? k * c + c : 2 * k * c
            communication = (first + Double(iterations - 1) * (k * c + c)) / Double(iterations)
        case .mapReduce: communication = k * c + c
        }
        return (compute + communication, compute)
    }

    static func job(_ shape: Shape, iterations: Int, auto: Bool) -> Job {
        var job = Job(data: .synthetic(SyntheticSpec(rows: m * rowsPerNode, features: d, seed: 5)))
        job.computeReference = false
        switch shape {
        case .ring: job.strategy.kind = .allReduce; job.strategy.allReduce = .ring
        case .native: job.strategy.kind = .allReduce; job.strategy.allReduce = .native
        case .reduceBroadcast: job.strategy.kind = .allReduce; job.strategy.allReduce = .reduceBroadcast
        case .mapReduce: job.strategy.kind = .mapReduce
        }
        // A step too small to diverge in 100 iterations, or the power iteration's 1/L: gradient
        // descent's iterations, one round each (cg, the default with 'auto', confirms with one more).
        job.optimizer.solver = .gd
        job.optimizer.learningRate = auto ? .auto : .fixed(1e-7)
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: 0)
        return job
    }

    @Test(arguments: Shape.allCases, [1, 2, 10, 100])
    func perIterationMatchesTheClosedForm(shape: Shape, iterations: Int) async throws {
        for (spe, auto) in [(0.0, false), (1e-9, false), (0.0, true), (2e-9, true)] {
            let backend = SimulationBackend(model: SimulationModel(
                network: NetworkModel(latency: Self.alpha, bandwidth: Self.beta),
                compute: ComputeModel(secondsPerElement: spe)))
            let study = try await ScalingStudy.run(job: Self.job(shape, iterations: iterations, auto: auto),
                                                   nodeCounts: [1, Self.m], backend: backend)
            let what = "\(shape) N=\(iterations) cost/element=\(spe) lr \(auto ? "auto" : "fixed")"
            for p in study.points {
                #expect(p.iterations == iterations, "\(what) m=\(p.nodes)")
                let (total, compute) = Self.expected(shape, nodes: p.nodes, spe: spe, iterations: iterations, setup: auto)
                if total == 0 {
                    #expect(p.secondsPerIteration == 0, "\(what) m=\(p.nodes): \(p.secondsPerIteration) per iteration vs 0")
                } else {
                    #expect(isClose(p.secondsPerIteration, total, relative: 1e-3),
                            "\(what) m=\(p.nodes): \(p.secondsPerIteration) per iteration vs \(total)")
                }
                #expect(abs(p.computePerIteration + p.communicationPerIteration + p.waitingPerIteration
                            - p.secondsPerIteration) <= 1e-9 * max(total, 1e-6), "\(what) m=\(p.nodes): the split does not sum")
                // A run of equal iterations only: the split is exact too, compute C, the rest the collective.
                if !auto && total > 0 && (shape == .ring || shape == .native || p.nodes == 1) {
                    #expect(abs(p.computePerIteration - compute) <= 1e-3 * total,
                            "\(what) m=\(p.nodes): compute \(p.computePerIteration) vs \(compute)")
                    #expect(abs(p.communicationPerIteration + p.waitingPerIteration - (total - compute)) <= 1e-3 * total,
                            "\(what) m=\(p.nodes): communication + waiting \(p.communicationPerIteration + p.waitingPerIteration) vs \(total - compute)")
                }
            }
        }
    }
}
