import Shardwise
import ShardwiseThreads
import Testing
import _TestSupport

/// Every strategy on the threads backend, measured against LAPACK.
@Suite("Strategies on threads", .serialized)
struct StrategyTests {
    /// n = 20 000, d = 50, well conditioned.
    static let problem: PreparedProblem<Double> = {
        var job = Job(data: .synthetic(TestData.wellConditioned()))
        job.stopping = StoppingRule(maxIterations: 3000, tolerance: 1e-10)
        // This suite is about the strategies under gradient descent (SolverTests has the others).
        job.optimizer.solver = .gd
        return try! PreparedProblem<Double>(job: job)
    }()

    static func job(_ kind: StrategyKind, nodes: Int, _ edit: (inout Job) -> Void = { _ in }) -> PreparedProblem<Double> {
        var job = problem.job
        job.nodes = nodes
        job.strategy.kind = kind
        edit(&job)
        return try! PreparedProblem<Double>(job: job, dataset: problem.dataset)
    }

    /// Gradient descent on one node: the answer every synchronous run must reproduce.
    static func singleNode() async throws -> TrainingReport { try await Baseline.shared.report() }

    @Test("gradient descent on one node reaches w* (|w − w*|/|w*| < 1e-6)")
    func singleNodeReachesReference() async throws {
        let single = try await Self.singleNode()
        #expect(single.relativeDistance! < 1e-6)
        #expect(single.stopReason == .converged)
    }

    @Test("synchronous strategies reach w* and match one-node gradient descent to 1e-12",
          arguments: [StrategyKind.mapReduce, .allReduce], [1, 2, 4, 8])
    func synchronous(kind: StrategyKind, nodes: Int) async throws {
        let single = try await Self.singleNode()
        for algorithm in kind == .allReduce ? [AllReduceAlgorithm.ring, .reduceBroadcast, .allToAll] : [.ring] {
            let r = try await ThreadsBackend().run(problem: Self.job(kind, nodes: nodes) { $0.strategy.allReduce = algorithm })
            #expect(r.relativeDistance! < 1e-6, "\(kind) \(algorithm) on \(nodes)")
            #expect(relativeError(r.model, single.model) < 1e-12, "\(kind) \(algorithm) on \(nodes) differs from 1 node")
            #expect(r.iterations == single.iterations)
        }
    }

    @Test("parameter server with staleness 0 is synchronous gradient descent", arguments: [2, 3, 5])
    func psSynchronous(nodes: Int) async throws {
        let single = try await Self.singleNode()
        let r = try await ThreadsBackend().run(problem: Self.job(.parameterServer, nodes: nodes) { $0.strategy.parameterServer.staleness = 0 })
        #expect(relativeError(r.model, single.model) < 1e-12)
        #expect(r.staleness.keys.allSatisfy { $0 == 0 })
    }

    @Test("asynchronous strategies reach w* (|w − w*|/|w*| < 1e-4)",
          arguments: [StrategyKind.parameterServer, .hogwild, .gossip], [1, 2, 4, 8])
    func asynchronous(kind: StrategyKind, nodes: Int) async throws {
        let r = try await ThreadsBackend().run(problem: Self.job(kind, nodes: nodes) { $0.stopping.maxIterations = 6000 })
        #expect(r.relativeDistance! < 1e-4, "\(kind) on \(nodes) nodes: \(r.relativeDistance!) after \(r.iterations) (\(r.stopReason))")
    }

    @Test("with unbounded staleness the parameter server records stale gradients")
    func psStaleness() async throws {
        let r = try await ThreadsBackend().run(problem: Self.job(.parameterServer, nodes: 5) { $0.strategy.parameterServer.staleness = nil })
        let total = r.staleness.values.reduce(0, +)
        #expect(total > 0)
        #expect(r.staleness.keys.contains { $0 > 0 })
    }

