import Foundation

/// Where a job's data comes from.
public enum DataSource: Codable, Sendable, Equatable, CustomStringConvertible {
    /// A generated problem (seeded, deterministic).
    case synthetic(SyntheticSpec)
    /// A generated sparse problem (CSR, Zipf-distributed features; seeded, deterministic).
    case sparseSynthetic(SparseSyntheticSpec)
    /// A file; `format` nil means "by extension". `target` names the target column (CSV/NPY) by
    /// name or 0-based index; nil means the last column. For an `.npz` (scipy CSR, which holds X
    /// only) `target` is the path of a 1-D `.npy` file of targets, one per row (required).
    case file(path: String, format: DataFormat?, target: String?)

    public var description: String {
        switch self {
        case .synthetic(let s): return "synthetic(\(s))"
        case .sparseSynthetic(let s): return "synthetic(\(s))"
        case .file(let path, let format, _): return format.map { "\(path) (\($0.rawValue))" } ?? path
        }
    }
}

/// File formats the readers understand.
public enum DataFormat: String, Codable, Sendable, CaseIterable {
    case csv
    case libsvm
    case npy
    /// scipy's `save_npz` of a CSR matrix: X only (targets from `target`, a `.npy`).
    case npz

    /// The format a path's extension implies.
    public init?(pathExtension path: String) {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") || lower.hasSuffix(".txt") { self = .csv }
        else if lower.hasSuffix(".svm") || lower.hasSuffix(".libsvm") || lower.hasSuffix(".svmlight") { self = .libsvm }
        else if lower.hasSuffix(".npy") { self = .npy }
        else if lower.hasSuffix(".npz") { self = .npz }
        else { return nil }
    }
}

/// Storage (and computation) precision.
public enum Precision: String, Codable, Sendable, CaseIterable {
    case float32
    case float64
}

/// The step size: a fixed value, or `auto` = 1/L with L estimated by (data-parallel) power
/// iteration.
public enum LearningRate: Codable, Sendable, Equatable, CustomStringConvertible {
    case auto
    case fixed(Double)

    public init(parsing text: String) throws {
        if text == "auto" { self = .auto; return }
        guard let v = Double(text) else {
            throw JobError.invalid(field: "", message: "expected 'auto' or a positive number, got '\(text)'")
        }
        self = .fixed(v)
        try validate()
    }

    /// A fixed step must be a positive finite number (0 never moves; a negative step climbs).
    public func validate() throws {
        if case .fixed(let v) = self, !(v > 0 && v.isFinite) {
            throw JobError.invalid(field: "fixed._0", message: "the step size must be a positive number (or 'auto'), got \(v)")
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .fixed(let v): return "\(v)"
        }
    }
}

/// How each node computes and applies gradients.
public struct OptimizerSpec: Codable, Sendable, Equatable {
    public var learningRate: LearningRate = .auto
    /// Heavy-ball momentum β (0 = plain gradient descent).
    public var momentum: Double = 0
    /// Rows per mini-batch drawn (seeded) from the node's shard; nil = full batch.
    public var batchSize: Int? = nil
    /// The update rule of the synchronous strategies; nil = `Job.effectiveSolver`'s choice.
    public var solver: SolverKind? = nil
    /// Each solver's own options (used only by that solver).
    public var nesterov = Nesterov.Options()
    public var lbfgs = LBFGS.Options()
    public var newtonCG = NewtonCG.Options()
    public init(learningRate: LearningRate = .auto, momentum: Double = 0, batchSize: Int? = nil,
                solver: SolverKind? = nil) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.batchSize = batchSize
        self.solver = solver
    }
}

/// When training stops: after `maxIterations`, or when the gradient norm falls to `tolerance`
/// times its initial value, whichever comes first.
public struct StoppingRule: Codable, Sendable, Equatable {
    public var maxIterations: Int = 1000
    /// Relative gradient-norm tolerance |∇L(w)| ≤ tol·|∇L(w₀)|; 0 disables it.
    public var tolerance: Double = 1e-9
    public init(maxIterations: Int = 1000, tolerance: Double = 1e-9) {
        self.maxIterations = maxIterations
        self.tolerance = tolerance
    }
}

