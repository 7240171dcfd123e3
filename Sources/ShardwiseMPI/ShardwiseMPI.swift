/// The MPI backend: every node is an MPI rank, launched by `mpirun`/`srun`.
///
/// Built only with the package trait `MPI` (`swift build --traits MPI`); without it this module is
/// empty apart from `MPISupport`, so the default build needs no MPI installation.
///
/// - `MPIWorld` — MPI's initialisation and MPI_COMM_WORLD's facts (rank, size, ranks per host).
/// - `MPICommunicator` — the `Communicator` contract over MPI point-to-point (`MPI_Isend`,
///   `MPI_Improbe`/`MPI_Mrecv` polled under a timeout), with `MPI_Allreduce` as the native
///   all-reduce.
/// - `MPIRunner` / `MPIBackend` — one rank's part of a training run: train, gather the outcomes
///   at rank 0, build the report.
/// - `MPIAllReduceCheck` — native MPI_Allreduce against the generic collectives (self-test and
///   benchmark).
public enum MPISupport {
    /// Whether this build contains the MPI backend (the package trait `MPI` was enabled).
    public static var isAvailable: Bool {
        #if MPI
        return true
        #else
        return false
        #endif
    }

    /// What to tell a user who asks for MPI in a build without it.
    public static let unavailableMessage =
        "this shardwise was built without MPI; rebuild with `swift build --traits MPI` (needs OpenMPI: libopenmpi-dev, openmpi-bin)"
}
