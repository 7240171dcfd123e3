#if MPI
import Foundation
import _TestSupport

/// Runs the built `shardwise` under real mpirun, bounded in time.
///
/// The binary is the one beside this test bundle (`.build*/<config>/shardwise`, built with the
/// trait by `make test` / `swift build --traits MPI`), or `SHARDWISE_BIN`. Both output streams are
/// drained as they come (`ShardwiseBinary.run`), so a chatty rank never blocks on a full pipe.
enum MPIRun {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
        var timedOut: Bool
        var output: String { stdout + "\n" + stderr }
    }

    static var binary: String? { ShardwiseBinary.path }

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
                          limit: Double = 120) async throws -> Result {
        guard let mpirun, let binary else { throw CocoaError(.fileNoSuchFile) }
        return try await run([mpirun, "-np", "\(ranks)", "--oversubscribe", binary] + arguments, environment: extra, limit: limit)
    }

    /// `shardwise <arguments>` (itself calling mpirun, for `launch`/`train --backend mpi`).
    static func plain(_ arguments: [String], environment extra: [String: String] = [:], limit: Double = 120) async throws -> Result {
        guard let binary else { throw CocoaError(.fileNoSuchFile) }
        return try await run([binary] + arguments, environment: extra, limit: limit)
    }

    /// Awaits the child without holding a thread of the cooperative pool (see `ShardwiseBinary`).
    static func run(_ command: [String], environment extra: [String: String], limit: Double) async throws -> Result {
        let r = try await ShardwiseBinary.run(executable: command[0], Array(command.dropFirst()),
                                              environment: environment(extra), limit: limit)
        return Result(status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: r.seconds, timedOut: r.timedOut)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("shardwise-mpi-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
#endif
