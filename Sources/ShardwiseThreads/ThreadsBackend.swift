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
        // Several nodes share the cores: one BLAS thread each. One node on a small problem: one
        // thread too, since handing a small gemv to OpenBLAS's pool costs more than it saves.
        if m > 1 || problem.data.bytes < 8 << 20 {
            return try await BLASThreading.withOneThread { try await train(problem: problem, options: options) }
        }
        return try await train(problem: problem, options: options)
    }

    private func train<Scalar: BLASScalar>(problem: PreparedProblem<Scalar>, options: RunOptions) async throws -> TrainingReport {
        let job = problem.job
        let m = job.nodes

        let strategy = job.strategy.kind.makeStrategy()
        var seconds = 0.0
        var comms: [any Communicator] = []
        var outcomes = try await Self.spmd(size: m, timeout: job.timeout, cores: cores) { comm in
            problem.node(comm: comm, options: comm.rank == 0 ? options : RunOptions(initialModel: options.initialModel))
        } body: { node in
            try await strategy.run(node)
        } finished: { allComms, elapsed in
            comms = allComms
            seconds = elapsed
        }
        for i in outcomes.indices { outcomes[i].metrics = comms[outcomes[i].rank].metrics.snapshot }
        return problem.report(outcomes: outcomes, backend: name, seconds: seconds)
    }

    /// Runs an SPMD program: `body` on `size` nodes, each on its own thread with its own
    /// communicator, and returns every node's result in rank order. The first failure cancels the
    /// other nodes (their pending receives fail at once) and is rethrown.
    ///
    /// ```swift
    /// let sums = try await ThreadsBackend.spmd(size: 4) { comm in
    ///     var v = [Double(comm.rank)]
    ///     try await comm.allReduce(&v, algorithm: .ring, codec: CodecSpec.float64.makeCodec())
    ///     return v[0]
    /// }   // [6, 6, 6, 6]
    /// ```
    public static func spmd<T: Sendable>(
        size: Int, timeout: Double = 60, cores: Int = ProcessorCount.online,
        _ body: @escaping @Sendable (any Communicator) async throws -> T
    ) async throws -> [T] {
        try await spmd(size: size, timeout: timeout, cores: cores, prepare: { $0 }, body: body, finished: { _, _ in })
    }

    static func spmd<Context: Sendable, T: Sendable>(
        size m: Int, timeout: Double, cores: Int,
        prepare: (any Communicator) -> Context,
        body: @escaping @Sendable (Context) async throws -> T,
        finished: ([any Communicator], Double) -> Void
    ) async throws -> [T] {
        precondition(m >= 1, "an SPMD run needs at least one node")
        let fabric = InMemoryFabric(size: m)
        let memory = SharedMemoryRegistry()
        let comms = (0..<m).map { InMemoryCommunicator(rank: $0, fabric: fabric, timeout: timeout, sharedMemory: memory) }
        let spin: UInt64 = m <= cores ? 200_000 : 0
        let threads = (0..<m).map { NodeThread(name: "node-\($0)", spinNanoseconds: spin) }
        threads.forEach { $0.start() }
        fabric.startWatchdog()
        defer {
            fabric.stopWatchdog()
            threads.forEach { $0.stop() }
        }
        let contexts = comms.map { prepare($0) }
        let start = fabric.now
        var results = [T?](repeating: nil, count: m)
        var firstError: (any Error)?
        await withTaskGroup(of: (Int, Result<T, any Error>).self) { group in
            for r in 0..<m {
                let context = contexts[r]
                group.addTask(executorPreference: threads[r]) {
                    do { return (r, .success(try await body(context))) } catch { return (r, .failure(error)) }
                }
            }
            for await (r, result) in group {
                switch result {
                case .success(let value): results[r] = value
                case .failure(let e):
                    // The first real failure ends the run; the cancellations it causes are echoes.
                    if firstError == nil || (isEcho(firstError!) && !isEcho(e)) { firstError = e }
                    fabric.cancel(reason: "rank \(r) failed: \(e)")
                }
            }
        }
        finished(comms, fabric.now - start)
        if let firstError { throw firstError }
        return results.map { $0! }
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
