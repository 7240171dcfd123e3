import ArgumentParser
import Foundation
import Logging
import Shardwise
import ShardwiseMPI
import ShardwiseSockets

/// The transports a hand-started node can use. (`mpi` joins here: `case mpi` and a branch in
/// `NodeCommand.run`.)
enum NodeBackendChoice: String, ExpressibleByArgument, CaseIterable {
    /// TCP through SwiftNIO, rendezvous at `--coordinator`.
    case sockets
    /// MPI ranks under mpirun/srun: rank and size from MPI_COMM_WORLD (a build with the MPI trait).
    case mpi
}

/// Log levels as flags.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Sets up swift-log once per process: stderr, the given level.
func bootstrapLogging(_ level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level
        return h
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run one node of a distributed run (every node runs the same job).",
        discussion: """
            Rank 0 listens on --coordinator; the other ranks join it there, authenticate with the \
            shared secret (SHARDWISE_SECRET or --secret-file), learn the peer table and train. \
            Rank 0 collects every node's outcome and writes the report.

            Example, two terminals on one host:
              export SHARDWISE_SECRET=$(openssl rand -hex 32)
              shardwise node --rank 0 --size 2 --coordinator 127.0.0.1:29500 --job job.json --report r.json
              shardwise node --rank 1 --size 2 --coordinator 127.0.0.1:29500 --job job.json

            With --backend mpi the launcher (mpirun, srun) starts the ranks; no rank, size or coordinator:
              mpirun -np 4 shardwise node --backend mpi --job job.json --report r.json
            """
    )

    @Option(help: "Transport: sockets, or mpi (under mpirun/srun).")
    var backend: NodeBackendChoice = .sockets

    @Option(help: "This node's rank, 0 ≤ rank < size (sockets).")
    var rank: Int?

    @Option(help: "Number of nodes (sockets).")
    var size: Int?

    @Option(help: ArgumentHelp("Rank 0's address: rank 0 listens there, the others join it (sockets).", valueName: "host:port"))
    var coordinator: String?

    @Option(help: ArgumentHelp("The job (JSON, as written by --report or launch).", valueName: "file"))
    var job: String

    @Option(help: ArgumentHelp("Rank 0: write the report (JSON) here.", valueName: "file"))
    var report: String?

    @OptionGroup var timeline: TimelineOutput

    @Option(help: ArgumentHelp("Rank 0: write the last good model here (atomically) as training goes.", valueName: "file"))
    var checkpoint: String?

    @Option(help: "Iterations between checkpoints (default: every trace point).")
    var checkpointEvery: Int?

    @Option(help: ArgumentHelp("Start from the model of a checkpoint file (every node needs it).", valueName: "file"))
    var resume: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .warning

    @Option(help: ArgumentHelp("Read the shared secret from this file instead of SHARDWISE_SECRET.", valueName: "file"))
    var secretFile: String?

    @Option(help: ArgumentHelp("Address to accept data links on (ranks > 0). Loopback by default; a LAN address for multi-host runs.", valueName: "host"))
    var bind = "127.0.0.1"

    @Option(help: ArgumentHelp("Rank 0: write the port it bound here (with --coordinator HOST:0).", valueName: "file"))
    var portFile: String?

    @Option(help: "Largest message accepted, in bytes.")
    var maxFrameBytes: Int = 512 << 20

    @Option(help: "OpenBLAS threads (1 when several nodes share a machine; default: OpenBLAS's choice).")
    var blasThreads: Int?

    @Option(help: ArgumentHelp("Microseconds a receive waits on its own links (busy-polling the first 100) before it sleeps in the event loop (0 = never; sockets).", valueName: "µs"))
    var spinUs: Double = SocketConfiguration.defaultSpinSeconds * 1e6

    @Flag(help: "Rank 0: print progress lines on stdout (for `launch`).")
    var progressLines = false

    func validate() throws {
        if backend == .mpi {
            guard rank == nil && size == nil && coordinator == nil else {
                throw ValidationError("--backend mpi takes rank and size from MPI_COMM_WORLD: drop --rank, --size and --coordinator")
            }
            if checkpoint != nil { throw ValidationError("--checkpoint is not available with --backend mpi yet") }
            return
        }
        guard let rank, let size, let coordinator else {
            throw ValidationError("--backend sockets needs --rank, --size and --coordinator")
        }
        guard size >= 1 else { throw ValidationError("--size must be at least 1") }
        guard (0..<size).contains(rank) else { throw ValidationError("--rank must be in 0..<\(size), got \(rank)") }
        _ = try parseAddress(coordinator)
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1") }
        if maxFrameBytes < 1024 || maxFrameBytes > Int(UInt32.max) { throw ValidationError("--max-frame-bytes must be in 1 KiB … 4 GiB") }
        guard spinUs >= 0, spinUs <= 1e6 else { throw ValidationError("--spin-us must be in 0 … 1000000, got \(spinUs)") }
    }

    func run() async throws {
        if rank ?? 0 == 0 { try OutputFile.check(path: report, option: "--report") }   // rank 0 writes (every MPI rank checks)
        if rank ?? 0 == 0 { try OutputFile.check(path: checkpoint, option: "--checkpoint") }
        if rank ?? 0 == 0 { try OutputFile.check(path: portFile, option: "--port-file") }
        if rank ?? 0 == 0 { try timeline.check() }   // recorded when the job's timelineEvery > 0 (launch sets it)
        bootstrapLogging(logLevel)
        if let blasThreads { BLASThreading.set(threads: blasThreads) }
        let job = try loadJob(self.job)
        switch backend {
        case .sockets:
            guard job.nodes == size else {
                throw ValidationError("the job is for \(job.nodes) nodes but --size is \(size.map(String.init) ?? "-")")
            }
            try await runSockets(job)
        case .mpi:
            #if MPI
            try await runMPINode(job: job, report: report, progressLines: progressLines,
                                 initialModel: try resume.map { try Checkpoint.load($0).model }, blasThreads: blasThreads)
            #else
            throw ValidationError(MPISupport.unavailableMessage)
            #endif
        }
    }

    private func runSockets(_ job: Job) async throws {
        guard let rank, let size, let coordinator else { throw ValidationError("--rank, --size and --coordinator are required") }
        LauncherWatch.start(rank: rank)
        let (host, port) = try parseAddress(coordinator)
        var config = SocketConfiguration(
            rank: rank, size: size, coordinatorHost: host, coordinatorPort: port, bindHost: bind,
            secret: try SharedSecret.load(file: secretFile), jobID: SocketNode.jobID(job), timeout: job.timeout,
            portFile: portFile, logger: Logger(label: "shardwise.node"))
        config.maximumFrameBytes = maxFrameBytes
        config.spinSeconds = spinUs * 1e-6
        var node = SocketNode(job: job, configuration: config)
        node.checkpointPath = checkpoint
        node.checkpointEvery = checkpointEvery
        if let resume {
            let saved = try Checkpoint.load(resume)
            node.initialModel = saved.model
            node.resumedIteration = saved.iteration
        }
        if progressLines {
            let throttle = ProgressThrottle()
            node.onProgress = { p in
                if throttle.due(p) { FileHandle.standardOutput.write(Data((ProgressLine.format(p) + "\n").utf8)) }
            }
        }
        do {
            if var result = try await node.run() {
                try timeline.write(&result)
                if let report { try writeJSON(result, to: report) }
            }
        } catch {
            // One line that names the rank (the launcher shows it), then a failing exit.
            let text = "\(error)"
            printError("Error: " + (text.hasPrefix("rank \(rank)") ? text : "rank \(rank): \(text)"))
            throw ExitCode(3)
        }
    }
}

