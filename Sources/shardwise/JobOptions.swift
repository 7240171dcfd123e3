import ArgumentParser
import Foundation
import Shardwise

extension StrategyKind: ExpressibleByArgument {}
extension AllReduceAlgorithm: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension DataFormat: ExpressibleByArgument {}
extension PSUpdateRule: ExpressibleByArgument {}
extension SolverKind: ExpressibleByArgument {}

/// The flags that define a `Job`. Every flag is optional: a `--job FILE` is the starting point
/// when given, the defaults otherwise, and each flag given on the command line overrides it.
struct JobOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Start from a job file (JSON, as written into every report); flags override it.", valueName: "file"))
    var job: String?

    @Option(help: ArgumentHelp("Training data file (CSV, LIBSVM, NPY, or scipy's CSR .npz with --target y.npy); LIBSVM and NPZ train sparse (CSR).", valueName: "file"))
    var data: String?

    @Option(help: "Format of --data; by default from its extension.")
    var format: DataFormat?

    @Option(help: ArgumentHelp("Target column of a CSV/NPY file: a header name or a 0-based index (default: last); for an .npz, the .npy file of targets.", valueName: "column"))
    var target: String?

    @Option(help: ArgumentHelp("A generated problem instead of a file, e.g. n=20000,d=50,noise=0.1,cond=10,seed=1; naming nnz makes it sparse (CSR): n=100000,d=50000,nnz=40,zipf=1.", valueName: "spec"))
    var synthetic: String?

    @Flag(help: "Densify sparse data (LIBSVM, NPZ, a sparse --synthetic) and train it dense.")
    var dense = false

    @Flag(help: "Standardise the feature columns (coefficients are reported on both scales).")
    var standardize = false

    @Option(help: "Storage and compute precision.")
    var precision: Precision?

    @Option(help: ArgumentHelp("least-squares, ridge or logistic.", valueName: "name"))
    var objective: String?

    @Option(help: ArgumentHelp("ℓ2 regularisation λ (ridge, logistic).", valueName: "λ"))
    var lambda: Double?

    @Option(help: ArgumentHelp("Step size: 'auto' (1/L by Lanczos, ≤ 20 rounds) or a number.", valueName: "auto|x"))
    var lr: String?

    @Option(help: "Heavy-ball momentum β in [0, 1).")
    var momentum: Double?

    @Option(help: "Mini-batch rows per node and step (default: the full shard).")
    var batchSize: Int?

    @Option(help: ArgumentHelp("Update rule of mapreduce/allreduce: gd, nesterov, cg, lbfgs, newton-cg (default: cg for least squares and ridge, lbfgs for logistic; gd with --lr x, --momentum or --batch-size).", valueName: "solver"))
    var solver: SolverKind?

    @Option(help: ArgumentHelp("L-BFGS memory: the (s, y) pairs kept (default 10).", valueName: "m"))
    var lbfgsMemory: Int?

    @Option(help: "Maximum iterations (rounds).")
    var iterations: Int?

    @Option(help: "Stop when |∇L| ≤ tolerance·|∇L(w₀)| (0 disables).")
    var tolerance: Double?

    @Option(help: "Number of nodes.")
    var nodes: Int?

    @Option(help: "mapreduce, allreduce, ps, hogwild, gossip, or the communication-efficient gram, one-shot, local-sgd, cocoa.")
    var strategy: StrategyKind?

    @Option(name: .customLong("allreduce"), help: "All-reduce algorithm: ring, reduce-broadcast, all-to-all, native.")
    var allReduce: AllReduceAlgorithm?

    @Option(help: ArgumentHelp("Gossip graph: ring, torus[:ROWS], complete, star, random:K[:SEED], disconnected, edges:0-1,1-2,…", valueName: "graph"))
    var topology: String?

    @Option(help: ArgumentHelp("Parameter server: how far a worker may run ahead (0 = synchronous, 'inf' = fully asynchronous).", valueName: "k|inf"))
    var staleness: String?

    @Option(name: .customLong("ps-update"), help: ArgumentHelp("Parameter server: apply the sum of every worker's latest gradient (aggregate, SAG style) or each arriving gradient on its own (each, textbook asynchronous SGD).", valueName: "aggregate|each"))
    var psUpdate: PSUpdateRule?

    @Flag(name: .customLong("async"), help: "Gossip: the asynchronous variant.")
    var asynchronous = false

    @Flag(help: "Gossip: gradient tracking (DIGing), which converges to w* exactly.")
    var tracking = false

    @Flag(help: "gram: send XᵀX and Xᵀy under --codec instead of float64 (the normal equations square its rounding).")
    var gramUseCodec = false

    @Option(help: "local-sgd: local steps H between two model averages (1 = synchronous gradient descent; default 10).")
    var localSteps: Int?

    @Option(help: "one-shot: weight the shards' solutions by their rows, or uniformly.")
    var oneShotWeighting: OneShotOptions.Weighting?

    @Option(help: "cocoa: SDCA passes over the shard's dual coordinates per round (default 1).")
    var localPasses: Int?

    @Option(help: ArgumentHelp("cocoa: stop when the duality gap P(w) − D(α) ≤ this, which certifies L(w) − L(w*) ≤ it (default: --tolerance × the first gap).", valueName: "ε"))
    var gapTolerance: Double?

    @Option(help: "cocoa: adding (CoCoA+, γ = 1, σ′ = K) or averaging (CoCoA, γ = 1/K).")
    var cocoaAggregation: CoCoAOptions.Aggregation?

    @Option(help: ArgumentHelp("Codec for every message: float64, float32, float16, bfloat16, int8[:CHUNK], topk:FRACTION.", valueName: "codec"))
    var codec: String?

    @Option(help: ArgumentHelp("Sharding: balanced, skewed:RATIO (last shard RATIO× the first), or sorted (rows sorted by target, then cut: non-IID shards).", valueName: "how"))
    var partition: String?

    @Option(help: "Seed for everything random (mini-batches, random graphs).")
    var seed: UInt64?

    @Option(help: "Seconds any receive may wait before the run fails.")
    var timeout: Double?

    @Option(help: "Record a trace point every this many iterations (default: ≤ 500 points).")
    var traceEvery: Int?

    @Option(name: .customLong("timeline-every"), help: ArgumentHelp("With --timeline: record one iteration in N (default 1).", valueName: "N"))
    var timelineEvery: Int?

    @Flag(help: "Skip the exact LAPACK solution (no distances to w* are reported).")
    var noReference = false

    /// The embedded default problem (what `make demo` trains).
    static let defaultSynthetic = "n=20000,d=50,noise=0.1,cond=5,seed=1"

    /// `--synthetic` text as a data source: sparse when it names `nnz`.
    static func syntheticSource(_ text: String) throws -> DataSource {
        SparseSyntheticSpec.describesSparse(text) ? .sparseSynthetic(try SparseSyntheticSpec(parsing: text))
            : .synthetic(try SyntheticSpec(parsing: text))
    }

    /// The flags' own shape: what each means is checked by the core (`Job.validate()`) on the
    /// job they assemble, in `makeJob`, so the rules are written once and a job file obeys them too.
    func validate() throws {
        if data != nil && synthetic != nil {
            throw ValidationError("give either --data or --synthetic, not both")
        }
        if let data, !FileManager.default.fileExists(atPath: data) {
            throw ValidationError("--data \(data): no such file")
        }
        // Each spec's parser checks its syntax and then its values (by the core's validate()).
        if let lr { try flagged("--lr", lr) { _ = try LearningRate(parsing: lr) } }
        if let codec { try flagged("--codec", codec) { _ = try CodecSpec(parsing: codec) } }
        if let topology { try flagged("--topology", topology) { _ = try TopologySpec(parsing: topology) } }
        if let partition { try flagged("--partition", partition) { _ = try Partitioning(parsing: partition) } }
        if let synthetic { try flagged("--synthetic", synthetic) { _ = try Self.syntheticSource(synthetic) } }
        if let staleness { try flagged("--staleness", staleness) { _ = try Self.parseStaleness(staleness) } }
    }

    /// The job these flags describe, validated by the core. Its warnings go to stderr.
    /// - Throws: `ValidationError` naming the flag that set the bad value, or the job file and
    ///   the JSON field when the value came from the file.
    func makeJob(defaultNodes: Int = 1) throws -> Job {
        var job: Job
        if let path = self.job {
            job = try decodeJob(path)
        } else {
            job = Job(data: .synthetic(try SyntheticSpec(parsing: Self.defaultSynthetic)))
            job.nodes = defaultNodes
        }
        do {
            try assemble(into: &job)
            try job.validate()
        } catch let error as JobError {
            throw ValidationError(explain(error))
        }
        for warning in job.warnings {
            FileHandle.standardError.write(Data("warning: \(explain(warning.field, warning.message))\n".utf8))
        }
        return job
    }

    /// Applies each flag given to `job`.
    private func assemble(into job: inout Job) throws {
        if let data { job.data = .file(path: data, format: format, target: target) }
        if let synthetic { job.data = try flagged("--synthetic", synthetic) { try Self.syntheticSource(synthetic) } }
        if standardize { job.standardize = true }
        if dense { job.dense = true }
        if let precision { job.precision = precision }
        if objective != nil || lambda != nil {
            let name = objective ?? job.objective.name
            // --objective least-squares over a file's ridge drops the file's λ (least squares has none).
            let l = lambda ?? ((try? Objective(name: name)) == .leastSquares ? 0 : job.objective.lambda)
            job.objective = try flagged(lambda != nil ? "--lambda" : "--objective", lambda.map { "\($0)" } ?? name) {
                try Objective(name: name, lambda: l)
            }
        }
        if let lr { job.optimizer.learningRate = try flagged("--lr", lr) { try LearningRate(parsing: lr) } }
        if let momentum { job.optimizer.momentum = momentum }
        if let batchSize { job.optimizer.batchSize = batchSize }
        if let solver { job.optimizer.solver = solver }
        if let lbfgsMemory { job.optimizer.lbfgs.memory = lbfgsMemory }
        if let iterations { job.stopping.maxIterations = iterations }
        if let tolerance { job.stopping.tolerance = tolerance }
        if let nodes { job.nodes = nodes }
        if let strategy { job.strategy.kind = strategy }
        if let allReduce { job.strategy.allReduce = allReduce }
        if let topology { job.strategy.gossip.topology = try flagged("--topology", topology) { try TopologySpec(parsing: topology) } }
        if let staleness { job.strategy.parameterServer.staleness = try flagged("--staleness", staleness) { try Self.parseStaleness(staleness) } }
        if let psUpdate { job.strategy.parameterServer.update = psUpdate }
        if asynchronous { job.strategy.gossip.asynchronous = true }
        if tracking { job.strategy.gossip.gradientTracking = true }
        if gramUseCodec { job.strategy.gram.useJobCodec = true }
        if let localSteps { job.strategy.localSGD.localSteps = localSteps }
        if let oneShotWeighting { job.strategy.oneShot.weighting = oneShotWeighting }
        if let localPasses { job.strategy.cocoa.localPasses = localPasses }
        if let gapTolerance { job.strategy.cocoa.gapTolerance = gapTolerance }
        if let cocoaAggregation { job.strategy.cocoa.aggregation = cocoaAggregation }
        if let codec { job.codec = try flagged("--codec", codec) { try CodecSpec(parsing: codec) } }
        if let partition { job.partitioning = try flagged("--partition", partition) { try Partitioning(parsing: partition) } }
        if let seed { job.seed = seed }
        if let timeout { job.timeout = timeout }
        if let traceEvery { job.traceEvery = traceEvery }
        if let timelineEvery { job.timelineEvery = timelineEvery }
        if noReference { job.computeReference = false }
    }

    /// `k` or `inf` (nil: unbounded). The range is the core's (`ParameterServerOptions.validate()`).
    static func parseStaleness(_ text: String) throws -> Int? {
        if text == "inf" { return nil }
        guard let k = Int(text) else {
            throw JobError.invalid(field: "", message: "expected a non-negative integer or 'inf', got '\(text)'")
        }
        try ParameterServerOptions(staleness: k).validate()
        return k
    }

    // MARK: - Naming the flag (or the job file's field) an error is about

    /// Which flag sets each job field, by JSON path prefix, and the text it was given (nil when
    /// the flag was not on the command line).
    private var flags: [(field: String, flag: String, given: String?)] {
        func text<T>(_ v: T?) -> String? { v.map { "\($0)" } }
        return [
            ("data.synthetic", "--synthetic", synthetic), ("data.sparseSynthetic", "--synthetic", synthetic),
            ("data.file.target", "--target", target), ("data.file", "--data", data), ("dense", "--dense", dense ? "" : nil), ("data", "--data", data),
            ("standardize", "--standardize", standardize ? "" : nil), ("precision", "--precision", text(precision)),
            ("partitioning", "--partition", partition),
            ("objective.ridge.lambda", "--lambda", text(lambda)), ("objective.logistic.lambda", "--lambda", text(lambda)),
            ("objective", "--objective", objective),
            ("strategy.kind", "--strategy", text(strategy)), ("strategy.allReduce", "--allreduce", text(allReduce)),
            ("strategy.parameterServer.staleness", "--staleness", staleness), ("strategy.gossip.topology", "--topology", topology),
            ("strategy.parameterServer.update", "--ps-update", text(psUpdate)),
            ("strategy.gossip.asynchronous", "--async", asynchronous ? "" : nil),
            ("strategy.gossip.gradientTracking", "--tracking", tracking ? "" : nil),
            ("strategy.gram.useJobCodec", "--gram-use-codec", gramUseCodec ? "" : nil),
            ("strategy.localSGD.localSteps", "--local-steps", text(localSteps)),
            ("strategy.oneShot.weighting", "--one-shot-weighting", text(oneShotWeighting)),
            ("strategy.cocoa.localPasses", "--local-passes", text(localPasses)),
            ("strategy.cocoa.gapTolerance", "--gap-tolerance", text(gapTolerance)),
            ("strategy.cocoa.aggregation", "--cocoa-aggregation", text(cocoaAggregation)),
            ("optimizer.learningRate", "--lr", lr), ("optimizer.momentum", "--momentum", text(momentum)),
            ("optimizer.batchSize", "--batch-size", text(batchSize)), ("codec", "--codec", codec),
            ("optimizer.solver", "--solver", text(solver)), ("optimizer.lbfgs.memory", "--lbfgs-memory", text(lbfgsMemory)),
            ("stopping.maxIterations", "--iterations", text(iterations)), ("stopping.tolerance", "--tolerance", text(tolerance)),
            ("nodes", "--nodes", text(nodes)), ("seed", "--seed", text(seed)), ("timeout", "--timeout", text(timeout)),
            ("traceEvery", "--trace-every", text(traceEvery)), ("timelineEvery", "--timeline-every", text(timelineEvery)), ("computeReference", "--no-reference", noReference ? "" : nil),
        ]
    }

    /// The message for a problem with `field`: after the flag (and its value) when the flag set
    /// it, after the job file and the field when the file did, after the flag otherwise (a
    /// default that another setting made wrong).
    func explain(_ field: String, _ message: String) -> String {
        let entry = flags.first { field == $0.field || field.hasPrefix($0.field + ".") }
        if let entry, let given = entry.given {
            return given.isEmpty ? "\(entry.flag): \(message)" : "\(entry.flag) \(given): \(message)"
        }
        if let path = job { return field.isEmpty ? "--job \(path): \(message)" : "--job \(path): \(field): \(message)" }
        return entry.map { "\($0.flag): \(message)" } ?? (field.isEmpty ? message : "\(field): \(message)")
    }

    func explain(_ error: JobError) -> String {
        if case .unknownField = error, let path = job { return "--job \(path): \(error)" }
        return explain(error.field, error.message)
    }

    /// Runs a flag's parser, naming the flag and its text in any error.
    private func flagged<T>(_ flag: String, _ text: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as JobError {
            throw ValidationError("\(flag) \(text): \(error.message)")
        } catch {
            throw ValidationError("\(flag) \(text): \(error)")
        }
    }
}

/// Reads a job file strictly (unknown fields are errors), without validating it.
private func decodeJob(_ path: String) throws -> Job {
    guard let bytes = FileManager.default.contents(atPath: path) else {
        throw ValidationError("--job \(path): cannot read the file")
    }
    do {
        return try Job(json: bytes)
    } catch let error as JobError {
        throw ValidationError("--job \(path): \(error)")
    }
}

/// Reads and validates a job file (a node's job, run as it is).
/// - Throws: `ValidationError` naming the file and the JSON field.
func loadJob(_ path: String) throws -> Job {
    let job = try decodeJob(path)
    do { try job.validate() } catch let error as JobError {
        throw ValidationError("--job \(path): \(error)")
    }
    return job
}

/// Writes JSON through `OutputFile`: whole or not at all, through symbolic links, never over a
/// device or directory (the path was checked at start with `OutputFile.check`).
func writeJSON<T: Encodable>(_ value: T, to path: String, option: String? = nil) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    try OutputFile.writeAtomically(Array(try encoder.encode(value)), to: path, option: option)
}

extension OneShotOptions.Weighting: ExpressibleByArgument {}
extension CoCoAOptions.Aggregation: ExpressibleByArgument {}
