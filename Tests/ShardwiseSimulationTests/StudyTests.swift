import Foundation
import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// A scaling study over several worlds: stragglers and faults apply where their rank exists,
/// undefined figures stay undefined, and a bad model is refused before anything runs.
@Suite struct StudyTests {
    static func job(_ kind: StrategyKind, iterations: Int = 5) -> Job {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 1600, features: 20, seed: 7)))
        job.strategy.kind = kind
        job.computeReference = false
        job.optimizer.learningRate = .fixed(0.01)
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: 0)
        return job
    }

    static func model(compute: Double = 1e-8, stragglers: StragglerModel = StragglerModel(),
                      faults: [FaultSpec] = []) -> SimulationModel {
        SimulationModel(network: NetworkModel(latency: 20e-6, bandwidth: 1e9),
                        compute: ComputeModel(secondsPerElement: compute), stragglers: stragglers, faults: faults)
    }

    /// The documented `--nodes 1,2,4,8,16 --stragglers 3:10`: rank 3 is slow where there is a rank
    /// 3 (m ≥ 4), the smaller worlds run as without it, and the study says so.
    @Test func stragglerAppliesWhereItsRankExists() async throws {
        let counts = [1, 2, 4, 8, 16]
        let job = Self.job(.mapReduce)
        let plain = try await ScalingStudy.run(job: job, nodeCounts: counts, backend: SimulationBackend(model: Self.model()))
        let slow = try await ScalingStudy.run(
            job: job, nodeCounts: counts,
            backend: SimulationBackend(model: Self.model(stragglers: StragglerModel(slowdowns: [.init(rank: 3, factor: 10)]))))
        #expect(slow.notes == ["straggler rank 3 ×10 applies to m ≥ 4"])
        #expect(plain.notes.isEmpty)
        for (a, b) in zip(plain.points, slow.points) {
            if a.nodes < 4 {
                #expect(a.secondsPerIteration == b.secondsPerIteration, "m=\(a.nodes)")
            } else {
                // MapReduce waits for the straggler every iteration: at least its 10× compute.
                let slowCompute = 10 * Double(1600 / a.nodes * 20) * 1e-8
                #expect(b.secondsPerIteration >= slowCompute, "m=\(a.nodes): \(b.secondsPerIteration) vs \(slowCompute)")
                #expect(b.secondsPerIteration > a.secondsPerIteration, "m=\(a.nodes)")
            }
        }
        // At 4 nodes the straggler's compute (800 µs) dwarfs everything else.
        #expect(slow.points[2].secondsPerIteration > 4 * plain.points[2].secondsPerIteration)
    }

    /// The documented `--nodes 8 --fault 2@5ms+20ms` (1 is added): the 1-node baseline has no rank
    /// 2 and runs as usual; the 8-node run loses rank 2 for 20 ms.
    @Test func faultAppliesWhereItsRankExists() async throws {
        var job = Self.job(.parameterServer, iterations: 40)
        job.strategy.parameterServer.staleness = 0
        let fault = FaultSpec(rank: 2, at: 5e-3, downtime: 20e-3)
        let plain = try await ScalingStudy.run(job: job, nodeCounts: [8], backend: SimulationBackend(model: Self.model(compute: 1e-6)))
        let faulty = try await ScalingStudy.run(job: job, nodeCounts: [8],
                                                backend: SimulationBackend(model: Self.model(compute: 1e-6, faults: [fault])))
        #expect(faulty.points.map(\.nodes) == [1, 8])
        #expect(faulty.notes == ["fault of rank 2 applies to m ≥ 3"])
        #expect(faulty.points[0].seconds == plain.points[0].seconds)
        // A synchronous server waits for the crashed worker: the run takes the downtime longer.
        #expect(faulty.points[1].seconds > plain.points[1].seconds + 15e-3,
                "\(faulty.points[1].seconds) vs \(plain.points[1].seconds)")
    }

    @Test func restrictionKeepsOnlyTheWorldsRanks() {
        let model = SimulationModel(
            stragglers: StragglerModel(slowdowns: [.init(rank: 1, factor: 2), .init(rank: 5, factor: 3)],
                                       delay: .exponential(mean: 1e-3), delayRanks: [0, 6]),
            faults: [FaultSpec(rank: 4, at: 0, downtime: 1)])
        let small = model.restricted(toNodes: 4)
        #expect(small.stragglers.slowdowns == [.init(rank: 1, factor: 2)])
        #expect(small.stragglers.delayRanks == [0])
        #expect(small.faults.isEmpty)
        // A delay on rank 6 only: none of a 4-node world is delayed (an empty list, not nil = all).
        var onlySix = model
        onlySix.stragglers.delayRanks = [6]
        #expect(onlySix.restricted(toNodes: 4).stragglers.delayRanks == [])
        #expect(model.restricted(toNodes: 8) == model)
    }

    /// `--compute-cost 0`: one node takes no time, so the speedups against it are undefined — nil,
    /// shown as "—" and written as JSON null, not NaN (which a standard JSON encoder refuses).
    @Test func zeroTimeGivesUndefinedSpeedups() async throws {
        var job = Self.job(.allReduce)
        job.strategy.allReduce = .ring
        let study = try await ScalingStudy.run(job: job, nodeCounts: [1, 2, 4],
                                               backend: SimulationBackend(model: Self.model(compute: 0)))
        #expect(study.points[0].secondsPerIteration == 0)
        for p in study.points {
            #expect(p.speedup == nil, "m=\(p.nodes)")
            #expect(p.efficiency == nil)
            #expect(p.karpFlatt == nil)
        }
        // One node computes nothing and sends nothing: no split to speak of.
        #expect(study.points[0].serialShare == nil)
        #expect(study.points[0].gustafsonScaledSpeedup == nil)
        #expect(study.points[1].serialShare == 1)
        #expect(study.amdahl == nil)
        let json = String(decoding: try JSONEncoder().encode(study), as: UTF8.self)   // throws on NaN
        #expect(json.contains("\"speedup\":null"))
        #expect(json.contains("\"efficiency\":null"))
        #expect(!json.contains("nan"))
    }

    /// A model that cannot run is refused before the first world runs.
    @Test func studyRefusesARankNoWorldHas() async throws {
        let model = Self.model(stragglers: StragglerModel(delay: .exponential(mean: 1e-3), delayRanks: [99]))
        await #expect {
            _ = try await ScalingStudy.run(job: Self.job(.mapReduce), nodeCounts: [1, 2, 4],
                                           backend: SimulationBackend(model: model))
        } throws: { error in
            (error as? SimulationModelError)?.description == "--delay-ranks: rank 99 is not in 0..<4, the largest world of the study"
        }
    }
}

