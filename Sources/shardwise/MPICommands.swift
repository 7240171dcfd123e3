import ArgumentParser
import Foundation
import Shardwise
import ShardwiseMPI
#if MPI
import Logging
import ShardwiseSockets
import Synchronization
#endif

// The MPI side of the CLI: `node --backend mpi` (one rank, under mpirun/srun), `launch --backend
// mpi` and `train --backend mpi` (mpirun on this binary), and the hidden `mpi selftest|bench`.
// Without the `MPI` trait every entry point fails with `MPISupport.unavailableMessage`.

/// Hidden tools run under mpirun: the native-vs-generic all-reduce self-test and benchmark.
struct MPIToolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi",
        abstract: "MPI self-test and all-reduce benchmark (run under mpirun).",
        shouldDisplay: false,
        subcommands: [MPISelfTestCommand.self, MPIBenchCommand.self]
    )
}

/// Errors of running under or launching MPI.
enum MPICommandError: Error, CustomStringConvertible {
    /// This binary was built without the `MPI` trait.
    case unavailable
    /// mpirun (or the run it started) failed; the text names the rank when it can.
    case runFailed(String)

    var description: String {
        switch self {
        case .unavailable: return MPISupport.unavailableMessage
        case .runFailed(let why): return why
        }
    }
}

/// Progress lines rank 0 prints for the launcher (`node --backend mpi --progress-lines`).
enum MPIProgressLine {
    static let prefix = "@shardwise-mpi-progress "

    static func format(_ p: TrainingProgress) -> String {
        func n(_ x: Double?) -> String { x.map { "\($0)" } ?? "-" }
        return "\(prefix)\(p.rank) \(p.iteration) \(p.maxIterations) \(p.time) \(n(p.loss)) \(n(p.gradientNorm)) \(n(p.distance))"
    }

    static func parse(_ line: String) -> TrainingProgress? {
        guard line.hasPrefix(prefix) else { return nil }
        let f = line.dropFirst(prefix.count).split(separator: " ").map(String.init)
        guard f.count == 7, let rank = Int(f[0]), let it = Int(f[1]), let maxIt = Int(f[2]), let t = Double(f[3]) else { return nil }
        return TrainingProgress(rank: rank, iteration: it, maxIterations: maxIt, time: t,
                                loss: Double(f[4]), gradientNorm: Double(f[5]), distance: Double(f[6]))
    }
}

#if MPI

// MARK: - One rank: `shardwise node --backend mpi`

/// Runs this process's rank of `job` (rank and size from MPI_COMM_WORLD). Rank 0 prints the
/// summary (or, with `progressLines`, machine-readable progress for the launcher) and writes the
/// report. A rank that fails prints one line naming itself and aborts the MPI job, so the others
/// stop at once instead of at their timeouts.
func runMPINode(job: Job, report: String?, progressLines: Bool, initialModel: [Double]? = nil, blasThreads: Int? = nil) async throws {
    if !MPIWorld.launchedByMPI {
        printError("note: not started by mpirun/srun: this is an MPI world of one rank (run `mpirun -np N \(CommandLine.arguments[0]) node --backend mpi …`)")
    }
    let world = try MPIWorld.initialize()
    do {
        var options = RunOptions(initialModel: initialModel)
        if world.rank == 0 && progressLines {
            let throttle = ProgressThrottle()
            options.onProgress = { p in
                if throttle.due(p) { print(MPIProgressLine.format(p)); fflush(nil) }
            }
        }
        var runner = MPIRunner(world: world)
        runner.blasThreads = blasThreads
        if let result = try await runner.run(job, options: options) {
            if let report { try writeJSON(result, to: report) }
            if !progressLines {
                print(summary(result), terminator: "")
                if let report { print("report: \(report)") }
            }
        }
        fflush(nil)
        world.finalize()
    } catch {
        printError("Error: rank \(world.rank) of \(world.size) (\(world.processorName)): \(withoutRankPrefix(error, world.rank))")
        fflush(nil)
        world.abort(code: 3)
    }
}

/// "rank 0: no message from rank 1 …" → "no message from rank 1 …" (the line already names the rank).
func withoutRankPrefix(_ error: any Error, _ rank: Int) -> String {
    let text = "\(error)"
    let prefix = "rank \(rank): "
    return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
}

// MARK: - mpirun on this binary: `launch --backend mpi`, `train --backend mpi`

