import Foundation
import Shardwise
import Testing
import _TestSupport
@testable import ShardwiseSimulation

/// Sparse (CSR) shards on the simulated backend: the same kernels under the virtual clock.
@Suite("Sparse data on the simulator")
struct SparseSimulationTests {
    static func job(_ kind: StrategyKind, nodes: Int) -> Job {
        var job = Job(data: .sparseSynthetic(SparseSyntheticSpec(rows: 4000, features: 2000, nonzerosPerRow: 10, zipf: 1, seed: 9)))
        job.objective = .ridge(lambda: 1e-3)
        job.strategy.kind = kind
        job.nodes = nodes
        job.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-12)
        return job
    }

    @Test("synchronous strategies on sparse shards reach the CG reference", arguments: [StrategyKind.mapReduce, .allReduce], [2, 5])
    func reachesReference(kind: StrategyKind, nodes: Int) async throws {
        let report = try await SimulationBackend().run(Self.job(kind, nodes: nodes))
        let d = try #require(report.relativeDistance)
        #expect(d < 1e-8, "\(kind) on \(nodes): \(d)")
        #expect(report.notes.contains { $0.contains("conjugate gradients on the normal equations") })
    }

    @Test("a sparse simulated run is deterministic, bit for bit")
    func deterministic() async throws {
        var job = Self.job(.parameterServer, nodes: 4)
        job.strategy.parameterServer.staleness = nil
        job.stopping.maxIterations = 100
        let a = try await SimulationBackend().run(job), b = try await SimulationBackend().run(job)
        #expect(a.model == b.model && a.seconds == b.seconds)
    }

    @Test("a sparse shard's simulated compute is charged per nonzero, not per column")
    func computeChargedPerNonzero() async throws {
        func perGradient(features: Int) async throws -> Double {
            var job = Job(data: .sparseSynthetic(SparseSyntheticSpec(rows: 2000, features: features, nonzerosPerRow: 8, zipf: 0, seed: 3)))
            job.objective = .ridge(lambda: 1e-2)
            job.strategy.kind = .mapReduce
            job.optimizer.solver = .gd
            job.optimizer.learningRate = .fixed(0.1)
            job.stopping = StoppingRule(maxIterations: 5, tolerance: 0)
            job.nodes = 2
            job.computeReference = false
            let model = SimulationModel(compute: ComputeModel(secondsPerElement: 1e-8))
            let r = try await SimulationBackend(model: model).run(job)
            let node = r.perNode[1]
            return node.computeSeconds / Double(node.gradients)
        }
        let narrow = try await perGradient(features: 500), wide = try await perGradient(features: 200_000)
        // Rows × ⌈nonzeros per row⌉ × 1e-8 either way: about 1000 × 8 × 1e-8; dense accounting would differ 400×.
        #expect(abs(wide / narrow - 1) < 0.2, "narrow \(narrow) s, wide \(wide) s per gradient")
        #expect(narrow < 1000 * 16 * 1e-8)
    }
}
