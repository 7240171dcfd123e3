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
    /// The iteration `initialModel` was saved at: the run continues from there (its iteration
    /// numbers, its checkpoints and the rest of the job's iteration budget), and the report says
    /// it resumed.
    public var resumedIteration: Int?
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
        let work = try remainingJob()
        let comm = try await SocketCommunicator.rendezvous(configuration)
        do {
            let report: TrainingReport?
            switch job.precision {
            case .float64: report = try await run(PreparedProblem<Double>(job: work), comm: comm)
            case .float32: report = try await run(PreparedProblem<Float>(job: work), comm: comm)
            }
            await comm.close()
            return report
        } catch {
            comm.abort(reason: "\(error)")
            await comm.close()
            throw error
        }
    }

    /// The job this process runs: the whole job, or after a checkpoint at iteration N, what is
    /// left of it (the iteration budget less N; the trace as often as the whole job's).
    func remainingJob() throws -> Job {
        guard let n = resumedIteration, n > 0 else { return job }
        guard n < job.stopping.maxIterations else {
            throw SocketError.configuration("the checkpoint is at iteration \(n), and the job stops at \(job.stopping.maxIterations) iterations: nothing is left to run (raise --iterations to train on)")
        }
        var rest = job
        rest.traceEvery = job.effectiveTraceEvery
        rest.stopping.maxIterations = job.stopping.maxIterations - n
        return rest
    }

    private func run<Scalar: BLASScalar>(_ problem: PreparedProblem<Scalar>, comm: SocketCommunicator) async throws -> TrainingReport? {
        if let m = initialModel, m.count != problem.data.features {
            throw SocketError.configuration("the checkpoint has \(m.count) coefficients but the data has \(problem.data.features) features")
        }
        // Iterations of this process count from the checkpoint's.
        let offset = resumedIteration ?? 0
        let fullBudget = job.stopping.maxIterations
        let every = max(1, checkpointEvery ?? job.effectiveTraceEvery)
        let checkpoint = checkpointPath.map { Checkpointer(path: $0, every: every, jobID: configuration.jobID, offset: offset) }
        let recorderBox = RecorderBox()
        let progress = onProgress
        let isMonitor = comm.rank == 0
        let options = RunOptions(onProgress: { @Sendable p in
            comm.noteIteration(p.iteration + offset)
            if isMonitor {
                checkpoint?.observe(p, recorder: recorderBox.recorder)
                var shown = p
                shown.iteration += offset
                shown.maxIterations = fullBudget
                progress?(shown)
            }
        }, initialModel: initialModel)
        var node = problem.node(comm: comm, options: options)
        if checkpoint != nil, isMonitor, every < job.effectiveTraceEvery {
            // The checkpoint saves traced models: trace as often as we checkpoint.
            node = Node(comm: comm, shard: problem.shard(for: comm.rank), job: problem.job, totalRows: problem.data.rows,
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
        outcome.shiftIterations(by: offset)
        checkpoint?.finish(outcome)
        if comm.rank != 0 {
            try await withTaskExecutorPreference(comm.executor) {
                try await comm.finishAsWorker(outcome: Array(try JSONEncoder().encode(outcome)))
            }
            return nil
        }
        let others = try await withTaskExecutorPreference(comm.executor) { try await comm.finishAsCoordinator() }
        var outcomes = [outcome]
        var refused: [String] = []
        for (r, bytes) in others.sorted(by: { $0.key < $1.key }) {
            do {
                let o = try JSONDecoder().decode(NodeOutcome.self, from: Data(bytes))
                if let problem = Self.outcomeProblem(o, from: r, features: problem.data.features, size: comm.size) {
                    throw SocketError.configuration(problem)
                }
                outcomes.append(o)
            } catch {
                configuration.logger.error("rank \(r) sent an unusable outcome: \(error)")
                refused.append("rank \(r) sent an unusable outcome, left out of the report: \(error)")
            }
        }
        var report = problem.report(outcomes: outcomes, backend: "sockets", seconds: seconds)
        report.job = job
        if offset > 0 { report.notes.insert("resumed from checkpoint at iteration \(offset)", at: 0) }
        report.notes += refused
        for (r, reason) in comm.lostPeers.sorted(by: { $0.key < $1.key }) where others[r] == nil {
            report.notes.append("rank \(r) was lost and sent no outcome: \(reason)")
        }
        return report
    }
}

extension SocketNode {
    /// Why a worker's outcome (JSON from the network) cannot go into the report, or nil. The
    /// report indexes and averages its models, so their lengths are checked here.
    static func outcomeProblem(_ o: NodeOutcome, from sender: Int, features: Int, size: Int) -> String? {
        guard o.rank == sender else { return "field \"rank\" is \(o.rank), but it came from rank \(sender)" }
        if let m = o.model, m.count != features { return "field \"model\" has \(m.count) entries, the data has \(features) features" }
        if let p = o.trace.first(where: { $0.iteration < 0 || ($0.model.map { $0.count != features } ?? false) }) {
            return "field \"trace\" has a point at iteration \(p.iteration) with \(p.model?.count ?? 0) coefficients (\(features) expected)"
        }
        guard o.iterations >= 0 else { return "field \"iterations\" is \(o.iterations)" }
        guard o.rows >= 0 else { return "field \"rows\" is \(o.rows)" }
        guard o.metrics.bytesSentTo.count <= size else {
            return "field \"metrics.bytesSentTo\" has \(o.metrics.bytesSentTo.count) entries for a world of \(size)"
        }
        return nil
    }
}

extension NodeOutcome {
    /// Counts this node's iterations from `offset` (a resumed run): its total and its trace.
    mutating func shiftIterations(by offset: Int) {
        guard offset != 0 else { return }
        iterations += offset
        for i in trace.indices { trace[i].iteration += offset }
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
        let c: Checkpoint
        do { c = try JSONDecoder().decode(Checkpoint.self, from: data) } catch {
            throw SocketError.configuration("--resume \(path): not a checkpoint: \(error)")
        }
        guard c.iteration >= 0 else {
            throw SocketError.configuration("--resume \(path): field \"iteration\" is \(c.iteration), must be at least 0")
        }
        if let j = c.model.firstIndex(where: { !$0.isFinite }) {
            throw SocketError.configuration("--resume \(path): field \"model\" has \(c.model[j]) at index \(j)")
        }
        return c
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
    /// Iterations before this process's first (a resumed run): saved iterations count from the
    /// start of training.
    let offset: Int
    private var lastWritten: Int?

    init(path: String, every: Int, jobID: String, offset: Int = 0) {
        self.path = path
        self.every = every
        self.jobID = jobID
        self.offset = offset
    }

    /// `p` and the recorder's points count from this process's start.
    func observe(_ p: TrainingProgress, recorder: Recorder?) {
        guard lastWritten.map({ p.iteration + offset - $0 >= every }) ?? true,
              let point = recorder?.points.last, point.iteration == p.iteration, let model = point.model else { return }
        save(Checkpoint(jobID: jobID, iteration: point.iteration + offset, model: model, time: point.time))
    }

    /// The final model, so a finished run's checkpoint is its answer (`outcome` already counts
    /// from the start of training).
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
