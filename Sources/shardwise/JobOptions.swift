import ArgumentParser
import Foundation
import Shardwise

extension StrategyKind: ExpressibleByArgument {}
extension AllReduceAlgorithm: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension DataFormat: ExpressibleByArgument {}

/// The flags that define a `Job`. Every flag is optional: a `--job FILE` is the starting point
/// when given, the defaults otherwise, and each flag given on the command line overrides it.
struct JobOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Start from a job file (JSON, as written into every report); flags override it.", valueName: "file"))
    var job: String?

    @Option(help: ArgumentHelp("Training data file (CSV, LIBSVM or NPY).", valueName: "file"))
    var data: String?

    @Option(help: "Format of --data; by default from its extension.")
    var format: DataFormat?

    @Option(help: ArgumentHelp("Target column of a CSV/NPY file: a header name or a 0-based index (default: last).", valueName: "column"))
    var target: String?

    @Option(help: ArgumentHelp("A generated problem instead of a file, e.g. n=20000,d=50,noise=0.1,cond=10,seed=1.", valueName: "spec"))
    var synthetic: String?

    @Flag(help: "Standardise the feature columns (coefficients are reported on both scales).")
    var standardize = false

    @Option(help: "Storage and compute precision.")
    var precision: Precision?

    @Option(help: ArgumentHelp("least-squares, ridge or logistic.", valueName: "name"))
    var objective: String?

    @Option(help: ArgumentHelp("ℓ2 regularisation λ (ridge, logistic).", valueName: "λ"))
    var lambda: Double?

    @Option(help: ArgumentHelp("Step size: 'auto' (1/L by power iteration) or a number.", valueName: "auto|x"))
    var lr: String?

    @Option(help: "Heavy-ball momentum β in [0, 1).")
    var momentum: Double?

    @Option(help: "Mini-batch rows per node and step (default: the full shard).")
    var batchSize: Int?

    @Option(help: "Maximum iterations (rounds).")
    var iterations: Int?

    @Option(help: "Stop when |∇L| ≤ tolerance·|∇L(w₀)| (0 disables).")
    var tolerance: Double?

    @Option(help: "Number of nodes.")
    var nodes: Int?

    @Option(help: "mapreduce, allreduce, ps, hogwild or gossip.")
    var strategy: StrategyKind?

    @Option(name: .customLong("allreduce"), help: "All-reduce algorithm: ring, reduce-broadcast, all-to-all, native.")
    var allReduce: AllReduceAlgorithm?

    @Option(help: ArgumentHelp("Gossip graph: ring, torus[:ROWS], complete, star, random:K[:SEED], disconnected, edges:0-1,1-2,…", valueName: "graph"))
    var topology: String?

    @Option(help: ArgumentHelp("Parameter server: how far a worker may run ahead (0 = synchronous, 'inf' = fully asynchronous).", valueName: "k|inf"))
    var staleness: String?

    @Flag(name: .customLong("async"), help: "Gossip: the asynchronous variant.")
    var asynchronous = false

    @Flag(help: "Gossip: gradient tracking (DIGing), which converges to w* exactly.")
    var tracking = false

    @Option(help: ArgumentHelp("Codec for every message: float64, float32, float16, bfloat16, int8[:CHUNK], topk:FRACTION.", valueName: "codec"))
    var codec: String?

    @Option(help: ArgumentHelp("Sharding: balanced, or skewed:RATIO (last shard RATIO× the first).", valueName: "how"))
    var partition: String?

    @Option(help: "Seed for everything random (mini-batches, random graphs).")
    var seed: UInt64?

    @Option(help: "Seconds any receive may wait before the run fails.")
    var timeout: Double?

    @Option(help: "Record a trace point every this many iterations (default: ≤ 500 points).")
    var traceEvery: Int?

    @Flag(help: "Skip the exact LAPACK solution (no distances to w* are reported).")
    var noReference = false

    /// The embedded default problem (what `make demo` trains).
    static let defaultSynthetic = "n=20000,d=50,noise=0.1,cond=5,seed=1"

    func validate() throws {
        if data != nil && synthetic != nil {
            throw ValidationError("give either --data or --synthetic, not both")
        }
        if let data, !FileManager.default.fileExists(atPath: data) {
            throw ValidationError("--data \(data): no such file")
        }
        if let nodes, nodes < 1 { throw ValidationError("--nodes must be at least 1, got \(nodes)") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1, got \(iterations)") }
        if let momentum, !(0..<1).contains(momentum) { throw ValidationError("--momentum must be in [0, 1), got \(momentum)") }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let lambda, lambda < 0 { throw ValidationError("--lambda must be ≥ 0, got \(lambda)") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if let lr { _ = try wrap("--lr") { try LearningRate(parsing: lr) } }
        if let codec { _ = try wrap("--codec") { try CodecSpec(parsing: codec) } }
        if let topology { _ = try wrap("--topology") { try TopologySpec(parsing: topology) } }
        if let partition { _ = try wrap("--partition") { try Partitioning(parsing: partition) } }
        if let synthetic { _ = try wrap("--synthetic") { try SyntheticSpec(parsing: synthetic) } }
        if let staleness, staleness != "inf", Int(staleness).map({ $0 < 0 }) ?? true {
            throw ValidationError("--staleness must be a non-negative integer or 'inf', got '\(staleness)'")
        }
    }

    /// The job these flags describe.
    func makeJob(defaultNodes: Int = 1) throws -> Job {
        var job: Job
        if let path = self.job {
            job = try loadJob(path)
        } else {
            job = Job(data: .synthetic(try SyntheticSpec(parsing: Self.defaultSynthetic)))
            job.nodes = defaultNodes
        }
        if let data { job.data = .file(path: data, format: format, target: target) }
        if let synthetic { job.data = .synthetic(try SyntheticSpec(parsing: synthetic)) }
        if standardize { job.standardize = true }
        if let precision { job.precision = precision }
        if objective != nil || lambda != nil {
            job.objective = try Objective(name: objective ?? job.objective.name, lambda: lambda ?? job.objective.lambda)
        }
        if let lr { job.optimizer.learningRate = try LearningRate(parsing: lr) }
        if let momentum { job.optimizer.momentum = momentum }
        if let batchSize { job.optimizer.batchSize = batchSize }
        if let iterations { job.stopping.maxIterations = iterations }
        if let tolerance { job.stopping.tolerance = tolerance }
        if let nodes { job.nodes = nodes }
        if let strategy { job.strategy.kind = strategy }
        if let allReduce { job.strategy.allReduce = allReduce }
        if let topology { job.strategy.topology = try TopologySpec(parsing: topology) }
        if let staleness { job.strategy.staleness = staleness == "inf" ? nil : Int(staleness) }
        if asynchronous { job.strategy.asynchronous = true }
        if tracking { job.strategy.gradientTracking = true }
        if let codec { job.codec = try CodecSpec(parsing: codec) }
        if let partition { job.partitioning = try Partitioning(parsing: partition) }
        if let seed { job.seed = seed }
        if let timeout { job.timeout = timeout }
        if let traceEvery { job.traceEvery = traceEvery }
        if noReference { job.computeReference = false }
        try job.validate()
        return job
    }

    private func wrap<T>(_ option: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw ValidationError("\(option): \(error)") }
    }
}

/// Reads a job file.
func loadJob(_ path: String) throws -> Job {
    guard let bytes = FileManager.default.contents(atPath: path) else {
        throw ValidationError("--job \(path): cannot read the file")
    }
    do {
        return try JSONDecoder().decode(Job.self, from: bytes)
    } catch let DecodingError.dataCorrupted(context) {
        throw ValidationError("--job \(path): not valid JSON: \(context.debugDescription)")
    } catch let DecodingError.keyNotFound(key, context) {
        throw ValidationError("--job \(path): missing '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
    } catch let DecodingError.typeMismatch(_, context) {
        throw ValidationError("--job \(path): wrong type at \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
    } catch {
        throw ValidationError("--job \(path): \(error)")
    }
}

/// Writes JSON through `OutputFile`: whole or not at all, through symbolic links, never over a
/// device or directory (the path was checked at start with `OutputFile.check`).
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    try OutputFile.writeAtomically(Array(try encoder.encode(value)), to: path)
}