/// Starts `mpirun -np N <this binary> node --backend mpi` on this machine, relays progress, and
/// returns the report rank 0 wrote.
///
/// Environment: `SHARDWISE_MPIRUN` names the launcher (default `mpirun`), `SHARDWISE_MPIRUN_ARGS`
/// adds arguments to it (e.g. `--hostfile hosts`). `--oversubscribe` is added when the ranks
/// outnumber this machine's cores. As root, OpenMPI refuses to start unless
/// OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 are set; we say so, we do not
/// set them for you.
struct MPILauncher: Sendable {
    var executable: String
    var mpirun: String = ProcessInfo.processInfo.environment["SHARDWISE_MPIRUN"] ?? "mpirun"
    var mpirunArguments: [String] =
        (ProcessInfo.processInfo.environment["SHARDWISE_MPIRUN_ARGS"] ?? "").split(separator: " ").map(String.init)
    /// A checkpoint every rank starts from (`--resume`).
    var resume: String?

    /// The command line for `ranks` ranks of `node --backend mpi`.
    func commandLine(ranks: Int, jobPath: String, reportPath: String) -> [String] {
        var args = [mpirun, "-np", "\(ranks)"]
        if ranks > ProcessInfo.processInfo.activeProcessorCount && !mpirunArguments.contains("--oversubscribe") {
            args.append("--oversubscribe")
        }
        args += mpirunArguments
        args += [executable, "node", "--backend", "mpi", "--job", jobPath, "--report", reportPath, "--progress-lines"]
        if let resume { args += ["--resume", resume] }
        return args
    }

