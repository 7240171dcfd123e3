/// The rules a job obeys before it runs: the one copy of them. Each part checks its own fields
/// (`CodecSpec.validate()`, `Partitioning.validate()`, `SyntheticSpec.validate()`, …); the job
/// puts each part's errors under the part's JSON path and adds the rules that tie parts together.
/// The command line, the socket and MPI nodes and the simulator all call `Job.validate()` on the
/// job they assembled, so a job file is held to exactly what the flags are.
extension Job {
    /// Upper bound on `nodes`: a million ranks is far beyond any backend here (the simulator runs
    /// thousands), and the bound keeps per-rank tables (`[Int](repeating:count: nodes)`) small.
    public static let maximumNodes = 1_000_000
    /// Upper bound on `timeout`, in seconds (a year): larger values overflow the clocks'
    /// nanosecond arithmetic, and "never" is not a timeout.
    public static let maximumTimeout = 365.0 * 24 * 3600

    /// Checks everything that can be checked without the data.
    /// - Throws: `JobError` naming the field at fault by its JSON path.
    public func validate() throws {
        switch data {
        case .synthetic(let spec):
            try JobError.within("data.synthetic._0") { try spec.validate() }
            try JobError.within("data.synthetic._0") {
                try spec.checkMemory(scalarWidth: precision == .float32 ? 4 : 8, withReference: computeReference)
            }
        case .sparseSynthetic(let spec):
            try JobError.within("data.sparseSynthetic._0") { try spec.validate() }
        case .file(let path, _, _):
            guard !path.isEmpty else { throw JobError.invalid(field: "data.file.path", message: "the data file path is empty") }
        }
        try JobError.within("partitioning") { try partitioning.validate() }
        try JobError.within("objective") { try objective.validate() }
        try JobError.within("optimizer") { try optimizer.validate() }
        try JobError.within("codec") { try codec.validate() }
        try JobError.within("stopping") { try stopping.validate() }
        try JobError.within("strategy") { try strategy.validate() }
        guard (1...Self.maximumNodes).contains(nodes) else {
            throw JobError.invalid(field: "nodes", message: "the node count must be in 1…\(Self.maximumNodes), got \(nodes)")
        }
        guard timeout > 0, timeout <= Self.maximumTimeout else {
            throw JobError.invalid(field: "timeout",
                                   message: "the timeout must be a positive number of seconds, at most \(Int(Self.maximumTimeout)) (a year), got \(timeout)")
        }
        if case .synthetic(let spec) = data, shardCount > spec.rows {
            throw JobError.invalid(field: "nodes",
                                   message: "\(nodes) nodes cut the data into \(shardCount) shards, more than its \(spec.rows) rows")
        }
        if case .sparseSynthetic(let spec) = data, shardCount > spec.rows {
            throw JobError.invalid(field: "nodes",
                                   message: "\(nodes) nodes cut the data into \(shardCount) shards, more than its \(spec.rows) rows")
        }
        try validateSparse()
        guard traceEvery >= 0 else {
            throw JobError.invalid(field: "traceEvery", message: "the trace interval must be ≥ 0 (0 = automatic), got \(traceEvery)")
        }
        guard timelineEvery >= 0 else {
            throw JobError.invalid(field: "timelineEvery", message: "the timeline's sampling must be ≥ 0 (0 = no timeline, N = one iteration in N), got \(timelineEvery)")
        }
        try validateSolver()
        // The graph is built only where it is used: a complete graph on many nodes is large.
        if strategy.kind == .gossip {
            try JobError.within("strategy.gossip.topology") { try strategy.gossip.topology.validate(nodes: nodes) }
        }
        try validateCommunicationEfficient()
    }

    /// Settings that are allowed but probably not meant: each is harmless (the run does what the
    /// rest of the job says) but surprising. The CLI prints them; the report keeps them as notes.
    public var warnings: [JobWarning] {
        var out: [JobWarning] = []
        let kind = strategy.kind
        if case .fixed(let v) = optimizer.learningRate, !effectiveSolver.makeSolver(optimizer).needsStepSize {
            out.append(JobWarning(field: "optimizer.learningRate",
                                  message: "a fixed step (\(v)) is for gd and nesterov; \(effectiveSolver) chooses its own steps and ignores it"))
        }
        out += strategy.ignoredOptionWarnings
        out += OptimizerSpec.registry.ignoredWarnings(optimizer, active: effectiveSolver, prefix: "optimizer")
        if kind == .parameterServer, strategy.parameterServer.update != .aggregate, strategy.parameterServer.staleness == 0 {
            out.append(JobWarning(field: "strategy.parameterServer.update",
                                  message: "with staleness 0 the parameter server is synchronous and the update rule \(strategy.parameterServer.update) is the same as aggregate: each round's gradients make one step"))
        }
        if kind == .gossip, nodes > 1, let graph = try? Topology(strategy.gossip.topology, nodes: nodes), graph.components > 1 {
            out.append(JobWarning(field: "strategy.gossip.topology",
                                  message: "on \(nodes) nodes this graph falls into \(graph.components) parts that never exchange models: "
                                      + "gossip cannot converge to one model (nor to w*); each part fits its own shards until the iteration limit"))
        }
        return out
    }
}

