import Shardwise
import ShardwiseSimulation
import Testing
import _TestSupport

/// The communication-efficient strategies run on the simulator unchanged (they use only the
/// communicator's collectives), with the results the threads backend gets.
@Suite struct CommunicationEfficientSimulationTests {
    static func job(_ kind: StrategyKind, nodes: Int = 4, _ edit: (inout Job) -> Void = { _ in }) -> Job {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 4000, features: 20)))
        job.nodes = nodes
        job.strategy.kind = kind
        job.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-9)
        edit(&job)
        return job
    }

    @Test("one-shot: one round on the virtual clock, close to w*")
    func oneShot() async throws {
        let r = try await SimulationBackend().run(Self.job(.oneShot))
        #expect(r.backend == "simulation")
        #expect(r.iterations == 1 && r.stopReason == .completed)
        #expect(r.relativeDistance! < 0.05 && r.relativeDistance! > 1e-8)
        #expect(r.seconds > 0)
    }

    @Test("local SGD: H = 1 is the simulator's synchronous gradient descent")
    func localSGD() async throws {
        let edit: (inout Job) -> Void = { $0.strategy.localSGD.localSteps = 1; $0.stopping = StoppingRule(maxIterations: 100, tolerance: 0); $0.optimizer.solver = .gd }
        let local = try await SimulationBackend().run(Self.job(.localSGD, edit))
        let sync = try await SimulationBackend().run(Self.job(.allReduce, edit))
        #expect(relativeError(local.model, sync.model) < 1e-10)
        #expect(local.iterations == 100)
        let h10 = try await SimulationBackend().run(Self.job(.localSGD))
        #expect(h10.relativeDistance! < 1e-2)
    }

    @Test("cocoa: the duality gap certifies the simulated run too")
    func cocoa() async throws {
        let r = try await SimulationBackend().run(Self.job(.cocoa) {
            $0.objective = .ridge(lambda: 0.01)
            $0.strategy.cocoa.gapTolerance = 1e-8
        })
        #expect(r.stopReason == .converged)
        #expect(r.finalLoss - r.optimalLoss! <= 1e-8)
        #expect(r.notes.contains { $0.contains("duality gap") })
        #expect(r.seconds > 0)
    }
}

extension CommunicationEfficientSimulationTests {
    @Test("gram: one round on the virtual clock, the LAPACK solution")
    func gram() async throws {
        let r = try await SimulationBackend().run(Self.job(.gram) { $0.objective = .ridge(lambda: 0.01) })
        #expect(relativeError(r.model, r.reference!) < 1e-8)
        #expect(r.iterations == 1 && r.stopReason == .completed)
        #expect(r.seconds > 0)
    }
}
