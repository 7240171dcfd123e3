import Foundation
import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// The per-iteration cost model T(m) = a + b/m + c·(m − 1) [+ d·log₂ m]: recovered from times with
/// known coefficients, non-negative, and closer than Amdahl's law to a simulated sweep whose
/// communication grows with m.
@Suite struct ScalingModelTests {
    static let counts = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    @Test("known a, b, c (and d) are recovered to 1%", arguments: [
        (2e-4, 0.5, 3e-6, 0.0),
        (0.0, 1.0, 1e-5, 0.0),
        (1e-3, 2.0, 0.0, 0.0),
        (5e-5, 0.2, 1e-6, 4e-5),
    ])
    func recovers(a: Double, b: Double, c: Double, d: Double) throws {
        let times = Self.counts.map { m in a + b / Double(m) + c * Double(m - 1) + d * log2(Double(m)) }
        let fit = try #require(ScalingModelFit.fit(nodes: Self.counts, seconds: times, logTerm: d > 0))
        func close(_ x: Double, _ truth: Double, scale: Double) -> Bool { abs(x - truth) <= 0.01 * max(abs(truth), 1e-9 * scale) }
        #expect(close(fit.serial, a, scale: b), "a: \(fit.serial) vs \(a)")
        #expect(close(fit.parallel, b, scale: b), "b: \(fit.parallel) vs \(b)")
        #expect(close(fit.communicationPerNode, c, scale: b), "c: \(fit.communicationPerNode) vs \(c)")
        #expect(close(fit.communicationPerLevel, d, scale: b), "d: \(fit.communicationPerLevel) vs \(d)")
        #expect(fit.rmsRelativeResidual < 1e-6)
        // m* against a brute-force search over the integers.
        if c > 0 || d > 0 {
            let brute = (1...1_000_000).min { fit.time(nodes: $0) < fit.time(nodes: $1) }!
            #expect(fit.fastestNodes == brute)
        } else {
            #expect(fit.fastestNodes == nil)
        }
        let parts = fit.parts(nodes: 64)
        #expect(abs(parts.serial + parts.parallel + parts.communication - fit.time(nodes: 64)) <= 1e-15 * fit.time(nodes: 64))
    }

    @Test("no coefficient is negative, even on times that a negative one would fit better")
    func nonNegative() throws {
        // Super-linear speedup (a cache effect): b/m alone cannot fall this fast; an unconstrained
        // fit would take a < 0.
        let times = [1.0, 0.4, 0.15, 0.06]
        let fit = try #require(ScalingModelFit.fit(nodes: [1, 2, 4, 8], seconds: times))
        #expect(fit.serial >= 0 && fit.parallel >= 0 && fit.communicationPerNode >= 0 && fit.communicationPerLevel == 0)
        #expect(ScalingModelFit.fit(nodes: [4], seconds: [1]) == nil)
        #expect(ScalingModelFit.fit(nodes: [1, 2], seconds: [1, .nan]) == nil)
    }

    /// A ring all-reduce on a high-latency network: the per-iteration time falls, then rises as
    /// the 2(m−1) latency-bound steps outgrow the computation saved. Amdahl's speedup can only
    /// rise; the cost model follows the bend.
    @Test("on a simulated sweep the cost model fits where Amdahl's law cannot")
    func simulatedSweep() async throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 4096, features: 16, seed: 3)))
        job.strategy.kind = .allReduce
        job.optimizer.solver = .gd
        job.optimizer.learningRate = .fixed(0.01)
        job.computeReference = false
        job.stopping = StoppingRule(maxIterations: 5, tolerance: 0)
        let model = SimulationModel(network: NetworkModel(latency: 50e-6, bandwidth: 1e9),
                                    compute: ComputeModel(secondsPerElement: 1e-7))
        let study = try await ScalingStudy.run(job: job, nodeCounts: [1, 2, 4, 8, 16, 32, 64],
                                               backend: SimulationBackend(model: model))
        let fit = try #require(study.scalingModel)
        let amdahl = try #require(study.amdahl)
        #expect(fit.rmsRelativeResidual < 0.05, "\(fit)")
        #expect(fit.communicationPerNode > 0)
        let measured = study.points.compactMap { p in p.speedup.map { (p.nodes, $0) } }
        func rms(_ f: (Int) -> Double) -> Double {
            (measured.reduce(0.0) { $0 + pow(f($1.0) - $1.1, 2) } / Double(measured.count)).squareRoot()
        }
        #expect(rms { fit.speedup(nodes: $0) } < rms { amdahl.speedup(nodes: $0) } / 5,
                "model \(rms { fit.speedup(nodes: $0) }) vs Amdahl \(rms { amdahl.speedup(nodes: $0) })")
        // The fastest measured node count is where the model says, give or take one power of two.
        let fastest = study.points.min { $0.secondsPerIteration < $1.secondsPerIteration }!.nodes
        let predicted = try #require(fit.fastestNodes)
        #expect(Double(predicted) >= Double(fastest) / 2 && Double(predicted) <= Double(fastest) * 2, "m* \(predicted), measured \(fastest)")
    }
}
