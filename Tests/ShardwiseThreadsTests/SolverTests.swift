import Shardwise
import ShardwiseThreads
import Testing
import _TestSupport

/// Every solver against LAPACK's exact answer, on the threads backend, under both synchronous
/// strategies and several node counts.
@Suite("Solvers on threads", .serialized)
struct SolverTests {
    struct Problem: CustomTestStringConvertible, Sendable {
        var name: String
        var spec: SyntheticSpec
        var objective: Objective
        var testDescription: String { name }
    }

    static let problems: [Problem] = [
        Problem(name: "least squares, well conditioned",
                spec: SyntheticSpec(rows: 3000, features: 20, condition: 3, seed: 11), objective: .leastSquares),
        Problem(name: "least squares, ill conditioned (κ(XᵀX) = 900)",
                spec: SyntheticSpec(rows: 3000, features: 20, condition: 30, seed: 12), objective: .leastSquares),
        Problem(name: "ridge, n < d",
                spec: SyntheticSpec(rows: 40, features: 100, condition: 5, seed: 13), objective: .ridge(lambda: 0.05)),
        Problem(name: "logistic, well conditioned",
                spec: SyntheticSpec(rows: 3000, features: 20, condition: 3, seed: 14, classification: true),
                objective: .logistic(lambda: 1e-3)),
        Problem(name: "logistic, ill conditioned",
                spec: SyntheticSpec(rows: 3000, features: 20, condition: 30, seed: 15, classification: true),
                objective: .logistic(lambda: 1e-4)),
    ]

    static func job(_ p: Problem, _ solver: SolverKind, kind: StrategyKind = .allReduce, nodes: Int = 1) -> Job {
        var job = Job(data: .synthetic(p.spec))
        job.objective = p.objective
        job.optimizer.solver = solver
        job.strategy.kind = kind
        job.nodes = nodes
        // gd on the ill-conditioned problems needs many iterations; the others stop far earlier.
        job.stopping = StoppingRule(maxIterations: solver == .gd ? 60_000 : 5000, tolerance: 1e-10)
        return job
    }

    static func solvers(for p: Problem) -> [SolverKind] {
        SolverKind.allCases.filter { $0.supports(p.objective) }
    }

    @Test("every solver reaches w* on one node, and on 3 and 4 nodes", arguments: problems)
    func reachesTheReference(_ p: Problem) async throws {
        for solver in Self.solvers(for: p) {
            for (kind, nodes) in [(StrategyKind.allReduce, 1), (.allReduce, 4), (.mapReduce, 3)] {
                let r = try await ThreadsBackend().run(Self.job(p, solver, kind: kind, nodes: nodes))
                let distance = try #require(r.relativeDistance)
                #expect(r.stopReason == .converged, "\(solver) on \(p.name), \(kind) × \(nodes): \(r.stopReason) after \(r.iterations)")
                #expect(distance < 1e-6, "\(solver) on \(p.name), \(kind) × \(nodes): |w − w*|/|w*| = \(distance) after \(r.iterations) iterations")
                #expect(r.solver == solver.rawValue)
            }
        }
    }

    /// The same algorithm whatever the node count: the answers differ only by the rounding of
    /// sums taken in another order (which can move a discrete decision — a line-search trial, an
    /// inner CG step — by one, so the iteration counts may differ a little).
    @Test("a solver's answer is the same on 1, 3 and 4 nodes (to 1e-10)", arguments: [problems[0], problems[3]])
    func sameAnswerAcrossNodeCounts(_ p: Problem) async throws {
        for solver in Self.solvers(for: p) {
            var base = Self.job(p, solver)
            // Tight enough that every run is within 1e-11 of w*, where only rounding separates them
            // (the gradient's own rounding floor is near 1e-13 relative on these problems).
            base.stopping.tolerance = 1e-12
            let single = try await ThreadsBackend().run(base)
            for (kind, nodes) in [(StrategyKind.allReduce, 4), (.mapReduce, 3)] {
                var job = base
                job.strategy.kind = kind
                job.nodes = nodes
                let r = try await ThreadsBackend().run(job)
                let e = relativeError(r.model, single.model)
                #expect(e < 1e-10, "\(solver) on \(p.name), \(kind) × \(nodes): differs from one node by \(e)")
            }
        }
    }

