import ArgumentParser
import Shardwise
import ShardwiseThreads

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Train the built-in problem with every strategy, side by side, against LAPACK."
    )

    @Option(help: ArgumentHelp("The problem.", valueName: "spec"))
    var synthetic = JobOptions.defaultSynthetic

    @Option(help: "Nodes for the distributed strategies.")
    var nodes = 4

    @Option(help: "Maximum iterations per run.")
    var iterations = 2000

    /// The demo's job, before its variants: the core's rules decide, the flags are named.
    func baseJob() throws -> Job {
        let spec: SyntheticSpec
        do { spec = try SyntheticSpec(parsing: synthetic) } catch let error as JobError {
            throw ValidationError("--synthetic \(synthetic): \(error.message)")
        }
        var base = Job(data: .synthetic(spec))
        base.stopping = StoppingRule(maxIterations: iterations, tolerance: 1e-9)
        // The strategy table compares strategies under one update rule, gradient descent; the
        // solver table below compares the rules.
        base.optimizer.solver = .gd
        var distributed = base
        distributed.nodes = nodes
        do {
            try base.validate()
            try distributed.validate()
        } catch let error as JobError {
            let flag = error.field.hasPrefix("data") ? "--synthetic \(synthetic)"
                : error.field == "nodes" ? "--nodes \(nodes)" : error.field.hasPrefix("stopping") ? "--iterations \(iterations)" : error.field
            throw ValidationError("\(flag): \(error.message)")
        }
        return base
    }

    func validate() throws { _ = try baseJob() }

    func run() async throws {
        let base = try baseJob()
        guard case .synthetic(let spec) = base.data else { return }
        let problem = try PreparedProblem<Double>(job: base)
        print("problem     \(spec): \(spec.rows) rows × \(spec.features) features, least squares")
        print("reference   LAPACK QR (dgels) in \(formatSeconds(problem.setupSeconds)), L(w*) = \(fmt(problem.optimalLoss ?? .nan))")
        print("")

        var runs: [(String, Job)] = [("gradient descent, 1 node", base)]
        func variant(_ name: String, _ edit: (inout Job) -> Void) {
            var j = base
            j.nodes = nodes
            edit(&j)
            runs.append((name, j))
        }
        variant("mapreduce") { $0.strategy.kind = .mapReduce }
        variant("allreduce ring") { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .ring }
        variant("allreduce reduce-broadcast") { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .reduceBroadcast }
        variant("allreduce all-to-all") { $0.strategy.kind = .allReduce; $0.strategy.allReduce = .allToAll }
        variant("allreduce ring, float32") { $0.strategy.kind = .allReduce; $0.codec = .float32 }
        variant("ps, staleness 0") { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = 0 }
        variant("ps, async") { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = nil }
        variant("ps, async, each") { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = nil; $0.strategy.parameterServer.update = .each }
        variant("hogwild") { $0.strategy.kind = .hogwild }
        variant("gossip ring") { $0.strategy.kind = .gossip; $0.strategy.gossip.topology = .ring }
        variant("gossip complete") { $0.strategy.kind = .gossip; $0.strategy.gossip.topology = .complete }

        var table = TextTable(["strategy", "nodes", "iterations", "stop", "wall time", "bytes moved", "|w−w*|/|w*|", "L − L*"])
        let backend = ThreadsBackend()
        for (name, job) in runs {
            let p = try PreparedProblem<Double>(job: job, dataset: problem.dataset)
            do {
                let r = try await backend.run(problem: p)
                table.add([name, "\(job.nodes)", "\(r.iterations)", r.stopReason.rawValue, formatSeconds(r.seconds),
                           formatBytes(r.totalBytesSent), fmt(r.relativeDistance ?? .nan),
                           fmt(r.finalLoss - (r.optimalLoss ?? .nan))])
            } catch {
                table.add([name, "\(job.nodes)", "—", "failed", "—", "—", "—", "\(error)"])
            }
        }
        print(table.render())
        print("")
        print("Every run starts from w = 0 with step 1/L (Lanczos) and stops when |∇L| ≤ 1e-9·|∇L(0)|.")
        print("")
        try await solverTable(base: base, spec: spec, dataset: problem.dataset)
        print("")
        try await sparseTable()
        print("")
        print("Try: shardwise train --nodes 4 --strategy ps --staleness 2   |   shardwise simulate --nodes 1,2,4,…,1024")
    }

    /// Sparse (CSR) data: a Zipf-distributed generated problem, never densified, trained by a
    /// synchronous solver, by Hogwild and by the asynchronous parameter server. Both asynchronous
    /// strategies still move dense d-vectors (Hogwild updates every coordinate of w, the server
    /// pushes and pulls all d): nonzero-only updates are a later step, and the labels say so.
    func sparseTable() async throws {
        let spec = SparseSyntheticSpec(rows: 20_000, features: 10_000, nonzerosPerRow: 10, zipf: 1, seed: 1)
        var base = Job(data: .sparseSynthetic(spec))
        base.stopping = StoppingRule(maxIterations: iterations, tolerance: 1e-9)
        base.objective = .ridge(lambda: 1e-3)
        base.nodes = nodes
        let problem = try PreparedProblem<Double>(job: base)
        guard case .sparse(let data) = problem.data else { return }
        print("sparse      \(spec): \(data.x.nonzeroCount) nonzeros, CSR \(formatBytes(data.x.bytes)) (dense would be "
              + "\(formatBytes(spec.rows * spec.features * 8))), ridge λ = 1e-3; reference by CG on the normal equations")
        var table = TextTable(["sparse run", "nodes", "iterations", "stop", "wall time", "bytes moved", "|w−w*|/|w*|", "L − L*"])
        let backend = ThreadsBackend()
        let runs: [(String, (inout Job) -> Void)] = [
            ("allreduce cg (CSR shards)", { $0.strategy.kind = .allReduce; $0.optimizer.solver = .cg }),
            ("hogwild (CSR, dense-vector updates)", { $0.strategy.kind = .hogwild; $0.optimizer.solver = .gd }),
            ("ps async (CSR, dense push/pull)", { $0.strategy.kind = .parameterServer; $0.strategy.parameterServer.staleness = nil; $0.optimizer.solver = .gd }),
        ]
        for (name, edit) in runs {
            var job = base
            edit(&job)
            do {
                let r = try await backend.run(problem: PreparedProblem<Double>(job: job, data: problem.data))
                table.add([name, "\(job.nodes)", "\(r.iterations)", r.stopReason.rawValue, formatSeconds(r.seconds),
                           formatBytes(r.totalBytesSent), fmt(r.relativeDistance ?? .nan), fmt(r.finalLoss - (r.optimalLoss ?? .nan))])
            } catch {
                table.add([name, "\(job.nodes)", "—", "failed", "—", "—", "—", "\(error)"])
            }
        }
        print(table.render())
    }

    /// Every solver on allreduce (ring) over the demo's nodes: least squares on the demo problem,
    /// and logistic regression (λ = 1e-3) on its classification twin. Rounds are what a solver
    /// costs on a network: each is one all-reduce; setup rounds (gd's and nesterov's step size)
    /// are shown apart.
    func solverTable(base: Job, spec: SyntheticSpec, dataset: Dataset<Double>) async throws {
        var classification = spec
        classification.classification = true
        var logistic = Job(data: .synthetic(classification))
        logistic.objective = .logistic(lambda: 1e-3)
        logistic.stopping = base.stopping
        let logisticProblem = try PreparedProblem<Double>(job: logistic)
        var table = TextTable(["solver or strategy", "objective", "iterations", "rounds (+setup)", "training bytes", "wall time",
                               "|w−w*|/|w*|", "L − L*"])
        let backend = ThreadsBackend()
        for (objective, template, data) in [(Objective.leastSquares, base, dataset), (logistic.objective, logistic, logisticProblem.dataset)] {
            func row(_ name: String, _ job: Job) async {
                do {
                    let r = try await backend.run(problem: try PreparedProblem<Double>(job: job, dataset: data))
                    table.add([name, objective.name, "\(r.iterations)", "\(r.rounds ?? 0) (+\(r.setupRounds ?? 0))",
                               formatBytes(r.trainingBytesSent ?? r.totalBytesSent), formatSeconds(r.seconds),
                               fmt(r.relativeDistance ?? .nan), fmt(r.finalLoss - (r.optimalLoss ?? .nan))])
                } catch {
                    table.add([name, objective.name, "—", "—", "—", "—", "—", "\(error)"])
                }
            }
            for solver in SolverKind.allCases where solver.supports(objective) {
                var job = template
                job.nodes = nodes
                job.strategy.kind = .allReduce
                job.optimizer.solver = solver
                await row(solver.rawValue, job)
            }
            // The communication-efficient strategies: what they send instead of T rounds of d numbers.
            let strategies: [StrategyKind] = objective.link == .identity ? [.gram, .oneShot, .localSGD] : [.oneShot, .localSGD, .cocoa]
            for kind in strategies {
                var job = template
                job.nodes = nodes
                job.strategy.kind = kind
                job.optimizer.solver = nil
                await row(kind.rawValue, job)
            }
        }
        print("Solvers: allreduce (ring) on \(nodes) nodes; a round is one all-reduce of d numbers (d + 1 with the loss).")
        print(table.render())
    }
}
