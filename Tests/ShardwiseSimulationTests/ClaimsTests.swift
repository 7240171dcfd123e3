import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// The seeds' claims about distributed training, shown by numbers from the simulator.
@Suite struct ClaimsTests {
    static func job(_ kind: StrategyKind, nodes: Int, rows: Int = 8000, features: Int = 50,
                    iterations: Int = 40, tolerance: Double = 0) -> Job {
        var job = Job(data: .synthetic(SyntheticSpec(rows: rows, features: features, noise: 0.1, condition: 3, seed: 11)))
        job.nodes = nodes
        job.strategy.kind = kind
        job.optimizer.learningRate = .fixed(0.3)
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: tolerance)
        job.traceEvery = 1
        return job
    }

    static func model(latency: Double = 5e-6, bandwidth: Double = 1.25e9, compute: Double = 1e-8,
                      stragglers: StragglerModel = StragglerModel(), faults: [FaultSpec] = []) -> SimulationModel {
        SimulationModel(network: NetworkModel(latency: latency, bandwidth: bandwidth),
                        compute: ComputeModel(secondsPerElement: compute), stragglers: stragglers, faults: faults)
    }

    /// Rounds (one gradient per worker, on average) the server completes per virtual second,
    /// from its trace (the end of the run, where the server waits out a straggler's last
    /// gradient, does not count).
    static func throughput(_ r: TrainingReport) -> Double {
        let first = r.trace[1], last = r.trace[r.trace.count - 2]
        return Double(last.iteration - first.iteration) / (last.time - first.time)
    }

    /// (a) One node 10× slower: synchronous MapReduce waits for it every iteration; the
    /// asynchronous parameter server keeps applying the other workers' gradients.
    @Test func stragglerSetsTheSynchronousPace() async throws {
        let slow = StragglerModel(slowdowns: [.init(rank: 3, factor: 10)])
        let m = 8
        let normalMR = try await SimulationBackend(model: Self.model()).run(Self.job(.mapReduce, nodes: m))
        let slowMR = try await SimulationBackend(model: Self.model(stragglers: slow)).run(Self.job(.mapReduce, nodes: m))
        let perIteration = { (r: TrainingReport) in r.seconds / Double(r.iterations) }
        // MapReduce: the iteration takes the straggler's compute (10 C) plus the communication.
        let computeOne = Double(8000 / m * 50) * 1e-8
        let ratio = perIteration(slowMR) / perIteration(normalMR)
        #expect(ratio > 7, "MapReduce slowed only \(ratio)×")
        #expect(perIteration(slowMR) > 10 * computeOne)
        #expect(perIteration(slowMR) < 10 * computeOne * 1.1)
        // The others wait for it: their waiting time dwarfs their compute.
        let fast = slowMR.perNode.filter { $0.rank != 3 && $0.rank != 0 }
        #expect(fast.allSatisfy { $0.waitingSeconds > 5 * $0.computeSeconds })

        var ps = Self.job(.parameterServer, nodes: m, iterations: 60)
        ps.strategy.parameterServer.staleness = nil
        ps.optimizer.learningRate = .fixed(0.05)
        let normalPS = try await SimulationBackend(model: Self.model()).run(ps)
        let slowPS = try await SimulationBackend(model: Self.model(stragglers: slow)).run(ps)
        let kept = Self.throughput(slowPS) / Self.throughput(normalPS)
        // 6 full-speed workers and one at a tenth: (6 + 0.1)/7 ≈ 0.87 of the throughput.
        #expect(kept > 0.8, "the parameter server kept only \(kept) of its throughput")
        #expect(abs(kept - 6.1 / 7) < 0.05)
    }

    /// (b) When latency dominates, adding nodes stops paying: the ring all-reduce costs
    /// 2(m−1)·α per iteration while the compute shrinks as 1/m.
    @Test func speedupFlattensWhenLatencyDominates() async throws {
        var job = Self.job(.allReduce, nodes: 1, rows: 16_384, iterations: 5)
        job.strategy.allReduce = .ring
        let counts = [1, 2, 4, 8, 16, 32, 64]
        let latencyBound = try await ScalingStudy.run(job: job, nodeCounts: counts,
                                                      backend: SimulationBackend(model: Self.model(latency: 20e-6, compute: 1e-8)))
        let s = try latencyBound.points.map { try #require($0.speedup) }
        #expect(s[1] > 1.9)                                  // 2 nodes: nearly 2×
        #expect(s[6] < s[5] * 1.15, "speedup did not flatten: \(s)")  // 32 → 64 nodes: no gain
        #expect(s[6] < 16)                                   // far from 64
        for i in 1..<s.count { #expect(s[i] / Double(counts[i]) < s[i - 1] / Double(counts[i - 1]) + 1e-9) }
        // Amdahl's fitted serial fraction is well above zero…
        let p = try #require(latencyBound.amdahl).serialFraction
        #expect(p > 0.005)
        // …while with no latency the same study scales almost linearly.
        let free = try await ScalingStudy.run(job: job, nodeCounts: counts,
                                              backend: SimulationBackend(model: Self.model(latency: 0, compute: 1e-8)))
        let freeSpeedup = try #require(free.points[6].speedup)
        #expect(freeSpeedup > 50, "bandwidth-only speedup at 64: \(freeSpeedup)")
        #expect(try #require(free.amdahl).serialFraction < p / 10)
    }

    /// (c) Gossip reaches consensus faster on a complete graph than on a ring, and never on a
    /// disconnected graph. (Gradient tracking, so that consensus is exact at the optimum and
    /// the stopping rule — gradient and consensus both within tolerance — can be met.)
    @Test func gossipTopology() async throws {
        func run(_ topology: TopologySpec) async throws -> TrainingReport {
            var job = Self.job(.gossip, nodes: 16, rows: 8000, iterations: 2000, tolerance: 1e-6)
            job.strategy.gossip.topology = topology
            job.strategy.gossip.gradientTracking = true
            job.optimizer.learningRate = .fixed(0.2)
            return try await SimulationBackend(model: Self.model(latency: 1e-6, compute: 1e-8)).run(job)
        }
        let complete = try await run(.complete)
        let ring = try await run(.ring)
        let none = try await run(.disconnected)
        func consensusAt(_ r: TrainingReport, iteration: Int) -> Double {
            r.trace.first { $0.iteration >= iteration }?.consensusDistance ?? .infinity
        }
        // After 20 rounds the complete graph's replicas agree far better than the ring's.
        #expect(consensusAt(complete, iteration: 20) < consensusAt(ring, iteration: 20) / 2,
                "complete \(consensusAt(complete, iteration: 20)), ring \(consensusAt(ring, iteration: 20))")
        // The complete graph converges (gradient and consensus) sooner, in rounds and in time.
        #expect(complete.converged)
        #expect(complete.iterations < ring.iterations)
        #expect(complete.seconds < ring.seconds)
        // No edges, no consensus: the replicas stay apart.
        #expect(!none.converged)
        let spread = try #require(none.consensusDistance)
        #expect(spread > 1e-3, "disconnected replicas agreed to \(spread)")
    }

    /// (d) Bandwidth-bound, float32 halves the bytes and so the communication time.
    @Test(arguments: [AllReduceAlgorithm.ring, .reduceBroadcast])
    func float32HalvesCommunication(algorithm: AllReduceAlgorithm) async throws {
        func run(_ codec: CodecSpec) async throws -> TrainingReport {
            var job = Self.job(.allReduce, nodes: 8, rows: 4000, features: 400, iterations: 5)
            job.strategy.allReduce = algorithm
            job.codec = codec
            job.optimizer.learningRate = .fixed(0.01)
            return try await SimulationBackend(model: Self.model(latency: 0, bandwidth: 125e6, compute: 0)).run(job)
        }
        let f64 = try await run(.float64), f32 = try await run(.float32)
        let comm = { (r: TrainingReport) in r.perNode.reduce(0.0) { $0 + $1.communicationSeconds + $1.waitingSeconds } }
        #expect(isClose(comm(f32) / comm(f64), 0.5, relative: 0.01), "ratio \(comm(f32) / comm(f64))")
        #expect(f32.totalBytesSent * 2 == f64.totalBytesSent)
        #expect(isClose(f32.seconds / f64.seconds, 0.5, relative: 0.01))   // no compute: all of it
    }

    /// Faults: a crashed node stalls a synchronous run until it is back; an asynchronous
    /// parameter server carries on with the other workers meanwhile.
    @Test func crashStallsSyncNotAsync() async throws {
        let crash = FaultSpec(rank: 2, at: 2e-3, downtime: 20e-3)
        let m = 5
        // Synchronous MapReduce.
        let mr = Self.job(.mapReduce, nodes: m, iterations: 30)
        let mrClean = try await SimulationBackend(model: Self.model()).run(mr)
        let mrCrash = try await SimulationBackend(model: Self.model(faults: [crash])).run(mr)
        #expect(isClose(mrCrash.seconds - mrClean.seconds, crash.downtime, relative: 0.1),
                "delay \(mrCrash.seconds - mrClean.seconds)")
        let inWindow = { (r: TrainingReport) in
            r.trace.filter { $0.time > crash.at + r.seconds / Double(r.iterations) && $0.time < crash.at + crash.downtime }.count
        }
        #expect(inWindow(mrCrash) == 0)   // not one iteration completes while rank 2 is down
        #expect(mrCrash.model == mrClean.model)   // same math, just later
        // Asynchronous parameter server.
        var ps = Self.job(.parameterServer, nodes: m, iterations: 60)
        ps.strategy.parameterServer.staleness = nil
        ps.optimizer.learningRate = .fixed(0.05)
        let psCrash = try await SimulationBackend(model: Self.model(faults: [crash])).run(ps)
        #expect(inWindow(psCrash) > 5)     // rounds go on while rank 2 is down
        let staleness = psCrash.staleness.keys.max() ?? 0
        #expect(staleness > 10)           // rank 2's late gradient is very stale
    }
}
