import Shardwise

/// The simulated backend: every node of the job runs the real math (real shards, real gradients,
/// real staleness) as a task on one thread, and only time is simulated, on one virtual clock with
/// the network, compute, straggler and fault models of `SimulationModel`.
///
/// The same job and model give the same report, bit for bit: node code runs in an order fixed by
/// the event queue (time, then scheduling order), and nothing reads the wall clock into the
/// report — `seconds` is virtual, and `setupSeconds` (wall time of loading and solving) is set to
/// 0 for that reason.
///
/// ```swift
/// var job = Job(data: .synthetic(SyntheticSpec(rows: 102_400, features: 100)))
/// job.nodes = 1024
/// job.strategy.kind = .allReduce
/// let model = SimulationModel(network: NetworkModel(latency: 50e-6, bandwidth: 1.25e9))
/// let report = try await SimulationBackend(model: model).run(job)
/// print(report.seconds)   // virtual seconds
/// ```
///
/// Hogwild runs here too: the nodes share memory (one thread applies their updates in virtual-time
/// order). The generic collectives run message by message under the network model; only the
/// `native` all-reduce algorithm is modelled in closed form (the ring's time, without its
/// 2(m−1)·m messages), for scaling studies far beyond what message-level simulation can afford.
public struct SimulationBackend: Backend {
    public var model: SimulationModel
    public var name: String { "simulation" }
    public var hasSharedMemory: Bool { true }

    public init(model: SimulationModel = SimulationModel()) { self.model = model }

    public func run(_ job: Job, options: RunOptions) async throws -> TrainingReport {
        try check(job)
        // Before the reference solution too: LAPACK on several threads rounds differently.
        return try await BLASThreading.withOneThread {
            switch job.precision {
            case .float64: return try await run(problem: PreparedProblem<Double>(job: job), options: options)
            case .float32: return try await run(problem: PreparedProblem<Float>(job: job), options: options)
            }
        }
    }

    /// Checks the model against a world of `nodes` (the rules are the core's,
    /// `SimulationModel.validate(nodes:)`; a study checks once over all its node counts instead).
    public func validate(nodes: Int) throws(SimulationModelError) {
        try model.validate(nodes: nodes)
    }

    /// Runs an already prepared problem (lets callers reuse the data and the reference solution).
    public func run<Scalar: BLASScalar>(problem: PreparedProblem<Scalar>, options: RunOptions = RunOptions()) async throws -> TrainingReport {
        let job = problem.job
        try check(job)
        try validate(nodes: job.nodes)
        // One BLAS thread for the whole run, held (see `BLASThreading.withOneThread`): a
        // multi-threaded gemv sums in a different order, and would break bit-identical reports.
        return try await BLASThreading.withOneThread { try await simulate(problem: problem, options: options) }
    }

    private func simulate<Scalar: BLASScalar>(problem: PreparedProblem<Scalar>, options: RunOptions) async throws -> TrainingReport {
        let job = problem.job

        let strategy = job.strategy.kind.makeStrategy()
        let run = try await simulate(nodes: job.nodes, timeout: job.timeout) { comm in
            let node = problem.node(comm: comm, options: comm.rank == 0 ? options : RunOptions(initialModel: options.initialModel))
            return try await strategy.run(node)
        }
        var outcomes = run.results
        for i in outcomes.indices { outcomes[i].metrics = run.metrics[outcomes[i].rank] }
        var report = problem.report(outcomes: outcomes, backend: name, seconds: run.seconds)
        report.setupSeconds = 0   // wall time would break bit-identical reports
        report.simulation = SimulationInfo(model: model, events: run.events, messages: run.messages,
                                           virtualSeconds: run.seconds)
        return report
    }

    /// Runs any SPMD program on `nodes` simulated nodes under this backend's model: `body` runs once
    /// per rank with that rank's communicator. The building block of `run`, and what the
    /// closed-form tests use to time a single collective.
    ///
    /// ```swift
    /// let r = try await SimulationBackend(model: model).simulate(nodes: 8) { comm in
    ///     var v = [Double](repeating: 1, count: 800)
    ///     try await comm.ringAllReduce(&v, codec: CodecSpec.float64.makeCodec())
    ///     return v[0]
    /// }
    /// // r.seconds == 2·7·(α + 100·8/β)
    /// ```
    public func simulate<T: Sendable>(
        nodes: Int, timeout: Double = 60, _ body: @escaping @Sendable (any Communicator) async throws -> T
    ) async throws -> SimulationRun<T> {
        guard nodes >= 1 else { throw SimulationError.invalidModel("a simulation needs at least 1 node, got \(nodes)") }
        try validate(nodes: nodes)
        let engine = SimulationEngine(size: nodes, model: model, defaultTimeout: timeout)
        let memory = SharedMemoryRegistry(nodesRunInParallel: false)   // nodes take turns on one thread
        let comms = (0..<nodes).map { SimulatedCommunicator(rank: $0, engine: engine, sharedMemory: memory) }
        let results = ResultSlots<T>(count: nodes)
        await engine.run { rank in
            results.values[rank] = try await body(comms[rank])
        }
        if let error = engine.firstError { throw error }
        return SimulationRun(results: results.values.map { $0! }, seconds: engine.finishTime,
                             metrics: comms.map(\.metrics.snapshot), events: engine.eventsProcessed,
                             messages: engine.messages)
    }
}

/// What `SimulationBackend.simulate` returns: each rank's result, the virtual time at which the
/// last rank finished, each rank's metrics (virtual seconds), and the size of the simulation.
public struct SimulationRun<T: Sendable>: Sendable {
    public var results: [T]
    public var seconds: Double
    public var metrics: [NodeMetrics.Snapshot]
    public var events: Int
    public var messages: Int
}

/// Per-rank result slots, written by each rank's task on the simulation thread.
final class ResultSlots<T>: @unchecked Sendable {
    var values: [T?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
}

/// Errors of the simulator's configuration.
public enum SimulationError: Error, CustomStringConvertible, Equatable {
    /// A model parameter is out of range.
    case invalidModel(String)

    public var description: String {
        switch self {
        case .invalidModel(let what): return "simulation model: \(what)"
        }
    }
}