/// The simulation model's ranges, checked once in the core (`SimulationModel.validate`); every
/// message names the `shardwise simulate` option that sets the field.
@Suite struct ModelValidationTests {
    typealias Edit = @Sendable (inout SimulationModel) -> Void

    static let refused: [(String, [Int], Edit)] = [
        ("--stragglers: the factor of rank 1 must be ≥ 1 (a straggler is slower: 10 = ten times slower), got 0.5", [1, 2],
         { $0.stragglers.slowdowns = [.init(rank: 1, factor: 0.5)] }),
        ("--stragglers: the factor of rank 1 must be ≥ 1 (a straggler is slower: 10 = ten times slower), got 0.0", [2],
         { $0.stragglers.slowdowns = [.init(rank: 1, factor: 0)] }),
        ("--stragglers: the factor of rank 0 must be ≥ 1 (a straggler is slower: 10 = ten times slower), got -2.0", [2],
         { $0.stragglers.slowdowns = [.init(rank: 0, factor: -2)] }),
        ("--stragglers: the factor of rank 0 must be ≥ 1 (a straggler is slower: 10 = ten times slower), got nan", [2],
         { $0.stragglers.slowdowns = [.init(rank: 0, factor: .nan)] }),
        ("--stragglers: rank 3 is not in 0..<2 (2 nodes)", [2], { $0.stragglers.slowdowns = [.init(rank: 3, factor: 10)] }),
        ("--stragglers: rank 1 is given twice", [4],
         { $0.stragglers.slowdowns = [.init(rank: 1, factor: 2), .init(rank: 1, factor: 3)] }),
        ("--delay-ranks: rank 99 is not in 0..<16, the largest world of the study", [1, 2, 4, 8, 16],
         { $0.stragglers.delay = .exponential(mean: 1e-3); $0.stragglers.delayRanks = [99] }),
        ("--delay-ranks: needs a delay to apply (--delay)", [4], { $0.stragglers.delayRanks = [1] }),
        ("--delay-ranks: the list of ranks is empty", [4],
         { $0.stragglers.delay = .exponential(mean: 1e-3); $0.stragglers.delayRanks = [] }),
        ("--delay: the mean delay must be a finite number of seconds ≥ 0, got -0.001", [4],
         { $0.stragglers.delay = .exponential(mean: -1e-3) }),
        ("--delay: the log-normal σ must be finite and ≥ 0, got nan", [4], { $0.stragglers.delay = .logNormal(mu: 0, sigma: .nan) }),
        ("--latency: the latency must be a finite number of seconds ≥ 0, got -1e-06", [2], { $0.network.latency = -1e-6 }),
        ("--latency: the latency must be a finite number of seconds ≥ 0, got nan", [2], { $0.network.latency = .nan }),
        ("--latency: the latency must be a finite number of seconds ≥ 0, got inf", [2], { $0.network.latency = .infinity }),
        ("--bandwidth: the bandwidth must be positive, got 0.0 bytes/s", [2], { $0.network.bandwidth = 0 }),
        ("--bandwidth: the bandwidth must be positive, got -5.0 bytes/s", [2], { $0.network.bandwidth = -5 }),
        ("--bandwidth: the bandwidth must be positive, got nan bytes/s", [2], { $0.network.bandwidth = .nan }),
        ("--compute-cost: the compute cost must be a finite number of seconds per element ≥ 0, got -1e-09", [2],
         { $0.compute.secondsPerElement = -1e-9 }),
        ("--compute-cost: the compute cost must be a finite number of seconds per element ≥ 0, got nan", [2],
         { $0.compute.secondsPerElement = .nan }),
        ("--fault: rank 8 is not in 0..<8, the largest world of the study", [1, 8], { $0.faults = [FaultSpec(rank: 8, at: 0, downtime: 1)] }),
        ("--fault: the crash time of rank 1 must be a finite time ≥ 0, got -1.0", [2], { $0.faults = [FaultSpec(rank: 1, at: -1, downtime: 1)] }),
        ("--fault: the crash time of rank 1 must be a finite time ≥ 0, got nan", [2], { $0.faults = [FaultSpec(rank: 1, at: .nan, downtime: 1)] }),
        ("--fault: the downtime of rank 1 must be a finite time ≥ 0, got -0.5", [2], { $0.faults = [FaultSpec(rank: 1, at: 0, downtime: -0.5)] }),
        ("--fault: the downtime of rank 1 must be a finite time ≥ 0, got inf", [2], { $0.faults = [FaultSpec(rank: 1, at: 0, downtime: .infinity)] }),
    ]

