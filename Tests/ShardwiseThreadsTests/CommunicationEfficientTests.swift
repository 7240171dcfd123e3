import Foundation
@testable import Shardwise
import ShardwiseThreads
import Testing
import _TestSupport

/// The communication-efficient strategies (gram, one-shot, local-sgd, cocoa) on the threads backend,
/// each held to an independent reference: LAPACK's w*, Newton's logistic optimum, synchronous
/// gradient descent, or the duality gap's own guarantee.
@Suite("Communication-efficient strategies on threads", .serialized)
struct CommunicationEfficientTests {
    /// n = 4000, d = 20, well conditioned (regression).
    static let regression: PreparedProblem<Double> = {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 4000, features: 20)))
        job.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-9)
        return try! PreparedProblem<Double>(job: job)
    }()

    /// n = 4000, d = 10, 0/1 labels from the logistic model.
    static let classification: PreparedProblem<Double> = {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 4000, features: 10, noise: 0, condition: 3, seed: 11,
                                                     classification: true)))
        job.objective = .logistic(lambda: 0.01)
        job.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-9)
        return try! PreparedProblem<Double>(job: job)
    }()

    static func problem(_ base: PreparedProblem<Double>, _ kind: StrategyKind, nodes: Int,
                        _ edit: (inout Job) -> Void = { _ in }) throws -> PreparedProblem<Double> {
        var job = base.job
        job.nodes = nodes
        job.strategy.kind = kind
        edit(&job)
        return try PreparedProblem<Double>(job: job, dataset: base.dataset)
    }

    /// Runs `problem` on the threads backend and returns every node's outcome with the report
    /// built from them (the outcomes carry what the report does not, such as CoCoA's gaps).
    static func outcomes(_ problem: PreparedProblem<Double>) async throws -> ([NodeOutcome], TrainingReport) {
        let strategy = problem.job.strategy.kind.makeStrategy()
        let outcomes = try await BLASThreading.withOneThread {
            try await ThreadsBackend.spmd(size: problem.job.nodes, timeout: problem.job.timeout) { comm in
                try await strategy.run(problem.node(comm: comm))
            }
        }
        return (outcomes, problem.report(outcomes: outcomes, backend: "threads", seconds: 0))
    }

    /// Bytes the ranks send, in total, for one ring all-reduce of `count` float64 numbers.
    static func ringAllReduceBytes(count: Int, nodes: Int) async throws -> Int {
        let sent = try await ThreadsBackend.spmd(size: nodes) { comm in
            var v = [Double](repeating: 1, count: count)
            try await comm.allReduce(&v, algorithm: .ring, codec: CodecSpec.float64.makeCodec())
            return comm.metrics.snapshot.bytesSent
        }
        return sent.reduce(0, +)
    }

    // MARK: - Sorted partitioning

    @Test("--partition sorted cuts the rows sorted by target into balanced shards")
    func sortedPartitioning() throws {
        #expect(try Partitioning(parsing: "sorted") == .sorted)
        let data = Self.regression.dataset
        let shards = try data.shards(4, partitioning: .sorted)
        #expect(shards.map(\.rows) == [1000, 1000, 1000, 1000])
        for k in 0..<3 { #expect(shards[k].y.max()! <= shards[k + 1].y.min()!) }
        // The same multiset of rows: every (row, target) of the data is in some shard.
        let all = shards.flatMap { s in (0..<s.rows).map { i in s.x[i, 0] * 1e6 + s.y[s.y.startIndex + i] } }.sorted()
        let original = (0..<data.rows).map { i in data.x[i, 0] * 1e6 + data.y[i] }.sorted()
        #expect(all == original)
        // PreparedProblem sorts once; its shards are then views of its (sorted) dataset.
        let p = try Self.problem(Self.regression, .oneShot, nodes: 4) { $0.partitioning = .sorted }
        #expect(p.dataset.isSortedByTarget)
        #expect(p.shards.map(\.range) == [0..<1000, 1000..<2000, 2000..<3000, 3000..<4000])
        #expect(isClose(p.optimalLoss!, Self.regression.optimalLoss!, relative: 1e-12))
    }

    // MARK: - Gram (normal equations)

    @Test("gram: one round, the LAPACK solution to 1e-8", arguments: ["least-squares", "ridge"], [1, 3, 4])
    func gramExact(_ which: String, nodes: Int) async throws {
        let p = try Self.problem(Self.regression, .gram, nodes: nodes) { if which == "ridge" { $0.objective = .ridge(lambda: 0.05) } }
        let r = try await ThreadsBackend().run(problem: p)
        // The reference is LAPACK's QR on the whole X (`LeastSquares.solve`), computed independently.
        #expect(relativeError(r.model, r.reference!) < 1e-8, "\(which) on \(nodes): \(relativeError(r.model, r.reference!))")
        #expect(r.iterations == 1 && r.stopReason == .completed)
        #expect(r.trace.map(\.iteration) == [0, 1])
        for node in r.perNode { #expect(node.iterations == 1) }
    }

    @Test("gram: the bytes are one all-reduce of d² + d float64 numbers, whatever the codec, unless asked")
    func gramBytes() async throws {
        let d = Self.regression.dataset.features
        let exact = try await Self.ringAllReduceBytes(count: d * d + d, nodes: 4)
        let f64 = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .gram, nodes: 4))
        let f32 = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .gram, nodes: 4) { $0.codec = .float32 })
        #expect(f64.totalBytesSent == exact)
        #expect(f32.totalBytesSent == exact)
        #expect(f32.model == f64.model)
        let compressed = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .gram, nodes: 4) {
            $0.codec = .float32
            $0.strategy.gram.useJobCodec = true
        })
        #expect(compressed.totalBytesSent < exact * 6 / 10)
        #expect(compressed.relativeDistance! < 1e-4 && compressed.relativeDistance! > 1e-12)
    }

    @Test("gram on float32 storage accumulates XᵀX in float64")
    func gramFloat() async throws {
        var job = Self.regression.job
        job.precision = .float32
        job.nodes = 3
        job.strategy.kind = .gram
        let r = try await ThreadsBackend().run(job)
        // w* is solved on the float32 data widened: what is left is the model's own float32
        // rounding (2⁻²⁴ ≈ 6e-8); a float32 Gram would add κ(X)²·2⁻²⁴·√n_k on top.
        #expect(r.relativeDistance! < 1e-6, "\(r.relativeDistance!)")
    }

    @Test("gram: a singular Gram matrix (λ = 0, a repeated column) fails suggesting ridge; ridge solves it")
    func gramSingular() async throws {
        let base = Self.regression.dataset
        let d = base.features
        // Column d is column 0 again.
        let x = Matrix<Double>(rows: base.rows, columns: d + 1) { i, j in base.x[i, j == d ? 0 : j] }
        let data = Dataset(x: x, y: base.y)
        var job = Self.regression.job
        job.nodes = 4
        job.strategy.kind = .gram
        let singular = try PreparedProblem<Double>(job: job, dataset: data)
        do {
            _ = try await ThreadsBackend().run(problem: singular)
            Issue.record("a singular Gram matrix was solved")
        } catch let error as GramError {
            guard case .notPositiveDefinite(_, 0) = error else { Issue.record("\(error)"); return }
            #expect("\(error)".contains("ridge") && "\(error)".contains("--lambda"))
        }
        job.objective = .ridge(lambda: 1e-3)
        let ridge = try await ThreadsBackend().run(problem: PreparedProblem<Double>(job: job, dataset: data))
        #expect(relativeError(ridge.model, ridge.reference!) < 1e-8)
    }

    @Test("gram refuses logistic regression, naming strategy.kind")
    func gramLogistic() throws {
        var job = Self.classification.job
        job.strategy.kind = .gram
        #expect(throws: JobError.self) { try job.validate() }
        do { try job.validate() } catch let error as JobError {
            #expect(error.field == "strategy.kind")
            #expect(error.message.contains("logistic"))
        }
        job = Self.regression.job
        job.strategy.kind = .gram
        job.strategy.gram.useJobCodec = true
        job.codec = .topK(fraction: 0.1)
        do { try job.validate(); Issue.record("top-k for the Gram matrix was accepted") } catch let error as JobError {
            #expect(error.field == "codec")
        }
    }

    // MARK: - One-shot averaging

    @Test("one-shot on one node is the exact solution", arguments: ["ridge", "logistic"])
    func oneShotSingleNode(_ which: String) async throws {
        let base = which == "ridge" ? Self.regression : Self.classification
        let p = try Self.problem(base, .oneShot, nodes: 1) { if which == "ridge" { $0.objective = .ridge(lambda: 0.01) } }
        let r = try await ThreadsBackend().run(problem: p)
        #expect(r.relativeDistance! < 1e-12, "\(which): \(r.relativeDistance!)")
        #expect(r.iterations == 1)
        #expect(r.stopReason == .completed)
    }

    @Test("one-shot on 4 IID shards is close to w* but not exact; sorted shards bias it", arguments: ["least-squares", "logistic"])
    func oneShotFourNodes(_ which: String) async throws {
        let base = which == "logistic" ? Self.classification : Self.regression
        let iid = try await ThreadsBackend().run(problem: Self.problem(base, .oneShot, nodes: 4))
        let sorted = try await ThreadsBackend().run(problem: Self.problem(base, .oneShot, nodes: 4) { $0.partitioning = .sorted })
        #expect(iid.relativeDistance! < 0.05, "IID: \(iid.relativeDistance!)")
        #expect(iid.relativeDistance! > 1e-6, "IID one-shot is not the exact solution: \(iid.relativeDistance!)")
        #expect(iid.finalLoss > iid.optimalLoss!)
        if which == "least-squares" {
            #expect(sorted.relativeDistance! > 5 * iid.relativeDistance!, "sorted \(sorted.relativeDistance!) vs IID \(iid.relativeDistance!)")
        }
        // One round: one all-reduce of d numbers and nothing else.
        #expect(iid.iterations == 1)
        let bytes = try await Self.ringAllReduceBytes(count: base.dataset.features, nodes: 4)
        #expect(iid.totalBytesSent == bytes)
    }

    @Test("one-shot weights: uniform and by rows agree on balanced shards, differ on skewed ones")
    func oneShotWeighting() async throws {
        func run(_ w: OneShotOptions.Weighting, _ p: Partitioning) async throws -> TrainingReport {
            try await ThreadsBackend().run(problem: Self.problem(Self.regression, .oneShot, nodes: 3) {
                $0.strategy.oneShot.weighting = w
                $0.partitioning = p
            })
        }
        let (rows, uniform) = (try await run(.rows, .balanced), try await run(.uniform, .balanced))
        // 4000 rows in 3 shards: 1334, 1333, 1333 — nearly, not exactly, uniform.
        #expect(relativeError(rows.model, uniform.model) < 1e-3)
        let (skewRows, skewUniform) = (try await run(.rows, .skewed(ratio: 8)), try await run(.uniform, .skewed(ratio: 8)))
        #expect(relativeError(skewRows.model, skewUniform.model) > 1e-4)
    }

    // MARK: - Local SGD

    @Test("local SGD with H = 1 and full batches is synchronous gradient descent (to 1e-10)", arguments: [1, 4])
    func localSGDOneStep(nodes: Int) async throws {
        func edit(_ job: inout Job) {
            job.stopping = StoppingRule(maxIterations: 150, tolerance: 0)
            job.strategy.localSGD.localSteps = 1
            job.optimizer.solver = .gd   // allreduce's solver, which local SGD with H = 1 is
        }
        let sync = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .allReduce, nodes: nodes, edit))
        let local = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .localSGD, nodes: nodes, edit))
        #expect(relativeError(local.model, sync.model) < 1e-10, "\(relativeError(local.model, sync.model))")
        #expect(local.iterations == sync.iterations)
        // The same stopping decision: with a tolerance both stop at the same iteration.
        func converging(_ job: inout Job) { job.stopping = StoppingRule(maxIterations: 2000, tolerance: 1e-6); job.strategy.localSGD.localSteps = 1
            job.optimizer.solver = .gd }
        let a = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .allReduce, nodes: nodes, converging))
        let b = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .localSGD, nodes: nodes, converging))
        #expect(a.stopReason == .converged && b.stopReason == .converged)
        #expect(a.iterations == b.iterations)
    }

    @Test("local SGD: one round of H steps costs one all-reduce of d numbers")
    func localSGDBytes() async throws {
        func bytes(_ rounds: Int) async throws -> Int {
            try await ThreadsBackend().run(problem: Self.problem(Self.regression, .localSGD, nodes: 4) {
                $0.stopping = StoppingRule(maxIterations: rounds, tolerance: 0)
                $0.strategy.localSGD.localSteps = 7
            }).totalBytesSent
        }
        let perRound = (try await bytes(20) - (try await bytes(10))) / 10
        #expect(perRound == (try await Self.ringAllReduceBytes(count: 20, nodes: 4)))
    }

    @Test("local SGD drifts on sorted shards: with H = 50 it ends farther from w* than on IID shards", arguments: [4])
    func localSGDDrift(nodes: Int) async throws {
        func run(_ p: Partitioning) async throws -> TrainingReport {
            try await ThreadsBackend().run(problem: Self.problem(Self.regression, .localSGD, nodes: nodes) {
                $0.partitioning = p
                $0.strategy.localSGD.localSteps = 50
                $0.stopping = StoppingRule(maxIterations: 100, tolerance: 0)
            })
        }
        let iid = try await run(.balanced), sorted = try await run(.sorted)
        #expect(iid.relativeDistance! < 1e-2, "IID: \(iid.relativeDistance!)")
        #expect(sorted.relativeDistance! > 5 * iid.relativeDistance!, "sorted \(sorted.relativeDistance!) vs IID \(iid.relativeDistance!)")
        // The drift is the local steps', not the partition's: with H = 1 the sorted shards reach w*.
        let synchronous = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .localSGD, nodes: nodes) {
            $0.partitioning = .sorted
            $0.strategy.localSGD.localSteps = 1
            $0.stopping = StoppingRule(maxIterations: 1000, tolerance: 1e-10)
        })
        #expect(synchronous.relativeDistance! < 1e-6, "H = 1 on sorted shards: \(synchronous.relativeDistance!)")
    }

    @Test("local SGD with mini-batches gets close to w*")
    func localSGDMiniBatch() async throws {
        let r = try await ThreadsBackend().run(problem: Self.problem(Self.regression, .localSGD, nodes: 3) {
            $0.optimizer.batchSize = 100
            $0.optimizer.learningRate = .fixed(0.1)
            $0.stopping = StoppingRule(maxIterations: 200, tolerance: 0)
        })
        #expect(r.relativeDistance! < 0.05, "\(r.relativeDistance!)")
    }

    // MARK: - CoCoA+

    @Test("cocoa: the duality gap is ≥ 0, falls, and certifies L(w) − L(w*)",
          arguments: ["ridge", "logistic"], [1, 4])
    func cocoaCertificate(_ which: String, nodes: Int) async throws {
        let base = which == "ridge" ? Self.regression : Self.classification
        let epsilon = 1e-8
        let p = try Self.problem(base, .cocoa, nodes: nodes) {
            if which == "ridge" { $0.objective = .ridge(lambda: 0.01) }
            $0.strategy.cocoa.gapTolerance = epsilon
        }
        let (outcomes, report) = try await Self.outcomes(p)
        let gaps = try #require(outcomes[0].dualityGaps)
        #expect(report.stopReason == .converged, "\(which) on \(nodes): \(gaps.last!) after \(report.iterations)")
        #expect(gaps.count == report.iterations + 1)
        #expect(gaps.allSatisfy { $0 >= 0 }, "\(gaps.filter { $0 < 0 })")
        #expect(gaps.last! <= epsilon)
        #expect(gaps.last! < 1e-6 * gaps[0])
        // Falls: every gap at most the first, and each tenth of the run lower than the one before.
        let marks = stride(from: 0, to: gaps.count, by: max(1, gaps.count / 10)).map { gaps[$0] }
        #expect(zip(marks, marks.dropFirst()).allSatisfy { $1 < $0 }, "\(marks)")
        // The certificate: P(w) − P(w*) ≤ gap, with P(w*) from LAPACK (ridge) or Newton (logistic).
        let suboptimality = report.finalLoss - report.optimalLoss!
        #expect(suboptimality <= gaps.last! + 1e-14, "\(suboptimality) > \(gaps.last!)")
        #expect(suboptimality > -1e-12)
        #expect(report.relativeDistance! < 1e-3)
        #expect(outcomes[0].notes.contains { $0.contains("duality gap") })
        // Every replica holds the same model.
        for o in outcomes { #expect(o.model == outcomes[0].model) }
    }

    @Test("cocoa: out of rounds, the gap certifies the model returned; averaging is slower than adding")
    func cocoaMaxIterationsAndAggregation() async throws {
        func run(_ a: CoCoAOptions.Aggregation) async throws -> ([Double], TrainingReport) {
            let (o, r) = try await Self.outcomes(Self.problem(Self.regression, .cocoa, nodes: 4) {
                $0.objective = .ridge(lambda: 0.01)
                $0.strategy.cocoa.aggregation = a
                $0.stopping = StoppingRule(maxIterations: 8, tolerance: 0)
            })
            return (o[0].dualityGaps!, r)
        }
        let (adding, r) = try await run(.adding)
        #expect(r.stopReason == .maxIterations && r.iterations == 8 && adding.count == 9)
        #expect(r.finalLoss - r.optimalLoss! <= adding.last! + 1e-14)
        let (averaging, _) = try await run(.averaging)
        #expect(averaging.last! > adding.last!, "averaging \(averaging.last!) vs adding \(adding.last!)")
    }

    /// On one node a round is H passes of plain SDCA, so H passes cut the rounds about H-fold. (On
    /// several nodes of this dense, low-dimensional data σ′ = K is tight and the rounds barely
    /// depend on H — see `CoCoA`'s documentation.)
    @Test("cocoa on one node: more local passes per round, fewer rounds")
    func cocoaLocalPasses() async throws {
        func rounds(_ h: Int) async throws -> Int {
            try await ThreadsBackend().run(problem: Self.problem(Self.regression, .cocoa, nodes: 1) {
                $0.objective = .ridge(lambda: 0.01)
                $0.strategy.cocoa.localPasses = h
                $0.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-8)
            }).iterations
        }
        let one = try await rounds(1), four = try await rounds(4)
        #expect(2 * four < one, "H = 4: \(four) rounds, H = 1: \(one)")
    }

    @Test("the logistic dual coordinate step solves its 1-D equation inside (0, 1)",
          arguments: [(0.0, 3.0, 0.5), (0.2, -2.0, 4.0), (0.9, 40.0, 0.01), (0.0, -40.0, 10.0), (0.5, 0.0, 1e3), (1e-9, 700.0, 1.0)])
    func logisticDualStep(s: Double, margin: Double, curvature: Double) {
        let t = CoCoA.logisticDualStep(s: s, margin: margin, curvature: curvature)
        #expect(t > 0 && t < 1)
        // h(t) = log((1 − t)/t) − m − c(t − s) = 0, checked as a sign change around t.
        func residual(_ u: Double) -> Double { Foundation.log((1 - u) / u) - margin - curvature * (u - s) }
        // Near 1 the representable t are 2⁻⁵³ apart, and h changes by more than that between them.
        let nudge = max(1e-9 * min(t, 1 - t), 2 * t.ulp)
        #expect(residual(t - nudge) >= 0 && residual(t + nudge) <= 0, "t = \(t), h(t) = \(residual(t))")
    }

    // MARK: - Validation

    @Test("bad options and unfit objectives or codecs are refused, naming the field", arguments: [
        ("local-sgd localSteps 0", "strategy.localSGD.localSteps"),
        ("cocoa localPasses 0", "strategy.cocoa.localPasses"),
        ("cocoa gapTolerance -1", "strategy.cocoa.gapTolerance"),
        ("cocoa least-squares", "objective"),
        ("cocoa ridge 0", "objective.ridge.lambda"),
        ("cocoa logistic 0", "objective.logistic.lambda"),
        ("cocoa float32", "codec"),
    ])
    func validation(_ name: String, field: String) throws {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 100, features: 5)))
        job.strategy.kind = name.hasPrefix("cocoa") ? .cocoa : .localSGD
        job.objective = .ridge(lambda: 0.1)
        switch name {
        case "local-sgd localSteps 0": job.strategy.localSGD.localSteps = 0
        case "cocoa localPasses 0": job.strategy.cocoa.localPasses = 0
        case "cocoa gapTolerance -1": job.strategy.cocoa.gapTolerance = -1
        case "cocoa least-squares": job.objective = .leastSquares
        case "cocoa ridge 0": job.objective = .ridge(lambda: 0)
        case "cocoa logistic 0": job.objective = .logistic(lambda: 0)
        default: job.codec = .float32
        }
        #expect(throws: JobError.self) { try job.validate() }
        do { try job.validate() } catch let error as JobError {
            #expect(error.field == field, "\(error)")
        }
    }

    @Test("a job file's strategy options decode with defaults, round-trip, and warn when unused")
    func options() throws {
        let json = #"{"data":{"synthetic":{"_0":{"rows":100,"features":5,"noise":0.1,"condition":3,"seed":1,"intercept":false,"classification":false}}},"#
            + #""strategy":{"kind":"local-sgd","localSGD":{"localSteps":3},"cocoa":{"gapTolerance":1e-6}}}"#
        let job = try Job(json: Data(json.utf8))
        #expect(job.strategy.kind == .localSGD)
        #expect(job.strategy.localSGD.localSteps == 3)
        #expect(job.strategy.cocoa == CoCoAOptions(localPasses: 1, gapTolerance: 1e-6, aggregation: .adding))
        #expect(job.strategy.oneShot == OneShotOptions())
        #expect(try Job(json: JSONEncoder().encode(job)) == job)
        #expect(job.warnings.map(\.field) == ["strategy.cocoa.gapTolerance"])
        let typo = json.replacingOccurrences(of: "localSteps", with: "localStep")
        #expect(throws: JobError.unknownField("strategy.localSGD.localStep")) { _ = try Job(json: Data(typo.utf8)) }
        for kind in ["one-shot", "local-sgd", "cocoa"] { #expect(StrategyKind(rawValue: kind) != nil) }
    }
}
