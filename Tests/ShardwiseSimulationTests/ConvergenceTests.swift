import Foundation
import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// Every strategy on the simulator reaches the LAPACK solution, at several node counts, as on
/// the threads backend — the strategies run unchanged; only the clock is virtual.
@Suite struct ConvergenceTests {
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var edit: @Sendable (inout Job) -> Void
        var tolerance: Double
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "mapreduce", edit: { $0.strategy.kind = .mapReduce }, tolerance: 1e-6),
        Case(name: "allreduce ring", edit: { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .ring }, tolerance: 1e-6),
        Case(name: "allreduce reduce-broadcast", edit: { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .reduceBroadcast }, tolerance: 1e-6),
        Case(name: "allreduce all-to-all", edit: { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .allToAll }, tolerance: 1e-6),
        Case(name: "allreduce native (modelled ring)", edit: { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .native }, tolerance: 1e-6),
        Case(name: "ps staleness 0", edit: { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = 0 }, tolerance: 1e-6),
        Case(name: "ps staleness 2", edit: { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = 2 }, tolerance: 1e-4),
        Case(name: "ps async", edit: { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = nil }, tolerance: 1e-4),
        Case(name: "hogwild", edit: { $0.strategy.kind = .hogwild }, tolerance: 1e-4),
        Case(name: "gossip complete", edit: { $0.strategy.kind = .gossip; $0.strategy.gossip.topology = .complete }, tolerance: 1e-3),
        Case(name: "gossip ring", edit: { $0.strategy.kind = .gossip; $0.strategy.gossip.topology = .ring }, tolerance: 1e-2),
        // The solvers run unchanged on the virtual clock.
        Case(name: "mapreduce gd", edit: { $0.strategy.kind = .mapReduce; $0.optimizer.solver = .gd }, tolerance: 1e-6),
        Case(name: "allreduce nesterov", edit: { $0.strategy.kind = .allReduce; $0.optimizer.solver = .nesterov }, tolerance: 1e-6),
        Case(name: "allreduce lbfgs", edit: { $0.strategy.kind = .allReduce; $0.optimizer.solver = .lbfgs }, tolerance: 1e-6),
        Case(name: "mapreduce newton-cg", edit: { $0.strategy.kind = .mapReduce; $0.optimizer.solver = .newtonCG }, tolerance: 1e-6),
    ]

    @Test(arguments: cases, [1, 3, 8])
    func reachesTheExactSolution(_ c: Case, nodes: Int) async throws {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 4000, features: 20)))
        job.nodes = nodes
        job.stopping = StoppingRule(maxIterations: 3000, tolerance: 1e-9)
        c.edit(&job)
        let report = try await SimulationBackend().run(job)
        let distance = try #require(report.relativeDistance)
        #expect(distance < c.tolerance, "\(c.name) on \(nodes) nodes: |w − w*|/|w*| = \(distance) after \(report.iterations) iterations (\(report.stopReason))")
        #expect(report.backend == "simulation")
        #expect(report.simulation != nil)
        #expect(report.seconds > 0)
    }
}

/// The same job and model give the same report, bit for bit.
@Suite struct DeterminismTests {
    static func encoded(_ r: TrainingReport) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(r)
    }

    @Test(arguments: ["ps async", "gossip async", "hogwild", "allreduce float32"])
    func twoRunsAreIdentical(_ name: String) async throws {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 3000, features: 16)))
        job.nodes = 6
        job.stopping = StoppingRule(maxIterations: 200, tolerance: 1e-8)
        switch name {
        case "ps async": job.strategy.kind = .parameterServer; job.strategy.parameterServer.staleness = nil
        case "gossip async": job.strategy.kind = .gossip; job.strategy.gossip.asynchronous = true
        case "hogwild": job.strategy.kind = .hogwild
        default: job.strategy.kind = .allReduce; job.codec = .float32
        }
        let model = SimulationModel(
            stragglers: StragglerModel(slowdowns: [.init(rank: 2, factor: 3)], delay: .logNormal(mu: log(20e-6), sigma: 0.7), seed: 5),
            faults: [FaultSpec(rank: 4, at: 1e-3, downtime: 2e-3)])
        let a = try await SimulationBackend(model: model).run(job)
        let b = try await SimulationBackend(model: model).run(job)
        // [Int: Int] encodes in hash order, which differs between dictionaries: compare the
        // staleness histograms as values, the rest as bytes.
        #expect(a.staleness == b.staleness)
        var (ca, cb) = (a, b)
        ca.staleness = [:]
        cb.staleness = [:]
        let (ea, eb) = (try Self.encoded(ca), try Self.encoded(cb))
        if ea != eb, let ja = try JSONSerialization.jsonObject(with: ea) as? [String: Any],
           let jb = try JSONSerialization.jsonObject(with: eb) as? [String: Any] {
            let differing = ja.keys.filter { "\(ja[$0]!)" != "\(jb[$0] ?? "")" }.sorted()
            Issue.record("\(name): fields differ: \(differing); seconds \(a.seconds) vs \(b.seconds)")
        }
        #expect(ea == eb, "\(name): reports differ: seconds \(a.seconds) vs \(b.seconds), model equal \(a.model == b.model), trace equal \(a.trace == b.trace), nodes equal \(a.perNode == b.perNode)")
        #expect(a.setupSeconds == 0)
        // A different delay seed changes the timing (so the comparison above is not vacuous).
        var other = model
        other.stragglers.seed = 6
        let c = try await SimulationBackend(model: other).run(job)
        #expect(c.seconds != a.seconds)
    }
}
