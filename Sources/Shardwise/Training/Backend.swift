/// Runs a `Job` on some nodes and returns its `TrainingReport`: makes the communicators, gives each
/// node its shard, runs the strategy on every node, collects the outcomes.
///
/// Backends: `ThreadsBackend` (ShardwiseThreads), the socket backend (ShardwiseSockets), the
/// simulator (ShardwiseSimulation), MPI (ShardwiseMPI).
public protocol Backend: Sendable {
    var name: String { get }
    /// Whether nodes share memory (Hogwild needs it).
    var hasSharedMemory: Bool { get }
    func run(_ job: Job, options: RunOptions) async throws -> TrainingReport
}

/// Options of a run that are not part of the job (they do not change the result).
public struct RunOptions: Sendable {
    /// Progress of the monitor node (the CLI's progress line).
    public var onProgress: (@Sendable (TrainingProgress) -> Void)?
    /// A model to start from (resume).
    public var initialModel: [Double]?
    public init(onProgress: (@Sendable (TrainingProgress) -> Void)? = nil, initialModel: [Double]? = nil) {
        self.onProgress = onProgress
        self.initialModel = initialModel
    }
}

extension Backend {
    public func run(_ job: Job) async throws -> TrainingReport { try await run(job, options: RunOptions()) }

    /// Refuses a job this backend cannot run, by name, before anything starts.
    public func check(_ job: Job) throws {
        try job.validate()
        if job.strategy.kind.makeStrategy().requiresSharedMemory && !hasSharedMemory {
            throw CommunicationError.unsupported(
                backend: name, operation: job.strategy.kind.rawValue,
                reason: "it updates one model in shared memory, and this backend's nodes share no memory; use --backend threads")
        }
    }
}
