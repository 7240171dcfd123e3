import Foundation
import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// The parameter server's two update rules on the simulator, which is deterministic: with a
/// straggler, applying each stale gradient on its own (`each`) ends farther from w* than applying
/// the sum of the latest gradients (`aggregate`) at the same iteration budget.
@Suite struct PSUpdateTests {
    static func job(_ rule: PSUpdateRule, nodes: Int = 5, iterations: Int = 300) -> Job {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 4000, features: 20)))
        job.nodes = nodes
        job.strategy.kind = .parameterServer
        job.strategy.parameterServer.staleness = nil
        job.strategy.parameterServer.update = rule
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: 0)
        return job
    }

    static let straggler = SimulationModel(
        stragglers: StragglerModel(slowdowns: [.init(rank: 2, factor: 4)], delay: .logNormal(mu: log(20e-6), sigma: 0.7), seed: 5))

    @Test func eachEndsFartherFromTheOptimumThanAggregate() async throws {
        let aggregate = try await SimulationBackend(model: Self.straggler).run(Self.job(.aggregate))
        let each = try await SimulationBackend(model: Self.straggler).run(Self.job(.each))
        let a = try #require(aggregate.relativeDistance), e = try #require(each.relativeDistance)
        // Both from w = 0 with the same step 1/L and 300 rounds: aggregate reaches w* to rounding;
        // each circles a point biased towards the fast workers' shards.
        #expect(a < 1e-10, "aggregate: |w − w*|/|w*| = \(a)")
        #expect(e > 1e-5 && e > 1e4 * a, "each \(e) against aggregate \(a)")
        let gap = { (r: TrainingReport) in r.finalLoss - r.optimalLoss! }
        #expect(gap(each) > 100 * max(gap(aggregate), 1e-300))
        // The staleness of every applied gradient is recorded under either rule.
        #expect(each.staleness.values.reduce(0, +) == aggregate.staleness.values.reduce(0, +))
        #expect((each.staleness.keys.max() ?? 0) >= 3)
        // Without the straggler each still misses w* (a constant step along one shard's gradient at a
        // time never settles), by less: the straggler's rarer, staler gradients add a bias.
        let even = try await SimulationBackend().run(Self.job(.each))
        let evenDistance = try #require(even.relativeDistance)
        #expect(evenDistance > 1e4 * a && evenDistance < e, "each without a straggler: \(evenDistance), with: \(e)")
        // Deterministic: the same job and model, the same model w.
        let again = try await SimulationBackend(model: Self.straggler).run(Self.job(.each))
        #expect(again.model == each.model)
    }
}

/// The rule as job data: absent means `aggregate`, and a warning names it where it has no effect.
@Suite struct PSUpdateSpecTests {
    /// A job file's text: `job` encoded, with its "strategy.parameterServer.update" set to `value` (nil: left out).
    static func jobFile(_ job: Job, psUpdate value: String?) throws -> Data {
        var tree = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(job)) as? [String: Any])
        var strategy = try #require(tree["strategy"] as? [String: Any])
        var options = try #require(strategy["parameterServer"] as? [String: Any])
        options["update"] = value
        strategy["parameterServer"] = options
        tree["strategy"] = strategy
        return try JSONSerialization.data(withJSONObject: tree)
    }

    @Test func decodesWithADefault() throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 100, features: 3)))
        job.strategy.kind = .parameterServer
        job.strategy.parameterServer.update = .each
        #expect(try Job(json: Self.jobFile(job, psUpdate: nil)).strategy.parameterServer.update == .aggregate)
        #expect(try Job(json: Self.jobFile(job, psUpdate: "each")) == job)
        #expect(throws: JobError.self) { try Job(json: Self.jobFile(job, psUpdate: "sometimes")) }
    }

    @Test func warnsWhereTheRuleHasNoEffect() {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 100, features: 3)))
        job.strategy.parameterServer.update = .each
        job.strategy.kind = .mapReduce
        #expect(job.warnings.contains { $0.field == "strategy.parameterServer.update" && $0.message.contains("ps only") })
        job.strategy.kind = .parameterServer
        job.strategy.parameterServer.staleness = 0
        #expect(job.warnings.contains { $0.field == "strategy.parameterServer.update" && $0.message.contains("staleness 0") })
        job.strategy.parameterServer.staleness = nil
        #expect(!job.warnings.contains { $0.field == "strategy.parameterServer.update" })
    }
}
