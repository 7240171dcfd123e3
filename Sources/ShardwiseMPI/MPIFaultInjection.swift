#if MPI
#if canImport(Glibc)
import Glibc
#endif

/// A test hook: makes one rank leave the run early, to check that the others end with an error
/// naming it instead of hanging. Read from the environment variable `SHARDWISE_MPI_FAULT`:
///
/// - `crash:RANK:SENDS` — rank RANK exits with status 3 right after its SENDS-th send, without
///   MPI_Finalize (a crash; mpirun sees a process vanish).
/// - `quit:RANK:SENDS` — rank RANK finalizes MPI and exits with status 0 after its SENDS-th send
///   (a rank that "returns early" cleanly; the others notice only by their receive timeouts).
///
/// Not a user feature: it exists for `ShardwiseMPITests` and is documented in docs/mpi.md.
struct MPIFaultInjection: Sendable, Equatable {
    enum Kind: String, Sendable { case crash, quit }
    var kind: Kind
    var rank: Int
    var afterSends: Int

    static let environmentVariable = "SHARDWISE_MPI_FAULT"

    /// The fault for `rank`, if the environment asks for one.
    static func fromEnvironment(rank: Int) -> MPIFaultInjection? {
        guard let raw = getenv(environmentVariable) else { return nil }
        let parts = String(cString: raw).split(separator: ":")
        guard parts.count == 3, let kind = Kind(rawValue: String(parts[0])),
              let r = Int(parts[1]), let n = Int(parts[2]), r == rank else { return nil }
        return MPIFaultInjection(kind: kind, rank: r, afterSends: max(0, n))
    }
}
#endif
