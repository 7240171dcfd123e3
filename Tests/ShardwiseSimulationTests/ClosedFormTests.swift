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
        // (The last trace point is the final model, recorded right after iteration 5's step.)
        for k in 0..<(times.count - 2) {
            let t = times[k + 1] - times[k]
            #expect(isClose(t, expected, relative: 1e-3), "m=\(m) iteration \(k): \(t) vs \(expected)")
        }
        // The first iteration's trace point comes after exactly one iteration's time too.
        #expect(isClose(times[0], expected, relative: 1e-3))
        if m == 2 {
            // compute + broadcast + gather, literally.
            #expect(isClose(expected, compute + c + c, relative: 1e-12))
        }
    }
}
