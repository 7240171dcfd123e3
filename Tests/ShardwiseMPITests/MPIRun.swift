#if MPI
import Foundation

/// Runs the built `shardwise` under real mpirun, bounded in time.
///
/// The binary is the one beside this test bundle (`.build*/<config>/shardwise`, built with the
/// trait by `make test` / `swift build --traits MPI`), or `SHARDWISE_BIN`. Output goes to files,
/// not pipes, so a chatty rank can never block on a full pipe while we wait for it.
enum MPIRun {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
        var timedOut: Bool
        var output: String { stdout + "\n" + stderr }
    }

    static var binary: String? {
        if let path = ProcessInfo.processInfo.environment["SHARDWISE_BIN"] { return path }
        guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        var directory = URL(fileURLWithPath: me).deletingLastPathComponent()
        // Either <config>/X.xctest (Linux) or <config>/X.xctest/Contents/MacOS/X (macOS).
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("shardwise").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    static var mpirun: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var available: Bool { binary != nil && mpirun != nil }

    /// Environment for OpenMPI in CI: root allowed (containers), no spinning of idle ranks.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_mpi_yield_when_idle"] = "1"
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// `mpirun -np ranks --oversubscribe shardwise <arguments>`.
    static func shardwise(ranks: Int, _ arguments: [String], environment extra: [String: String] = [:],
                          limit: Double = 120) throws -> Result {
        guard let mpirun, let binary else { throw CocoaError(.fileNoSuchFile) }
        return try run([mpirun, "-np", "\(ranks)", "--oversubscribe", binary] + arguments, environment: extra, limit: limit)
    }

    /// `shardwise <arguments>` (itself calling mpirun, for `launch`/`train --backend mpi`).
    static func plain(_ arguments: [String], environment extra: [String: String] = [:], limit: Double = 120) throws -> Result {
        guard let binary else { throw CocoaError(.fileNoSuchFile) }
        return try run([binary] + arguments, environment: extra, limit: limit)
    }

    static func run(_ command: [String], environment extra: [String: String], limit: Double) throws -> Result {
        let directory = try temporaryDirectory()
        let out = directory.appendingPathComponent("stdout"), err = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = environment(extra)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        let start = Date()
        try process.run()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > limit {
                timedOut = true
                process.terminate()
                usleep(500_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: directory)
        return Result(status: process.terminationStatus, stdout: stdout, stderr: stderr, seconds: seconds, timedOut: timedOut)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("shardwise-mpi-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
#endif