/// Everything that defines a training run. Plain data: the same job runs on threads, is sent to
/// socket processes and MPI ranks, drives the simulator, and is written into the report.
public struct Job: Codable, Sendable, Equatable {
    public var data: DataSource
    public var standardize: Bool = false
    /// Densify sparse sources (LIBSVM, `.npz`, a sparse synthetic spec) before training: the dense
    /// kernels and every strategy, at n·d memory. Off: sparse sources train as CSR.
    public var dense: Bool = false
    public var precision: Precision = .float64
    public var partitioning: Partitioning = .balanced
    public var objective: Objective = .leastSquares
    public var strategy: StrategySpec = StrategySpec()
    public var optimizer: OptimizerSpec = OptimizerSpec()
    public var codec: CodecSpec = .float64
    public var stopping: StoppingRule = StoppingRule()
    public var nodes: Int = 1
    /// Seeds everything random in the run (mini-batches, random topologies, …).
    public var seed: UInt64 = 1
    /// Seconds any receive waits before it fails.
    public var timeout: Double = 60
    /// Record a trace point every this many iterations (0 = choose so that ≤ 500 points).
    public var traceEvery: Int = 0
    /// Record a timeline (`--timeline`): each node's compute, sends, receives, waits and
    /// collectives on one iteration in this many (0 = no timeline). See `Timeline`.
    public var timelineEvery: Int = 0
    /// Compute the exact solution with LAPACK and report distances to it.
    public var computeReference: Bool = true

    public init(data: DataSource) { self.data = data }

    /// Whether the data trains as CSR: a LIBSVM or `.npz` file, or a sparse synthetic spec, unless
    /// `dense` asks for the dense form. Known before loading, so `validate()` can refuse what
    /// sparse data cannot do.
    public var isSparseData: Bool {
        guard !dense else { return false }
        switch data {
        case .synthetic: return false
        case .sparseSynthetic: return true
        case .file(let path, let format, _):
            let f = format ?? DataFormat(pathExtension: path)
            return f == .libsvm || f == .npz
        }
    }

    /// Iterations between trace points.
    public var effectiveTraceEvery: Int {
        traceEvery > 0 ? traceEvery : max(1, stopping.maxIterations / 500)
    }
}

// MARK: - Decoding with defaults
//
// A job file may leave out anything that has a default (a hand-written job needs only "data");
// the synthesised decoders would demand every key.

extension OptimizerSpec {
    /// The registration of every solver's options: its key in the job file, the solver that
    /// reads it, and where it is kept (see `ComponentOptions`).
    static var registry: [OptionsEntry<OptimizerSpec, SolverKind>] {
        [OptionsEntry("nesterov", for: .nesterov, \.nesterov),
         OptionsEntry("lbfgs", for: .lbfgs, \.lbfgs),
         OptionsEntry("newtonCG", for: .newtonCG, \.newtonCG)]
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: OptionsCodingKey.self)
        self.init(learningRate: try c.decodeIfPresent(LearningRate.self, forKey: OptionsCodingKey("learningRate")) ?? .auto,
                  momentum: try c.decodeIfPresent(Double.self, forKey: OptionsCodingKey("momentum")) ?? 0,
                  batchSize: try c.decodeIfPresent(Int.self, forKey: OptionsCodingKey("batchSize")),
                  solver: try c.decodeIfPresent(SolverKind.self, forKey: OptionsCodingKey("solver")))
        try Self.registry.decode(into: &self, from: c)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: OptionsCodingKey.self)
        try c.encode(learningRate, forKey: OptionsCodingKey("learningRate"))
        try c.encode(momentum, forKey: OptionsCodingKey("momentum"))
        try c.encodeIfPresent(batchSize, forKey: OptionsCodingKey("batchSize"))
        try c.encodeIfPresent(solver, forKey: OptionsCodingKey("solver"))
        try Self.registry.encode(self, into: &c)
    }
}

