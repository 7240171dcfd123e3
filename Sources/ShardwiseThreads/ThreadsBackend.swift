import Shardwise

/// The shared-memory backend: every node is an OS thread of this process, messages are passed in
/// memory and counted as a network would count them, and OpenBLAS runs one thread per node so the
/// nodes do not fight over the cores.
///
/// ```swift
/// var job = Job(data: .synthetic(SyntheticSpec(rows: 20_000, features: 50)))
/// job.nodes = 4
/// job.strategy.kind = .allReduce
/// let report = try await ThreadsBackend().run(job)
/// print(report.relativeDistance ?? .nan)
/// ```
public struct ThreadsBackend: Backend {
    public var name: String { "threads" }
    public var hasSharedMemory: Bool { true }
    /// Cores available; nodes spin briefly while waiting only when there are no more nodes than cores.
    public var cores: Int

    public init(cores: Int = ProcessorCount.online) { self.cores = cores }

    public func run(_ job: Job, options: RunOptions) async throws -> TrainingReport {
        try check(job)
        switch job.precision {
        case .float64: return try await run(problem: PreparedProblem<Double>(job: job), options: options)
        case .float32: return try await run(problem: PreparedProblem<Float>(job: job), options: options)
        }
    }

    /// Runs an already prepared problem (lets callers reuse the data and the reference solution).
    public func run<Scalar: BLASScalar>(problem: PreparedProblem<Scalar>, options: RunOptions = RunOptions()) async throws -> TrainingReport {
        let job = problem.job
        try check(job)
        let m = job.nodes
        let previousThreads = BLASThreading.threads
        if m > 1 { BLASThreading.set(threads: 1) }
        defer { BLASThreading.set(threads: previousThreads) }

        let fabric = InMemoryFabric(size: m)
        let memory = InMemorySharedMemory()
        let comms = (0..<m).map { InMemoryCommunicator(rank: $0, fabric: fabric, timeout: job.timeout, sharedMemory: memory) }
        let spin: UInt64 = m <= cores ? 200_000 : 0
        let threads = (0..<m).map { NodeThread(name: "node-\($0)", spinNanoseconds: spin) }
        threads.forEach { $0.start() }
        fabric.startWatchdog()
        defer {
            fabric.stopWatchdog()
            threads.forEach { $0.stop() }
        }
        let strategy = job.strategy.kind.makeStrategy()
        let nodes = comms.map { problem.node(comm: $0, options: $0.rank == 0 ? options : RunOptions(initialModel: options.initialModel)) }
        let start = fabric.now
        var outcomes: [NodeOutcome] = []
        var firstError: (any Error)?
        await withTaskGroup(of: Result<NodeOutcome, any Error>.self) { group in
            for (r, node) in nodes.enumerated() {
                group.addTask(executorPreference: threads[r]) {
                    do { return .success(try await strategy.run(node)) } catch { return .failure(error) }
                }
            }
            for await result in group {
                switch result {
                case .success(let o): outcomes.append(o)
                case .failure(let e):
                    // The first real failure ends the run; the others are its echoes.
                    if firstError == nil || (firstError is CommunicationError && Self.isEcho(firstError!)) && !Self.isEcho(e) {
                        firstError = e
                    }
                    fabric.cancel(reason: "another node failed: \(e)")
                }
            }
        }
        let seconds = fabric.now - start
        if let firstError { throw firstError }
        for i in outcomes.indices { outcomes[i].metrics = comms[outcomes[i].rank].metrics.snapshot }
        return problem.report(outcomes: outcomes, backend: name, seconds: seconds)
    }

    private static func isEcho(_ e: any Error) -> Bool {
        if case CommunicationError.cancelled = e { return true }
        return false
    }
}

/// The number of online processors.
public enum ProcessorCount {
    public static var online: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

#if canImport(Glibc)
import Glibc
#endif