    func run(_ job: Job, onProgress: (@Sendable (TrainingProgress) -> Void)?) async throws -> TrainingReport {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shardwise-mpi-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let jobPath = directory.appendingPathComponent("job.json").path
        let reportPath = directory.appendingPathComponent("report.json").path
        try writeJSON(job, to: jobPath)

        let command = commandLine(ranks: job.nodes, jobPath: jobPath, reportPath: reportPath)
        let (status, errors) = try await Self.spawn(command, onProgress: onProgress)
        guard status == 0 else { throw MPICommandError.runFailed(Self.diagnose(status: status, stderr: errors, command: command)) }
        guard let bytes = FileManager.default.contents(atPath: reportPath) else {
            throw MPICommandError.runFailed("mpirun succeeded but rank 0 wrote no report at \(reportPath)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(TrainingReport.self, from: bytes)
    }

    /// Runs `command`, relaying its stdout (progress lines to `onProgress`) and stderr; returns the
    /// exit status (128 + the signal, as a shell says, if mpirun was killed) and everything written
    /// to stderr. A `ChildProcess`, not Foundation's `Process`: its dispatch pipe handlers crash
    /// when the child exits.
    static func spawn(_ command: [String], onProgress: (@Sendable (TrainingProgress) -> Void)?) async throws -> (Int32, String) {
        let errors = Mutex("")
        let child: ChildProcess
        do {
            child = try await ChildProcess.start("/usr/bin/env", arguments: command, environment: ProcessInfo.processInfo.environment) { stream, line in
                switch stream {
                case .standardOutput:
                    if let p = MPIProgressLine.parse(line) { onProgress?(p) } else { print(line); fflush(nil) }
                case .standardError:
                    errors.withLock { $0 += line + "\n" }
                    printError(line)
                }
            }
        } catch {
            throw MPICommandError.runFailed("cannot start \(command[0]): \(error) (is OpenMPI installed? apt-get install openmpi-bin)")
        }
        let status: Int32
        switch try await child.wait() {
        case .exited(let code): status = code
        case .signaled(let signal): status = 128 + signal
        }
        return (status, errors.withLock { $0 })
    }

    /// One sentence on why an MPI run failed, naming the rank when the output tells which.
    static func diagnose(status: Int32, stderr: String, command: [String]) -> String {
        func first(_ pattern: String) -> [String]? {
            guard let regex = try? NSRegularExpression(pattern: pattern) else { return nil }
            let range = NSRange(stderr.startIndex..., in: stderr)
            guard let match = regex.firstMatch(in: stderr, range: range) else { return nil }
            return (1..<match.numberOfRanges).compactMap { Range(match.range(at: $0), in: stderr).map { String(stderr[$0]) } }
        }
        if stderr.contains("OMPI_ALLOW_RUN_AS_ROOT") || stderr.contains("running as root") {
            return "mpirun refuses to run as root: set OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 if you mean it"
        }
        if stderr.contains("not enough slots") {
            return "mpirun: not enough slots for \(command[2]) ranks; add --oversubscribe through SHARDWISE_MPIRUN_ARGS, or a hostfile"
        }
        // Our own line from a rank that failed ("Error: rank r of m (host): …") comes first: it
        // says why. mpirun's lines say which process vanished.
        if let line = stderr.split(separator: "\n").first(where: { $0.hasPrefix("Error: rank ") }) {
            let status = first(#"Exit code:\s+(\d+)"#).map { " (exit status \($0[0]))" } ?? ""
            return "the MPI run failed: \(line.dropFirst("Error: ".count))\(status)"
        }
        if let m = first(#"process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+)"#) {
            return "the MPI run failed: rank \(m[0]) died (signal \(m[1])) before the run finished"
        }
        if let m = first(#"process rank (\d+) with PID \d+ on node \S+ exiting\s+improperly"#) {
            return "the MPI run failed: rank \(m[0]) exited early, without finishing its part of the run"
        }
        if let m = first(#"Process name: \[\[\d+,\d+\],(\d+)\]\s+Exit code:\s+(\d+)"#) {
            return "the MPI run failed: rank \(m[0]) exited early with status \(m[1])"
        }
        if let m = first(#"MPI_ABORT was invoked on rank (\d+)"#) {
            return "the MPI run failed: rank \(m[0]) aborted the job"
        }
        return "mpirun exited with status \(status) (see its messages above)"
    }
}

/// `train --backend mpi`: the job's nodes as MPI ranks on this machine (mpirun on this binary).
struct MPILaunchBackend: Backend {
    var launcher: MPILauncher
    var name: String { "mpi" }
    var hasSharedMemory: Bool { false }

    init(executable: String) { launcher = MPILauncher(executable: executable) }

    func run(_ job: Job, options: RunOptions) async throws -> TrainingReport {
        try check(job)
        return try await launcher.run(job, onProgress: options.onProgress)
    }
}

#endif

// MARK: - Hidden: `shardwise mpi selftest`

/// Native MPI_Allreduce against the generic algorithms (ring, reduce-broadcast, all-to-all) on
/// every rank, Float and Double, awkward counts included; every rank must also hold the same bits.
/// Prints one line per check on rank 0 and exits non-zero on any failure.
struct MPISelfTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: "Check MPI_Allreduce against the generic all-reduce (under mpirun).")

    @Option(help: "Vector lengths to check, comma-separated.")
    var counts = "0,1,2,3,5,17,1000,65537"

    @Option(help: "Seconds any receive may wait.")
    var timeout = 30.0

    func run() async throws {
        #if MPI
        let counts = try self.counts.split(separator: ",").map { text -> Int in
            guard let n = Int(text), n >= 0 else { throw ValidationError("--counts: '\(text)' is not a count") }
            return n
        }
        let world = try MPIWorld.initialize()
        let comm = MPICommunicator(world: world, timeout: timeout)
        var failures = 0
        do {
            let findings = try await AllReduceCheck.run(on: comm, counts: counts)
            // Every rank's verdicts and result digests go to rank 0, which compares them.
            let mine = findings.map { "\($0.passed ? 1 : 0) \($0.digest)" }.joined(separator: ",")
            if comm.rank == 0 {
                for f in findings { print("rank 0: \(f)") }
                failures += findings.filter { !$0.passed }.count
                for r in 1..<max(comm.size, 1) {
                    let message = try await comm.receive(from: .rank(r), tag: Tag(100))
                    let theirs = String(decoding: message.payload, as: UTF8.self).split(separator: ",").map(String.init)
                    for (f, t) in zip(findings, theirs) {
                        let parts = t.split(separator: " ")
                        if parts.first != "1" { print("FAIL rank \(r): \(f.precision) n=\(f.count) \(f.algorithm) failed there"); failures += 1 }
                        if parts.last.map(String.init) != "\(f.digest)" {
                            print("FAIL rank \(r): \(f.precision) n=\(f.count) \(f.algorithm): different bits from rank 0"); failures += 1
                        }
                    }
                }
                print("selftest: \(findings.count) checks × \(comm.size) ranks, \(failures) failure\(failures == 1 ? "" : "s") (\(world.libraryVersion))")
            } else {
                try await comm.send(Array(mine.utf8), to: 0, tag: Tag(100))
            }
            try await comm.close()
        } catch {
            printError("Error: rank \(world.rank) of \(world.size): \(error)")
            world.abort(code: 3)
        }
        fflush(nil)
        world.finalize()
        if failures > 0 { throw ExitCode(1) }
        #else
        throw MPICommandError.unavailable
        #endif
    }
}

// MARK: - Hidden: `shardwise mpi bench`

/// All-reduce of 1e3…1e7 doubles: native MPI_Allreduce, the generic ring over MPI point-to-point,
/// and the generic ring over the socket backend (TCP on loopback, a rendezvous set up through
/// MPI). Run under mpirun (2 ranks for the issue's table); rank 0 prints the table.
struct MPIBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Time all-reduce: MPI_Allreduce vs ring over MPI vs ring over sockets (under mpirun).")

    @Option(help: "Vector lengths (doubles), comma-separated.")
    var counts = "1000,10000,100000,1000000,10000000"

    @Option(help: "Timed repetitions per case (the median is reported).")
    var repetitions = 7

    @Flag(help: "Skip the socket backend.")
    var noSockets = false

    @Option(help: ArgumentHelp("Also write the results (JSON) here.", valueName: "file"))
    var json: String?