    @Test(arguments: refused.indices)
    func refusesWithTheOption(_ i: Int) {
        let (message, counts, edit) = Self.refused[i]
        var model = SimulationModel()
        edit(&model)
        #expect {
            try model.validate(nodeCounts: counts)
        } throws: { error in
            (error as? SimulationModelError)?.description == message
        }
    }

    /// The same rules stop a single run (no world to spare: ranks must be in it).
    @Test func backendRefusesTooBeforeRunning() async {
        var model = SimulationModel()
        model.stragglers.slowdowns = [.init(rank: 1, factor: 0.5)]
        await #expect(throws: SimulationModelError.self) {
            _ = try await SimulationBackend(model: model).simulate(nodes: 2) { _ in 0 }
        }
    }

    @Test func acceptsTheEdges() throws {
        var model = SimulationModel()
        model.stragglers.slowdowns = [.init(rank: 3, factor: 1), .init(rank: 15, factor: 10)]
        model.stragglers.delay = .exponential(mean: 0)
        model.stragglers.delayRanks = [0, 15]
        model.network.latency = 0
        model.network.bandwidth = .infinity   // messages cost only their latency
        model.compute.secondsPerElement = 0
        model.faults = [FaultSpec(rank: 15, at: 0, downtime: 0)]
        try model.validate(nodeCounts: [1, 2, 4, 8, 16])
        #expect(model.partialApplication(nodeCounts: [1, 2, 4, 8, 16]) == [
            "straggler rank 3 ×1 applies to m ≥ 4", "straggler rank 15 ×10 applies to m ≥ 16",
            "delay on rank 15 applies to m ≥ 16",
            "fault of rank 15 applies to m ≥ 16",
        ])
    }

    /// The parser checks the syntax only; the range is the model's (one rule, one place).
    @Test func stragglerSyntaxThenRange() throws {
        let slow = try SimulationUnits.stragglers("3:0.5")
        #expect(slow == [.init(rank: 3, factor: 0.5)])
        #expect(throws: SimulationModelError.self) {
            try SimulationModel(stragglers: StragglerModel(slowdowns: slow)).validate(nodeCounts: [4])
        }
    }
}
