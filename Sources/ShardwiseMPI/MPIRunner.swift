#if MPI
import Foundation
import Shardwise

/// One rank's part of a training run under MPI — the SPMD program every rank executes:
///
/// 1. prepare the problem (every rank loads or generates the same data deterministically and
///    keeps its own shard; a data file must be readable on every host);
/// 2. meet in a barrier, so the ranks' clocks start together;
/// 3. run the strategy on this rank's `Node`;
/// 4. send its `NodeOutcome` (JSON) to rank 0, which builds the `TrainingReport`;
/// 5. close the communicator (every message delivered) — MPI_Finalize is the caller's.
///
/// The world size decides the node count: a job that says otherwise is run on `world.size` nodes,
/// with a note in the report.
public struct MPIRunner: Sendable {
    public let world: MPIWorld
    /// OpenBLAS threads per rank; nil = this host's cores shared among its ranks.
    public var blasThreads: Int?

    public init(world: MPIWorld) { self.world = world }

    /// What a rank sends to rank 0 when it is done.
    struct RankResult: Codable {
        var outcome: NodeOutcome
        /// Seconds from the start barrier to this rank's end.
        var seconds: Double
        var host: String
    }

    /// Runs this rank's node.
    ///
    /// - Parameters:
    ///   - options: progress and initial model (progress is reported by rank 0 only).
    ///   - shareReport: also send the report from rank 0 to every rank (for `MPIBackend.run`).
    /// - Returns: the report at rank 0 (at every rank with `shareReport`), nil elsewhere.
    /// - Throws: the first error of this rank. The caller should then end the job
    ///   (`world.abort()`), so that the other ranks stop at once instead of at their timeouts.
    public func run(_ job: Job, options: RunOptions = RunOptions(), shareReport: Bool = false) async throws -> TrainingReport? {
        var job = job
        var notes: [String] = []
        if job.nodes != world.size {
            notes.append("mpi: the job asked for \(job.nodes) nodes; MPI_COMM_WORLD has \(world.size) ranks, which decide")
            job.nodes = world.size
        }
        try MPIBackend().check(job)
        // Ranks on one host share its cores: OpenBLAS gets its share, as in the threads backend.
        if let blasThreads {
            BLASThreading.set(threads: blasThreads)
        } else if world.localSize > 1 {
            BLASThreading.set(threads: max(1, MPIWorld.coresOnHost / world.localSize))
        }
        switch job.precision {
        case .float64:
            return try await run(problem: PreparedProblem<Double>(job: job), options: options, shareReport: shareReport, notes: notes)
        case .float32:
            return try await run(problem: PreparedProblem<Float>(job: job), options: options, shareReport: shareReport, notes: notes)
        }
    }

    private func run<Scalar: BLASScalar>(
        problem: PreparedProblem<Scalar>, options: RunOptions, shareReport: Bool, notes: [String]
    ) async throws -> TrainingReport? {
        let job = problem.job
        try world.barrier()
        let comm = MPICommunicator(world: world, timeout: job.timeout)
        let node = problem.node(comm: comm, options: comm.rank == 0 ? options : RunOptions(initialModel: options.initialModel))
        var outcome = try await job.strategy.kind.makeStrategy().run(node)
        let seconds = comm.now
        outcome.metrics = comm.metrics.snapshot
        let mine = RankResult(outcome: outcome, seconds: seconds, host: world.processorName)

        var report: TrainingReport?
        if comm.rank == 0 {
            var results = [mine]
            for r in 1..<comm.size {
                let message = try await comm.receive(from: .rank(r), tag: .gather, timeout: job.timeout)
                results.append(try Self.decode(RankResult.self, message.payload, what: "rank \(r)'s outcome"))
            }
            var built = problem.report(outcomes: results.map(\.outcome), backend: "mpi",
                                       seconds: results.map(\.seconds).max() ?? seconds)
            let hosts = Set(results.map(\.host)).count
            built.notes.append(contentsOf: notes)
            built.notes.append("mpi: \(comm.size) rank\(comm.size == 1 ? "" : "s") on \(hosts) host\(hosts == 1 ? "" : "s") (\(world.libraryVersion))")
            report = built
            if shareReport {
                let bytes = try Self.encode(built)
                for r in 1..<comm.size { try await comm.send(bytes, to: r, tag: .broadcast) }
            }
        } else {
            try await comm.send(try Self.encode(mine), to: 0, tag: .gather)
            if shareReport {
                // Rank 0 evaluates the trace before it answers: allow it the job's timeout again.
                let message = try await comm.receive(from: .rank(0), tag: .broadcast, timeout: 2 * job.timeout)
                report = try Self.decode(TrainingReport.self, message.payload, what: "the report")
            }
        }
        try await comm.close()
        return report
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw CommunicationError.badPayload("\(what) (\(bytes.count) bytes of JSON) does not decode: \(error)")
        }
    }
}

/// The MPI backend as a `Backend`, for SPMD programs started by mpirun: every rank calls
/// `run(job)` and every rank gets the report (assembled by rank 0 and sent to the others).
///
/// ```swift
/// // mpirun -np 4 ./my-trainer
/// let world = try MPIWorld.initialize()
/// let report = try await MPIBackend().run(job)
/// if world.rank == 0 { print(report.relativeDistance ?? .nan) }
/// world.finalize()
/// ```
///
/// The node count is the world size. Hogwild is refused (ranks share no memory).
public struct MPIBackend: Backend {
    public var name: String { "mpi" }
    public var hasSharedMemory: Bool { false }

    public init() {}

    public func run(_ job: Job, options: RunOptions) async throws -> TrainingReport {
        let world = try MPIWorld.initialize()
        guard let report = try await MPIRunner(world: world).run(job, options: options, shareReport: true) else {
            throw CommunicationError.badPayload("rank \(world.rank) received no report")
        }
        return report
    }
}
#endif