    @Test("gossip: a disconnected graph never agrees; a complete graph agrees sooner than a ring")
    func gossipTopologies() async throws {
        let disconnected = try await ThreadsBackend().run(problem: Self.job(.gossip, nodes: 4) {
            $0.strategy.gossip.topology = .disconnected
            $0.stopping.maxIterations = 300
        })
        #expect(disconnected.stopReason == .maxIterations)
        #expect(disconnected.consensusDistance! > 1e-3)
        // Noise-free targets: every shard has the same optimum, so D-PSGD's replicas can agree
        // exactly and the time they take is set by the graph alone.
        var exact = Self.problem.job
        exact.data = .synthetic(SyntheticSpec(rows: 4000, features: 20, noise: 0, condition: 3, seed: 7))
        exact.nodes = 8
        exact.strategy.kind = .gossip
        exact.stopping = StoppingRule(maxIterations: 2000, tolerance: 1e-10)
        exact.traceEvery = 1
        func itersToConsensus(_ t: TopologySpec) async throws -> Int {
            var job = exact
            job.strategy.gossip.topology = t
            let r = try await ThreadsBackend().run(job)
            return r.trace.first { ($0.consensusDistance ?? 1) < 1e-6 && $0.iteration > 0 }?.iteration ?? Int.max
        }
        let complete = try await itersToConsensus(.complete)
        let ring = try await itersToConsensus(.ring)
        #expect(complete < ring, "complete \(complete), ring \(ring)")
        #expect(ring < Int.max, "the ring reaches consensus too, only later")
    }

    @Test("gossip with gradient tracking converges to w* exactly, where D-PSGD keeps a bias", arguments: [4, 8])
    func gossipTracking(nodes: Int) async throws {
        let plain = try await ThreadsBackend().run(problem: Self.job(.gossip, nodes: nodes) { $0.stopping.maxIterations = 3000 })
        let tracked = try await ThreadsBackend().run(problem: Self.job(.gossip, nodes: nodes) {
            $0.stopping.maxIterations = 3000
            $0.strategy.gossip.gradientTracking = true
        })
        #expect(tracked.relativeDistance! < 1e-7, "tracking: \(tracked.relativeDistance!)")
        #expect(tracked.consensusDistance! < 1e-7)
        #expect(plain.relativeDistance! > 10 * tracked.relativeDistance!, "D-PSGD \(plain.relativeDistance!)")
    }

    @Test("float32 on the wire halves the bytes of float64")
    func codecBytes() async throws {
        // Bytes per iteration = (bytes of a 100-iteration run − bytes of a 50-iteration run) / 50,
        // which cancels the setup traffic (power iteration, always exact).
        func bytesPerIteration(_ codec: CodecSpec) async throws -> (Double, TrainingReport) {
            var totals: [Int] = []
            var last: TrainingReport?
            for iterations in [50, 100] {
                let r = try await ThreadsBackend().run(problem: Self.job(.allReduce, nodes: 4) {
                    $0.stopping = StoppingRule(maxIterations: iterations, tolerance: 0)
                    $0.codec = codec
                })
                totals.append(r.totalBytesSent)
                last = r
            }
            return (Double(totals[1] - totals[0]) / 50, last!)
        }
        let (perIteration64, _) = try await bytesPerIteration(.float64)
        let (perIteration32, f32) = try await bytesPerIteration(.float32)
        #expect(perIteration32 / perIteration64 == 0.5, "\(perIteration32) vs \(perIteration64)")
        #expect(f32.relativeDistance! < 1e-2)
    }

    @Test("a diverging step size stops with a message naming it")
    func divergence() async {
        await #expect(throws: DivergenceError.self) {
            _ = try await ThreadsBackend().run(problem: Self.job(.mapReduce, nodes: 2) { $0.optimizer.learningRate = .fixed(50) })
        }
        do {
            _ = try await ThreadsBackend().run(problem: Self.job(.allReduce, nodes: 2) { $0.optimizer.learningRate = .fixed(50) })
        } catch {
            #expect("\(error)".contains("50") && "\(error)".contains("--lr auto"))
        }
    }

    @Test("mini-batch SGD with momentum gets close to w*")
    func miniBatch() async throws {
        let r = try await ThreadsBackend().run(problem: Self.job(.allReduce, nodes: 2) {
            $0.optimizer.batchSize = 2000
            $0.optimizer.momentum = 0.5
            $0.optimizer.learningRate = .fixed(0.2)
            $0.stopping = StoppingRule(maxIterations: 400, tolerance: 0)
        })
        #expect(r.relativeDistance! < 0.05)
    }

    @Test("the threads backend refuses nothing; hogwild's shared memory is present")
    func hogwildNeedsSharedMemory() throws {
        #expect(ThreadsBackend().hasSharedMemory)
    }
}

/// Computes the one-node baseline once for the whole suite.
actor Baseline {
    static let shared = Baseline()
    private var cached: TrainingReport?
    func report() async throws -> TrainingReport {
        if let cached { return cached }
        let r = try await ThreadsBackend().run(problem: StrategyTests.job(.mapReduce, nodes: 1))
        cached = r
        return r
    }
}
