@preconcurrency import Crypto
import Foundation
import Logging
import Shardwise

/// The program of one node process of a socket run (`shardwise node`): rendezvous, prepare the
/// same problem as every other node (deterministically), run the strategy, hand the outcome to
/// rank 0, which builds the report.
public struct SocketNode: Sendable {
    public var job: Job
    public var configuration: SocketConfiguration
    /// Rank 0 writes the last good model here (atomically) at every trace point, or every
    /// `checkpointEvery` iterations when that is given (the monitor then traces that often).
    public var checkpointPath: String?
    public var checkpointEvery: Int?
    /// A model to start from (read from a checkpoint).
    public var initialModel: [Double]?
    /// Progress of the monitor (rank 0).
    public var onProgress: (@Sendable (TrainingProgress) -> Void)?

    public init(job: Job, configuration: SocketConfiguration) {
        self.job = job
        self.configuration = configuration
    }

    /// A run's identity on the wire: the hash of its job, so nodes of different jobs never mix.
    public static func jobID(_ job: Job) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(job)) ?? Data()
        return SHA256.hash(data: data).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Runs the node. Rank 0 returns the report; the others return nil.
    public func run() async throws -> TrainingReport? {
        // Checked here too, so that every node refuses Hogwild by name, not only the launcher.
        try SocketsBackend.refuseUnsupported(job)
        let comm = try await SocketCommunicator.rendezvous(configuration)
        do {
            let report: TrainingReport?
            switch job.precision {
            case .float64: report = try await run(PreparedProblem<Double>(job: job), comm: comm)
            case .float32: report = try await run(PreparedProblem<Float>(job: job), comm: comm)
            }
            await comm.close()
            return report
        } catch {
            comm.abort(reason: "\(error)")
            await comm.close()
            throw error
        }
    }

    private func run<Scalar: BLASScalar>(_ problem: PreparedProblem<Scalar>, comm: SocketCommunicator) async throws -> TrainingReport? {
        if let m = initialModel, m.count != problem.dataset.features {
            throw SocketError.configuration("the checkpoint has \(m.count) coefficients but the data has \(problem.dataset.features) features")
        }
        let every = max(1, checkpointEvery ?? job.effectiveTraceEvery)
        let checkpoint = checkpointPath.map { Checkpointer(path: $0, every: every, jobID: configuration.jobID) }
        let recorderBox = RecorderBox()
        let progress = onProgress
        let isMonitor = comm.rank == 0
        let options = RunOptions(onProgress: { @Sendable p in
            comm.noteIteration(p.iteration)
            if isMonitor {
                checkpoint?.observe(p, recorder: recorderBox.recorder)
                progress?(p)
            }
        }, initialModel: initialModel)
        var node = problem.node(comm: comm, options: options)
        if checkpoint != nil, isMonitor, every < job.effectiveTraceEvery {
            // The checkpoint saves traced models: trace as often as we checkpoint.
            node = Node(comm: comm, shard: problem.shard(for: comm.rank), job: job, totalRows: problem.dataset.rows,
                        reference: problem.reference, initialModel: initialModel,
                        recorder: Recorder(rank: comm.rank, traceEvery: every, onProgress: options.onProgress))
        }
        recorderBox.recorder = node.recorder
        let strategy = job.strategy.kind.makeStrategy()
        let start = comm.now
        var outcome = try await withTaskExecutorPreference(comm.executor) {
            try await strategy.run(node)
        }
        let seconds = comm.now - start
        outcome.metrics = comm.metrics.snapshot
        checkpoint?.finish(outcome)
        if comm.rank != 0 {
            try await withTaskExecutorPreference(comm.executor) {
                try await comm.finishAsWorker(outcome: Array(try JSONEncoder().encode(outcome)))
            }
            return nil
        }
        let others = try await withTaskExecutorPreference(comm.executor) { try await comm.finishAsCoordinator() }
        var outcomes = [outcome]
        for (r, bytes) in others.sorted(by: { $0.key < $1.key }) {
            do {
                outcomes.append(try JSONDecoder().decode(NodeOutcome.self, from: Data(bytes)))
            } catch {
                configuration.logger.error("rank \(r) sent an unreadable outcome: \(error)")
            }
        }
        var report = problem.report(outcomes: outcomes, backend: "sockets", seconds: seconds)
        for (r, reason) in comm.lostPeers.sorted(by: { $0.key < $1.key }) where others[r] == nil {
            report.notes.append("rank \(r) was lost and sent no outcome: \(reason)")
        }
        return report
    }
}

/// The node's recorder, known only after the node is built (the progress callback is made before).
final class RecorderBox: @unchecked Sendable {
    var recorder: Recorder?
}

/// A model on disk to resume from.
public struct Checkpoint: Codable, Sendable {
    public var jobID: String
    /// The model at the start of this iteration (before its update).
    public var iteration: Int
    public var model: [Double]
    public var time: Double

    /// Reads a checkpoint written by `--checkpoint`.
    public static func load(_ path: String) throws -> Checkpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SocketError.configuration("--resume \(path): cannot read the file")
        }
        do { return try JSONDecoder().decode(Checkpoint.self, from: data) } catch {
            throw SocketError.configuration("--resume \(path): not a checkpoint: \(error)")
        }
    }

    /// Writes atomically through `OutputFile` (whole or not at all, through symbolic links).
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try OutputFile.writeAtomically(Array(try encoder.encode(self)), to: path)
    }
}

/// Writes rank 0's newest traced model every `every` iterations: the models in the trace are the
/// monitor's `w` at the start of an iteration, i.e. the last good model.
final class Checkpointer: @unchecked Sendable {
    let path: String
    let every: Int
    let jobID: String
    private var lastWritten: Int?

    init(path: String, every: Int, jobID: String) {
        self.path = path
        self.every = every
        self.jobID = jobID
    }

    func observe(_ p: TrainingProgress, recorder: Recorder?) {
        guard lastWritten.map({ p.iteration - $0 >= every }) ?? true,
              let point = recorder?.points.last, point.iteration == p.iteration, let model = point.model else { return }
        save(Checkpoint(jobID: jobID, iteration: point.iteration, model: model, time: point.time))
    }

    /// The final model, so a finished run's checkpoint is its answer.
    func finish(_ outcome: NodeOutcome) {
        if let model = outcome.model, outcome.rank == 0 {
            save(Checkpoint(jobID: jobID, iteration: outcome.iterations, model: model, time: 0))
        }
    }

    private func save(_ c: Checkpoint) {
        do {
            try c.write(to: path)
            lastWritten = c.iteration
        } catch {
            Logger(label: "shardwise.sockets").error("cannot write the checkpoint \(path): \(error)")
        }
    }
}
