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
}