    struct Row: Codable {
        var count: Int
        var bytes: Int
        var nativeMPISeconds: Double
        var ringMPISeconds: Double
        var ringSocketsSeconds: Double?
    }

    func run() async throws {
        try OutputFile.check(path: json, option: "--json")
        #if MPI
        let counts = try self.counts.split(separator: ",").map { text -> Int in
            guard let n = Double(text), n >= 1 else { throw ValidationError("--counts: '\(text)' is not a count") }
            return Int(n)
        }
        let world = try MPIWorld.initialize()
        if world.localSize > 1 { BLASThreading.set(threads: 1) }
        let comm = MPICommunicator(world: world, timeout: 120)
        do {
            let sockets = noSockets ? nil : try await socketCommunicator(world: world, mpi: comm)
            var rows: [Row] = []
            for count in counts {
                let reps = count >= 5_000_000 ? max(3, repetitions / 2) : repetitions
                let native = try await AllReduceCheck.time(on: comm, count: count, algorithm: .native, repetitions: reps)
                let ring = try await AllReduceCheck.time(on: comm, count: count, algorithm: .ring, repetitions: reps)
                var overSockets: Double?
                if let sockets {
                    overSockets = try await withTaskExecutorPreference(sockets.executor) {
                        try await AllReduceCheck.time(on: sockets, count: count, algorithm: .ring, repetitions: reps)
                    }
                }
                rows.append(Row(count: count, bytes: count * 8, nativeMPISeconds: native, ringMPISeconds: ring, ringSocketsSeconds: overSockets))
            }
            if let sockets { await sockets.close() }
            try await comm.close()
            if world.rank == 0 {
                print("all-reduce of float64 vectors, \(world.size) ranks (\(world.libraryVersion)); median seconds, and algorithm bandwidth d·8/t")
                var table = TextTable(["n", "bytes", "MPI_Allreduce", "ring over MPI", "ring over sockets", "MPI GB/s", "ring/MPI", "sockets/MPI"])
                for r in rows {
                    table.add([
                        "\(r.count)", formatBytes(r.bytes), formatSeconds(r.nativeMPISeconds), formatSeconds(r.ringMPISeconds),
                        r.ringSocketsSeconds.map(formatSeconds) ?? "-",
                        String(format: "%.2f", Double(r.bytes) / r.nativeMPISeconds / 1e9),
                        String(format: "%.2f×", r.ringMPISeconds / r.nativeMPISeconds),
                        r.ringSocketsSeconds.map { String(format: "%.2f×", $0 / r.nativeMPISeconds) } ?? "-",
                    ])
                }
                print(table.render(), terminator: "")
                if let json { try writeJSON(rows, to: json) }
            }
        } catch {
            printError("Error: rank \(world.rank) of \(world.size): \(error)")
            world.abort(code: 3)
        }
        fflush(nil)
        world.finalize()
        #else
        throw MPICommandError.unavailable
        #endif
    }

    #if MPI
    /// A socket communicator among the same ranks: rank 0 listens on a free loopback port and
    /// tells the others (with a fresh secret) over MPI.
    private func socketCommunicator(world: MPIWorld, mpi: MPICommunicator) async throws -> SocketCommunicator {
        let tag = Tag(101)
        if world.rank == 0 {
            let secret = SharedSecret.generate()
            let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("shardwise-bench-\(getpid()).port").path
            try? FileManager.default.removeItem(atPath: portFile)
            let config = SocketConfiguration(rank: 0, size: world.size, coordinatorPort: 0, secret: try SharedSecret(secret),
                                             jobID: "mpi-bench", timeout: 120, portFile: portFile)
            let rendezvous = Task { try await SocketCommunicator.rendezvous(config) }
            var port: Int?
            for _ in 0..<2000 where port == nil {
                if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    port = p
                } else {
                    try await Task.sleep(nanoseconds: 5_000_000)
                }
            }
            guard let port else { throw MPICommandError.runFailed("the socket coordinator did not bind a port") }
            try? FileManager.default.removeItem(atPath: portFile)
            for r in 1..<world.size { try await mpi.send(Array("\(port) \(secret)".utf8), to: r, tag: tag) }
            return try await rendezvous.value
        } else {
            let message = try await mpi.receive(from: .rank(0), tag: tag)
            let parts = String(decoding: message.payload, as: UTF8.self).split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2, let port = Int(parts[0]) else { throw MPICommandError.runFailed("bad rendezvous message from rank 0") }
            let config = SocketConfiguration(rank: world.rank, size: world.size, coordinatorPort: port, secret: try SharedSecret(parts[1]),
                                             jobID: "mpi-bench", timeout: 120)
            return try await SocketCommunicator.rendezvous(config)
        }
    }
    #endif
}