extension StoppingRule {
    enum CodingKeys: String, CodingKey { case maxIterations, tolerance }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(maxIterations: try c.decodeIfPresent(Int.self, forKey: .maxIterations) ?? 1000,
                  tolerance: try c.decodeIfPresent(Double.self, forKey: .tolerance) ?? 1e-9)
    }
}

extension Job {
    enum CodingKeys: String, CodingKey {
        case data, standardize, dense, precision, partitioning, objective, strategy, optimizer, codec, stopping, nodes, seed
        case timeout, traceEvery, timelineEvery, computeReference
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(data: try c.decode(DataSource.self, forKey: .data))
        standardize = try c.decodeIfPresent(Bool.self, forKey: .standardize) ?? standardize
        dense = try c.decodeIfPresent(Bool.self, forKey: .dense) ?? dense
        precision = try c.decodeIfPresent(Precision.self, forKey: .precision) ?? precision
        partitioning = try c.decodeIfPresent(Partitioning.self, forKey: .partitioning) ?? partitioning
        objective = try c.decodeIfPresent(Objective.self, forKey: .objective) ?? objective
        strategy = try c.decodeIfPresent(StrategySpec.self, forKey: .strategy) ?? strategy
        optimizer = try c.decodeIfPresent(OptimizerSpec.self, forKey: .optimizer) ?? optimizer
        codec = try c.decodeIfPresent(CodecSpec.self, forKey: .codec) ?? codec
        stopping = try c.decodeIfPresent(StoppingRule.self, forKey: .stopping) ?? stopping
        nodes = try c.decodeIfPresent(Int.self, forKey: .nodes) ?? nodes
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? timeout
        traceEvery = try c.decodeIfPresent(Int.self, forKey: .traceEvery) ?? traceEvery
        timelineEvery = try c.decodeIfPresent(Int.self, forKey: .timelineEvery) ?? timelineEvery
        computeReference = try c.decodeIfPresent(Bool.self, forKey: .computeReference) ?? computeReference
    }
}

// MARK: - Reading a job file