    /// In exact arithmetic CG ends in d steps; in floating point it does on a well-conditioned
    /// problem, and loses orthogonality (a few more steps) as κ grows.
    @Test("cg is exact in at most d rounds (plus its start and its confirmation)", arguments: [5, 12, 30])
    func cgIsExactInDRounds(d: Int) async throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 500, features: d, condition: 2, seed: UInt64(d))))
        job.optimizer.solver = .cg
        job.stopping = StoppingRule(maxIterations: 10 * d, tolerance: 1e-10)
        let r = try await ThreadsBackend().run(job)
        #expect(r.stopReason == .converged)
        #expect(r.iterations <= d, "cg took \(r.iterations) iterations for d = \(d)")
        #expect(try #require(r.relativeDistance) < 1e-8)
        #expect(try #require(r.rounds) <= d + 2)
        // κ(XᵀX) = 400: still within 2d.
        job.data = .synthetic(SyntheticSpec(rows: 500, features: d, condition: 20, seed: UInt64(d)))
        let hard = try await ThreadsBackend().run(job)
        #expect(hard.stopReason == .converged && hard.iterations <= 2 * d, "\(hard.iterations) for d = \(d)")
    }

    @Test("the second-order solvers need far fewer rounds than gradient descent on an ill-conditioned problem")
    func fewerRounds() async throws {
        let p = Self.problems[1]
        var rounds: [SolverKind: Int] = [:]
        for solver in SolverKind.allCases {
            var job = Self.job(p, solver)
            job.stopping.tolerance = 1e-8
            let r = try await ThreadsBackend().run(job)
            #expect(r.stopReason == .converged)
            rounds[solver] = try #require(r.rounds)
        }
        #expect(rounds[.cg]! * 10 < rounds[.gd]!, "\(rounds)")
        #expect(rounds[.nesterov]! * 3 < rounds[.gd]!, "\(rounds)")
        #expect(rounds[.lbfgs]! * 3 < rounds[.gd]!, "\(rounds)")
        #expect(rounds[.newtonCG]! * 10 < rounds[.gd]!, "\(rounds)")
    }

    /// Ring all-reduce, m ranks, d divisible by m: each rank sends 2(m − 1) chunks of d/m entries
    /// per round, so training moves rounds · m · 2(m − 1) · s(d/m) bytes, s the codec's size.
    @Test("training bytes are rounds × the ring's closed form; setup is counted apart", arguments: [2, 4])
    func bytesPerRound(m: Int) async throws {
        let d = 24
        var job = Job(data: .synthetic(SyntheticSpec(rows: 800, features: d, condition: 10, seed: 3)))
        job.strategy.kind = .allReduce
        job.strategy.allReduce = .ring
        job.optimizer.solver = .cg
        job.nodes = m
        let r = try await ThreadsBackend().run(job)
        let rounds = try #require(r.rounds)
        let chunk = CodecSpec.float64.makeCodec().encodedSize(count: d / m)
        #expect(r.trainingBytesSent == rounds * m * 2 * (m - 1) * chunk)
        #expect(r.setupRounds == 0)
        #expect(r.setupBytesSent == 0)
        // gd's 1/L comes from setup rounds, and their bytes are not the training's.
        job.optimizer.solver = .gd
        job.stopping.maxIterations = 5
        let g = try await ThreadsBackend().run(job)
        #expect(try #require(g.setupRounds) > 0)
        #expect(try #require(g.setupBytesSent) > 0)
        #expect(g.trainingBytesSent == 5 * m * 2 * (m - 1) * chunk)
    }

    @Test("Float storage: every solver still reaches w* to single precision")
    func floatStorage() async throws {
        for p in [Self.problems[0], Self.problems[3]] {
            for solver in Self.solvers(for: p) {
                var job = Self.job(p, solver, nodes: 2)
                job.precision = .float32
                job.stopping.tolerance = 1e-5
                let r = try await ThreadsBackend().run(job)
                #expect(try #require(r.relativeDistance) < 1e-3, "\(solver) on \(p.name) in Float")
            }
        }
    }

    @Test("solver settings that cannot work are refused, naming the field", arguments: [
        ("cg on logistic", { @Sendable (j: inout Job) in j.objective = .logistic(lambda: 0.1); j.optimizer.solver = .cg }, "optimizer.solver"),
        ("lbfgs with mini-batches", { @Sendable (j: inout Job) in j.optimizer.solver = .lbfgs; j.optimizer.batchSize = 10 }, "optimizer.batchSize"),
        ("newton-cg with momentum", { @Sendable (j: inout Job) in j.optimizer.solver = .newtonCG; j.optimizer.momentum = 0.5 }, "optimizer.momentum"),
        ("lbfgs on the parameter server", { @Sendable (j: inout Job) in j.optimizer.solver = .lbfgs; j.strategy.kind = .parameterServer }, "optimizer.solver"),
        ("lbfgs memory 0", { @Sendable (j: inout Job) in j.optimizer.solver = .lbfgs; j.optimizer.lbfgs.memory = 0 }, "optimizer.lbfgs.memory"),
    ] as [(String, @Sendable (inout Job) -> Void, String)])
    func refused(_ name: String, _ edit: @Sendable (inout Job) -> Void, _ field: String) throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 100, features: 5)))
        edit(&job)
        #expect(throws: JobError.self, "\(name)") { try job.validate() }
        do { try job.validate() } catch let e as JobError { #expect(e.field == field, "\(name): \(e)") }
    }

    @Test("the default solver: cg for least squares, lbfgs for logistic, gd where the job asks for gd's settings")
    func defaults() {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 100, features: 5)))
        #expect(job.effectiveSolver == .cg)
        job.objective = .logistic(lambda: 0.1)
        #expect(job.effectiveSolver == .lbfgs)
        job.optimizer.learningRate = .fixed(0.1)
        #expect(job.effectiveSolver == .gd)
        job.optimizer.learningRate = .auto
        job.strategy.kind = .gossip
        #expect(job.effectiveSolver == .gd)
    }
}
