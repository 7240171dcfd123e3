import ArgumentParser
import Foundation
import Logging
import Shardwise
import ShardwiseMPI
import ShardwiseSockets

/// What `launch` can start. (`mpi` joins here: `case mpi` and a branch in `LaunchCommand.run`.)
enum LaunchBackendChoice: String, ExpressibleByArgument, CaseIterable {
    /// Local processes of this binary, TCP on loopback.
    case sockets
    /// Local MPI ranks of this binary: `mpirun -np N shardwise node --backend mpi` (MPI trait).
    case mpi
}

struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Start the nodes of a distributed run on this machine and print the result.",
        discussion: """
            Spawns --nodes processes of this binary (`shardwise node`) on 127.0.0.1 with an \
            ephemeral port and a fresh shared secret, waits for them, and prints the summary \
            rank 0 produced. A node that dies ends a synchronous run with an error naming it; \
            with --checkpoint the last good model is on disk for --resume.

            Examples:
              shardwise launch --nodes 4 --strategy allreduce --allreduce ring
              shardwise launch --nodes 4 --strategy ps --staleness 2 --report ps.json
              shardwise launch --nodes 2 --checkpoint ck.json   # then: --resume ck.json
            """
    )

    @Option(help: "Transport: sockets.")
    var backend: LaunchBackendChoice = .sockets

    @OptionGroup var options: JobOptions

    @OptionGroup var timeline: TimelineOutput

    @Option(help: ArgumentHelp("Write the full report (JSON) here.", valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("Rank 0 writes the last good model here as training goes.", valueName: "file"))
    var checkpoint: String?

    @Option(help: "Iterations between checkpoints (default: every trace point).")
    var checkpointEvery: Int?

    @Option(help: ArgumentHelp("Start from the model of a checkpoint file.", valueName: "file"))
    var resume: String?

    @Option(help: "Log level of the nodes (their lines are shown prefixed with the rank).")
    var logLevel: Logger.Level = .warning

    @Flag(help: "No progress line.")
    var quiet = false

    func run() async throws {
        try OutputFile.check(path: report, option: "--report")
        try OutputFile.check(path: checkpoint, option: "--checkpoint")
        try timeline.check()
        var job = try options.makeJob(defaultNodes: 2)
        timeline.apply(to: &job)
        let printer = ProgressPrinter(quiet: quiet)
        var result: TrainingReport
        switch backend {
        case .sockets:
            var launcher = LocalLauncher(executable: try currentExecutable())
            launcher.logLevel = logLevel.rawValue
            launcher.checkpointPath = checkpoint
            launcher.checkpointEvery = checkpointEvery
            if let resume {
                // Checked now (a bad file fails before anything starts); then every node reads the
                // file itself, so that the run continues from the checkpoint's iteration.
                _ = try Checkpoint.load(resume)
                launcher.extraArguments += ["--resume", URL(fileURLWithPath: resume).standardizedFileURL.path]
            }
            var backend = SocketsBackend(executable: launcher.executable)
            backend.launcher = launcher
            do {
                result = try await backend.run(job, options: RunOptions(onProgress: printer.callback()))
                printer.finish()
            } catch {
                printer.finish()
                throw error
            }
        case .mpi:
            #if MPI
            if checkpoint != nil { throw ValidationError("--checkpoint is not available with --backend mpi yet") }
            var backend = MPILaunchBackend(executable: try currentExecutable())
            backend.launcher.resume = resume
            do {
                result = try await backend.run(job, options: RunOptions(onProgress: printer.callback()))
                printer.finish()
            } catch {
                printer.finish()
                throw error
            }
            #else
            throw ValidationError(MPISupport.unavailableMessage)
            #endif
        }
        print(summary(result), terminator: "")
        try timeline.write(&result)
        if let report {
            try writeJSON(result, to: report)
            print("report: \(report)")
        }
    }
}

/// This binary's path (the launcher starts more of it).
func currentExecutable() throws -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    let arg0 = CommandLine.arguments[0]
    if arg0.contains("/") { return URL(fileURLWithPath: arg0).standardizedFileURL.path }
    throw ValidationError("cannot find this executable's path to start the nodes")
}