/// At most ten progress lines a second (and always the last iteration).
final class ProgressThrottle: @unchecked Sendable {
    private var last = 0.0
    func due(_ p: TrainingProgress) -> Bool {
        let now = MonotonicClock.now()
        guard now - last >= 0.1 || p.iteration + 1 >= p.maxIterations else { return false }
        last = now
        return true
    }
}

/// "host:port" (IPv6 as "[::1]:port").
func parseAddress(_ text: String) throws -> (host: String, port: Int) {
    var host = text, portText = ""
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        host = String(text[text.index(after: text.startIndex)..<close])
        portText = String(text[text.index(after: close)...].dropFirst())
    } else if let colon = text.lastIndex(of: ":") {
        host = String(text[..<colon])
        portText = String(text[text.index(after: colon)...])
    }
    guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
        throw ValidationError("'\(text)' is not host:port")
    }
    return (host, port)
}


/// A node started by `launch` stops when its launcher is gone (killed, say): otherwise it would
/// train on, orphaned, until its receives time out. `launch` names itself in the environment; the
/// node checks five times a second that it is still its parent.
enum LauncherWatch {
    static let environmentVariable = LocalLauncher.launcherPIDVariable

    static func start(rank: Int) {
        guard let text = ProcessInfo.processInfo.environment[environmentVariable], let launcher = Int32(text) else { return }
        let watcher = Thread {
            while getppid() == launcher { usleep(200_000) }
            printError("Error: rank \(rank): the launcher (pid \(launcher)) is gone; stopping")
            exit(4)
        }
        watcher.name = "launcher watch"
        watcher.start()
    }
}
