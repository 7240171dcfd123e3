import ArgumentParser
import Shardwise
import ShardwiseMPI
import ShardwiseSockets
import ShardwiseThreads
import ShardwiseSimulation

/// Where the nodes run.
enum BackendChoice: String, ExpressibleByArgument, CaseIterable {
    /// Threads of this process, sharing memory.
    case threads
    /// Local processes of this binary talking TCP on loopback.
    case sockets
    /// Simulated nodes on a virtual clock.
    case simulation
    /// MPI ranks under mpirun (needs the MPI trait).
    case mpi
}

/// The backend for a choice. Each backend's module adds its case here.
func makeBackend(_ choice: BackendChoice) throws -> any Backend {
    switch choice {
    case .threads:
        return ThreadsBackend()
    case .sockets:
        // Local processes of this binary on loopback (`shardwise launch`).
        return SocketsBackend(executable: try currentExecutable())
    case .simulation:
        return SimulationBackend()   // default models: 50 µs, 10 Gbit/s, 1 ns per element
    case .mpi:
        // `job.nodes` ranks of this binary under mpirun on this machine (`launch --backend mpi`).
        #if MPI
        return MPILaunchBackend(executable: try currentExecutable())
        #else
        throw ValidationError(MPISupport.unavailableMessage)
        #endif
    }
}
