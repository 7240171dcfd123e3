import Foundation
import Shardwise
import ShardwiseThreads
import Testing
import _TestSupport

/// Sparse (CSR) data end to end on the threads backend: LIBSVM to CSR, nonzero-balanced shards,
/// the sparse kernels under every gradient strategy, the Krylov reference, scaling without
/// centring, and the refusals of the strategies that need dense rows.
@Suite("Sparse training on threads", .serialized)
struct SparseTrainingTests {
    static let directory: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shardwise-sparse-\(getpid())").path
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// 4 000 rows × 50 000 columns, 20 nonzeros a row, labels −1/+1.
    static let wide: String = try! TestData.writeLIBSVM(path: directory + "/wide.svm", rows: 4000, columns: 50_000,
                                                        nonzerosPerRow: 20, seed: 13)
    /// The same generator, small enough to densify: 800 × 300.
    static let narrow: String = try! TestData.writeLIBSVM(path: directory + "/narrow.svm", rows: 800, columns: 300,
                                                          nonzerosPerRow: 20, seed: 14)

    static func logisticJob(_ path: String, nodes: Int, lambda: Double = 1e-4) -> Job {
        var job = Job(data: .file(path: path, format: nil, target: nil))
        job.objective = .logistic(lambda: lambda)
        job.nodes = nodes
        job.strategy.kind = .allReduce
        job.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-10)
        return job
    }

    @Test("a 50 000-column LIBSVM file trains logistic regression as CSR on 3 threads to the sparse Newton reference (1e-6)")
    func wideLogisticOnThreads() async throws {
        let job = Self.logisticJob(Self.wide, nodes: 3)
        #expect(job.isSparseData)
        let problem = try PreparedProblem<Double>(job: job)
        guard case .sparse(let data) = problem.data else { Issue.record("LIBSVM did not load as CSR"); return }
        #expect(data.features == 50_000)
        // Shards balanced by nonzeros, views of the one CSR.
        let allSparse = problem.shards.allSatisfy { $0.isSparse }
        #expect(allSparse)
        let counts = problem.shards.map { shard -> Int in
            guard case .sparse(let x) = shard.design else { return -1 }
            return x.nonzeroCount
        }
        let ranges = try NonzeroPartitioner.ranges(rowOffsets: data.x.rowOffsets, shards: 3)
        #expect(counts == NonzeroPartitioner.nonzeros(rowOffsets: data.x.rowOffsets, ranges: ranges))
        let report = try await ThreadsBackend().run(problem: problem)
        let d = try #require(report.relativeDistance)
        #expect(d < 1e-6, "|w − w*|/|w*| = \(d) after \(report.iterations) (\(report.stopReason))")
        #expect(report.notes.contains { $0.contains("−1/+1 mapped to 0/1") })
        #expect(report.notes.contains { $0.contains("reference w*: Newton-CG") })
        // The reference is a minimiser: its gradient on the whole data vanishes (checked by a naive loop).
        let w = try #require(problem.reference)
        let (g, _) = naiveSparseGradientSum(x: data.x.view, y: data.y[...], link: .logistic, w: w)
        let gradient = zip(g, w).map { $0 / Double(data.rows) + 1e-4 * $1 }
        #expect(euclideanNorm(gradient) < 1e-10)
    }

    @Test("on data small enough to densify, sparse training and the Krylov reference match the dense run and LAPACK/dense Newton")
    func narrowMatchesDense() async throws {
        for (objective, tolerance) in [(Objective.logistic(lambda: 1e-3), 1e-8), (.ridge(lambda: 1e-2), 1e-10)] {
            var sparseJob = Self.logisticJob(Self.narrow, nodes: 3)
            sparseJob.objective = objective
            sparseJob.stopping.tolerance = 1e-12
            var denseJob = sparseJob
            denseJob.dense = true
            let sparse = try PreparedProblem<Double>(job: sparseJob)
            let dense = try PreparedProblem<Double>(job: denseJob)
            #expect(sparse.data.isSparse && !dense.data.isSparse)
            #expect(relativeError(try #require(sparse.reference), try #require(dense.reference)) < tolerance,
                    "\(objective): Krylov reference vs LAPACK")
            #expect(dense.notes.contains { $0.contains("LAPACK") || $0.contains("Newton with LAPACK") })
            let a = try await ThreadsBackend().run(problem: sparse)
            let b = try await ThreadsBackend().run(problem: dense)
            #expect(a.relativeDistance! < 1e-6 && b.relativeDistance! < 1e-6, "\(objective)")
            #expect(relativeError(a.model, b.model) < 1e-6, "\(objective): sparse vs dense training")
        }
    }

    /// A sparse least-squares problem and its dense twin (the same numbers, `dense`).
    static let leastSquares: (sparse: PreparedProblem<Double>, dense: PreparedProblem<Double>) = {
        var job = Job(data: .sparseSynthetic(SparseSyntheticSpec(rows: 3000, features: 120, nonzerosPerRow: 12, zipf: 0.8, seed: 5)))
        job.stopping = StoppingRule(maxIterations: 400, tolerance: 1e-13)
        var dense = job
        dense.dense = true
        return (try! PreparedProblem<Double>(job: job), try! PreparedProblem<Double>(job: dense))
    }()

    @Test("least squares on sparse and on the same data dense give the same answer to 1e-10",
          arguments: [StrategyKind.mapReduce, .allReduce], [SolverKind.cg, .lbfgs])
    func leastSquaresSparseEqualsDense(kind: StrategyKind, solver: SolverKind) async throws {
        let (sparse, dense) = Self.leastSquares
        #expect(relativeError(sparse.reference!, dense.reference!) < 1e-10, "CG reference vs LAPACK")
        #expect(sparse.notes.contains { $0.contains("conjugate gradients on the normal equations") })
        func run(_ p: PreparedProblem<Double>) async throws -> TrainingReport {
            var job = p.job
            job.nodes = 3
            job.strategy.kind = kind
            job.optimizer.solver = solver
            return try await ThreadsBackend().run(problem: PreparedProblem<Double>(job: job, data: p.data))
        }
        let a = try await run(sparse), b = try await run(dense)
        #expect(relativeError(a.model, b.model) < 1e-10, "\(kind) \(solver): sparse vs dense")
        #expect(a.relativeDistance! < 1e-10)
    }

    /// Least squares on the narrow file (20 nonzeros in every row, so the nonzero-balanced cut into
    /// 2 shards is the row-balanced one) and its dense twin: the same shards, the same rows.
    static let twins: (sparse: PreparedProblem<Double>, dense: PreparedProblem<Double>) = {
        var job = Job(data: .file(path: narrow, format: nil, target: nil))
        job.objective = .ridge(lambda: 1e-2)
        job.nodes = 2
        job.stopping = StoppingRule(maxIterations: 3000, tolerance: 1e-10)
        var dense = job
        dense.dense = true
        return (try! PreparedProblem<Double>(job: job), try! PreparedProblem<Double>(job: dense))
    }()

    static func runTwins(_ edit: (inout Job) -> Void) async throws -> (sparse: TrainingReport, dense: TrainingReport) {
        var a = twins.sparse.job, b = twins.dense.job
        edit(&a)
        edit(&b)
        #expect(twins.sparse.shards.map(\.range) == twins.dense.shards.map(\.range))
        return (try await ThreadsBackend().run(problem: PreparedProblem<Double>(job: a, data: twins.sparse.data)),
                try await ThreadsBackend().run(problem: PreparedProblem<Double>(job: b, data: twins.dense.data)))
    }

    @Test("the parameter server, gossip and local SGD on sparse shards give the dense run's model (dense d-vectors)",
          arguments: [StrategyKind.parameterServer, .gossip, .localSGD])
    func otherStrategies(kind: StrategyKind) async throws {
        let (a, b) = try await Self.runTwins { job in
            job.strategy.kind = kind
            job.stopping.maxIterations = 300
            if kind == .parameterServer { job.strategy.parameterServer.staleness = 0 }
        }
        #expect(a.iterations == b.iterations)
        #expect(relativeError(a.model, b.model) < 1e-9, "\(kind): sparse vs dense")
    }

    @Test("Hogwild runs on sparse shards (dense-vector updates) and nears w*")
    func hogwild() async throws {
        let (a, _) = try await Self.runTwins { $0.strategy.kind = .hogwild }
        #expect(a.relativeDistance! < 1e-2, "hogwild: \(a.relativeDistance!) after \(a.iterations)")
    }

    @Test("mini-batches on sparse shards follow the dense mini-batch run (same rows, same steps)")
    func miniBatchesMatchDense() async throws {
        let (a, b) = try await Self.runTwins { job in
            job.strategy.kind = .allReduce
            job.optimizer.solver = .gd
            job.optimizer.batchSize = 64
            job.optimizer.learningRate = .fixed(0.05)
            job.stopping = StoppingRule(maxIterations: 200, tolerance: 0)
        }
        #expect(relativeError(a.model, b.model) < 1e-10)
    }

    @Test("standardisation on sparse data scales columns to unit RMS without centring, and says so")
    func scalingWithoutCentring() async throws {
        var job = Self.leastSquares.sparse.job
        job.standardize = true
        job.nodes = 2
        let problem = try PreparedProblem<Double>(job: job)
        guard case .sparse(let scaled) = problem.data, case .sparse(let raw) = Self.leastSquares.sparse.data else {
            Issue.record("standardised sparse data is no longer CSR"); return
        }
        // The same nonzeros (no centring fills a zero), each column's RMS 1 (naive sums).
        #expect(scaled.x.rowOffsets == raw.x.rowOffsets && scaled.x.columnIndices == raw.x.columnIndices)
        var squares = [Double](repeating: 0, count: raw.features)
        for (j, v) in zip(scaled.x.columnIndices, scaled.x.values) { squares[Int(j)] += v * v }
        for s in squares where s > 0 { #expect(abs(s / Double(raw.rows) - 1) < 1e-12) }
        let s = try #require(problem.standardization)
        #expect(s.means.allSatisfy { $0 == 0 } && s.targetMean == 0)
        let report = try await ThreadsBackend().run(problem: problem)
        #expect(report.notes.contains { $0.contains("without centring") })
        // Scaling columns does not change the least-squares fit: back on the original scale it is w*.
        let original = try #require(report.originalScaleModel)
        #expect(original.count == raw.features)
        #expect(relativeError(original, Self.leastSquares.sparse.reference!) < 1e-8)
    }

    @Test("the sparse synthetic spec parses from text, is deterministic, and survives a job file")
    func syntheticSpec() throws {
        let text = "n=500,d=2000,nnz=8,zipf=1.1,seed=3,task=classification"
        let a = try SparseSyntheticSpec(parsing: text), b = try SparseSyntheticSpec(parsing: text)
        #expect(SparseSyntheticSpec.describesSparse(text) && !SparseSyntheticSpec.describesSparse("n=5,d=2"))
        #expect(a == b && a.rows == 500 && a.features == 2000 && a.nonzerosPerRow == 8 && a.zipf == 1.1 && a.classification)
        let x: SparseDataset<Double> = try a.generate(), y: SparseDataset<Double> = try b.generate()
        #expect(x.x == y.x && x.y == y.y)
        var other = a
        other.seed = 4
        let changed = try other.generate(Double.self)
        #expect(changed.x != x.x)
        let job = Job(data: .sparseSynthetic(a))
        #expect(try Job(json: JSONEncoder().encode(job)) == job)
        #expect(throws: JobError.self) { try SparseSyntheticSpec(parsing: "n=5,nnz=2") }
        #expect(throws: JobError.self) { try SparseSyntheticSpec(parsing: "n=5,d=10,nnz=0") }
    }

    @Test("strategies that need dense rows refuse sparse data, naming themselves and why",
          arguments: [StrategyKind.gram, .oneShot, .cocoa])
    func refusals(kind: StrategyKind) throws {
        var job = Self.logisticJob(Self.narrow, nodes: 2, lambda: 0.1)
        job.objective = .ridge(lambda: 0.1)
        job.strategy.kind = kind
        do {
            try job.validate()
            Issue.record("\(kind) accepted sparse data")
        } catch let error as JobError {
            #expect(error.description.contains("strategy.kind"))
            #expect(error.description.contains("\(kind) does not run on sparse data"))
        }
        job.dense = true
        try job.validate()   // densified, it runs
    }

    @Test("sparse data refuses skewed and sorted partitioning, and an .npz without targets")
    func otherRefusals() throws {
        for partitioning in [Partitioning.skewed(ratio: 4), .sorted] {
            var job = Self.logisticJob(Self.narrow, nodes: 2)
            job.partitioning = partitioning
            #expect { try job.validate() } throws: { "\($0)".contains("partitioning") && "\($0)".contains("nonzeros") }
        }
        let npz = Job(data: .file(path: "x.npz", format: nil, target: nil))
        #expect { try npz.validate() } throws: { "\($0)".contains("data.file.target") }
    }

    @Test("an .npz matrix with its targets from a .npy trains as CSR")
    func npzSource() async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/scipy-csr-small.npz").path
        let x = try NPZReader.readCSR(path: fixture, as: Double.self)
        let y = (0..<x.rowCount).map { Double($0 % 3) - 1 }
        let targets = Self.directory + "/y.npy"
        try NPYWriter.write(shape: [y.count], values: y, to: targets)
        var job = Job(data: .file(path: fixture, format: nil, target: targets))
        job.objective = .ridge(lambda: 0.5)
        let problem = try PreparedProblem<Double>(job: job)
        #expect(problem.data.isSparse && problem.data.rows == x.rowCount)
        let r = try await ThreadsBackend().run(problem: problem)
        #expect(r.relativeDistance! < 1e-8)
    }
}