extension Job {
    /// Decodes a job file strictly, without validating it (flags may still override it; call
    /// `validate()` on the job that will run). Every key in the file must be one a job has: a
    /// misspelt key would otherwise be ignored in silence and its default used.
    ///
    /// The check compares the file with the job re-encoded: every key of the file must reappear
    /// at the same path (a `null` value, which decodes as absent, is allowed anywhere). So the
    /// decoders stay the plain `Codable` ones and the list of known fields cannot drift from them.
    /// - Throws: `JobError.malformed` (not JSON, a missing or mistyped field),
    ///   `JobError.unknownField` with the field's path.
    public init(json bytes: Data) throws {
        let tree: Any
        do {
            tree = try JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])
        } catch {
            throw JobError.malformed(field: "", message: "not valid JSON: \(error.localizedDescription)")
        }
        guard tree is [String: Any] else {
            throw JobError.malformed(field: "", message: "a job is a JSON object ({\"data\": …}), not \(type(of: tree))")
        }
        do {
            self = try JSONDecoder().decode(Job.self, from: bytes)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            // Foundation reports a number that does not fit its field (1e30 for an Int, -1 for a
            // seed) as "not valid JSON", with no path, although the text parsed: find the field.
            if let (path, value) = Self.unfitNumber(in: tree) {
                throw JobError.malformed(field: path, message: "\(value) does not fit this field (an integer in range, or a number, is expected)")
            }
            throw JobError.malformed(field: "", message: context.debugDescription)
        } catch let error as DecodingError {
            throw JobError(decoding: error)
        }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let known = try JSONSerialization.jsonObject(with: encoder.encode(self), options: [.fragmentsAllowed])
        if let path = Self.firstUnknownKey(in: tree, known: known, path: "") { throw JobError.unknownField(path) }
    }

    /// The number that makes the decoder fail although the JSON parsed: each number of the file in
    /// turn (in path order) is set to 0, which fits every numeric field, until the failure goes.
    private static func unfitNumber(in tree: Any) -> (path: String, value: Any)? {
        var numbers: [[String]] = []
        let booleanType = type(of: NSNumber(value: true) as Any)   // how JSONSerialization boxes true/false
        func collect(_ v: Any, _ path: [String]) {
            if let o = v as? [String: Any] { for k in o.keys.sorted() { collect(o[k]!, path + [k]) } }
            else if let a = v as? [Any] { for (i, e) in a.enumerated() { collect(e, path + ["\(i)"]) } }
            else if v is NSNumber, type(of: v) != booleanType { numbers.append(path) }
        }
        func replace(_ v: Any, _ path: ArraySlice<String>) -> Any {
            guard let head = path.first else { return 0 }
            if var o = v as? [String: Any], let child = o[head] { o[head] = replace(child, path.dropFirst()); return o }
            if var a = v as? [Any], let i = Int(head), a.indices.contains(i) { a[i] = replace(a[i], path.dropFirst()); return a }
            return v
        }
        func value(_ v: Any, _ path: ArraySlice<String>) -> Any {
            guard let head = path.first else { return v }
            if let o = v as? [String: Any], let child = o[head] { return value(child, path.dropFirst()) }
            if let a = v as? [Any], let i = Int(head), a.indices.contains(i) { return value(a[i], path.dropFirst()) }
            return v
        }
        enum Outcome { case stillUnfit, wrongType, gone }
        func outcome(_ t: Any) -> Outcome {
            guard let data = try? JSONSerialization.data(withJSONObject: t) else { return .stillUnfit }
            do { _ = try JSONDecoder().decode(Job.self, from: data); return .gone }
            catch DecodingError.dataCorrupted(let c) where c.codingPath.isEmpty { return .stillUnfit }
            catch DecodingError.typeMismatch { return .wrongType }   // 0 where a string or a choice goes: not it
            catch { return .gone }
        }
        collect(tree, [])
        var working = tree
        for path in numbers {
            let trial = replace(working, path[...])
            switch outcome(trial) {
            case .stillUnfit: working = trial
            case .wrongType: continue
            case .gone: return (path.joined(separator: "."), value(tree, path[...]))
            }
        }
        return nil
    }

    /// The first key path (in sorted order) of `value` that `known` does not have.
    private static func firstUnknownKey(in value: Any, known: Any, path: String) -> String? {
        if let object = value as? [String: Any] {
            let knownObject = known as? [String: Any] ?? [:]
            for key in object.keys.sorted() where !(object[key] is NSNull) {
                let here = path.isEmpty ? key : "\(path).\(key)"
                guard let k = knownObject[key] else { return here }
                if let found = firstUnknownKey(in: object[key]!, known: k, path: here) { return found }
            }
        } else if let array = value as? [Any], let knownArray = known as? [Any] {
            for (i, element) in array.enumerated() where i < knownArray.count {
                if let found = firstUnknownKey(in: element, known: knownArray[i], path: "\(path).\(i)") { return found }
            }
        }
        return nil
    }
}

extension JobError {
    /// A decoding error as a job error naming the field's path.
    init(decoding error: DecodingError) {
        func path(_ context: DecodingError.Context, _ key: CodingKey? = nil) -> String {
            (context.codingPath + (key.map { [$0] } ?? [])).map { $0.intValue.map(String.init) ?? $0.stringValue }
                .joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            self = .malformed(field: path(context, key), message: "missing (required)")
        case .typeMismatch(_, let context) where context.debugDescription.contains("number of keys"):
            // A choice (`codec`, `topology`, …) is an object with one member named after the case.
            self = .malformed(field: path(context), message: "expected an object with exactly one known case as its key, "
                              + "such as {\"int8\": {\"chunk\": 256}} or {\"ring\": {}}")
        case .typeMismatch(let type, let context):
            self = .malformed(field: path(context), message: "expected \(Self.jsonName(of: type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            self = .malformed(field: path(context), message: "expected \(Self.jsonName(of: type)), found null")
        case .dataCorrupted(let context):
            self = .malformed(field: path(context), message: context.debugDescription)
        @unknown default:
            self = .malformed(field: "", message: "\(error)")
        }
    }

    private static func jsonName(of type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }
}