extension Job {
    /// The solver's fit to the rest of the job: its objective, the strategy, batch and momentum.
    func validateSolver() throws {
        let solver = effectiveSolver
        if let named = optimizer.solver, !strategy.kind.runsSolvers, named != .gd {
            throw JobError.invalid(field: "optimizer.solver",
                                   message: "\(strategy.kind) applies gradients as they arrive (gradient descent); the solver "
                                       + "\(named) needs the global rounds of a synchronous strategy (mapreduce or allreduce)")
        }
        if !solver.supports(objective) {
            throw JobError.invalid(field: "optimizer.solver",
                                   message: "cg solves the normal equations of least squares and ridge; for \(objective.name) "
                                       + "use lbfgs or newton-cg")
        }
        if solver.needsFullBatch {
            if let b = optimizer.batchSize {
                throw JobError.invalid(field: "optimizer.batchSize",
                                       message: "mini-batches (\(b) rows) need the gd or nesterov solver; \(solver) uses exact "
                                           + "full gradients (drop the batch size, or choose --solver gd)")
            }
            if optimizer.momentum > 0 {
                throw JobError.invalid(field: "optimizer.momentum",
                                       message: "momentum belongs to the gd solver; \(solver) has its own directions "
                                           + "(drop --momentum, or choose --solver gd)")
            }
        }
        if solver == .nesterov && optimizer.momentum > 0 {
            throw JobError.invalid(field: "optimizer.momentum",
                                   message: "nesterov sets its own momentum sequence; --momentum is heavy-ball momentum for gd")
        }
    }
}

extension OptimizerSpec {
    public func validate() throws {
        try Self.registry.validate(self)
        try JobError.within("learningRate") { try learningRate.validate() }
        guard momentum >= 0, momentum < 1 else {
            throw JobError.invalid(field: "momentum", message: "the momentum β must be in [0, 1), got \(momentum)")
        }
        if let b = batchSize, b < 1 {
            throw JobError.invalid(field: "batchSize", message: "the mini-batch must hold at least 1 row, got \(b)")
        }
    }
}

extension StoppingRule {
    public func validate() throws {
        guard maxIterations >= 1 else {
            throw JobError.invalid(field: "maxIterations", message: "the iteration limit must be at least 1, got \(maxIterations)")
        }
        guard tolerance >= 0, tolerance.isFinite else {
            throw JobError.invalid(field: "tolerance", message: "the tolerance must be a finite number ≥ 0 (0 disables it), got \(tolerance)")
        }
    }
}

// MARK: - The communication-efficient strategies

extension Job {
    /// What `gram` and `cocoa` need of the objective and the codec (the options' own ranges are
    /// `StrategySpec.validate()`'s).
    func validateCommunicationEfficient() throws {
        switch strategy.kind {
        case .gram:
            if case .logistic = objective {
                throw JobError.invalid(field: "strategy.kind",
                                       message: "gram solves the normal equations (XᵀX/n + λI)·w = Xᵀy/n of least squares and ridge; "
                                           + "logistic regression has none — use one-shot, local-sgd or cocoa (or a gradient strategy)")
            }
            if strategy.gram.useJobCodec, case .topK = codec {
                throw JobError.invalid(field: "codec",
                                       message: "gram sends XᵀX once: top-k would drop most of its entries, and what is left is not a Gram matrix "
                                           + "(use a dense codec with strategy.gram.useJobCodec, or leave it off for float64)")
            }
        case .cocoa:
            switch objective {
            case .leastSquares:
                throw JobError.invalid(field: "objective",
                                       message: "cocoa works on the dual problem, which needs an ℓ2 term: use ridge or logistic with λ > 0")
            case .ridge(let l) where l <= 0, .logistic(let l) where l <= 0:
                throw JobError.invalid(field: "objective.\(objective.name).lambda",
                                       message: "cocoa works on the dual problem, which needs λ > 0 (strong convexity), got \(l)")
            default: break
            }
            guard codec.isLossless else {
                throw JobError.invalid(field: "codec",
                                       message: "cocoa needs a lossless codec (float64): its duality gap certifies w = (1/λn)·Xᵀα, "
                                           + "which a compressed model change would break, got \(codec)")
            }
        default: break
        }
    }
}

// MARK: - Sparse data

extension Job {
    /// What sparse (CSR) data cannot do: the strategies that need dense rows, and the row
    /// partitionings other than balanced (sparse shards are balanced by nonzeros).
    func validateSparse() throws {
        guard isSparseData else { return }
        let why: String?
        switch strategy.kind {
        case .gram: why = "gram all-reduces the dense d × d matrix XᵀX (d² numbers, and a dense Cholesky), which sparse data with many columns cannot afford"
        case .oneShot: why = "one-shot solves each shard exactly with LAPACK on its dense rows"
        case .cocoa: why = "cocoa's local dual solver reads dense rows"
        default: why = nil
        }
        if let why {
            throw JobError.invalid(field: "strategy.kind",
                                   message: "\(strategy.kind) does not run on sparse data: \(why); use a gradient strategy, "
                                       + "or densify small data with dense (--dense)")
        }
        if partitioning != .balanced {
            throw JobError.invalid(field: "partitioning",
                                   message: "partitioning \(partitioning) is for dense data; sparse shards are balanced by nonzeros "
                                       + "(use balanced, or --dense)")
        }
        if case .file(let path, let format, let target) = data, (format ?? DataFormat(pathExtension: path)) == .npz {
            if target == nil {
                throw JobError.invalid(field: "data.file.target",
                                       message: "\(path): an .npz holds X only; give the targets as a 1-D .npy file (--target y.npy)")
            }
        }
    }
}
