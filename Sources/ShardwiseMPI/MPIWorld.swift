#if MPI
import CMPI
import Shardwise
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// MPI for this process: initialised once, finalised once, and the facts of MPI_COMM_WORLD.
///
/// MPI allows one `MPI_Init` and one `MPI_Finalize` per process, ever; `MPIWorld.initialize()`
/// returns the same world on every call until `finalize()`.
///
/// Thread level: a node's async code may resume on any thread of Swift's cooperative pool, but
/// only one at a time (the `Communicator` contract: one task per communicator), which is exactly
/// MPI_THREAD_SERIALIZED. Every MPI call of this module is additionally made under `lock`, so a
/// stray concurrent call (a progress callback, a second communicator) cannot break that rule.
///
/// Errors: MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failing call throws `MPIError.call`
/// (naming the call) instead of killing the job with MPI's generic message.
public final class MPIWorld: @unchecked Sendable {
    /// This process's rank in MPI_COMM_WORLD.
    public let rank: Int
    /// Ranks in MPI_COMM_WORLD.
    public let size: Int
    /// Ranks on this host (MPI_Comm_split_type SHARED), to size BLAS threads and polling.
    public let localSize: Int
    /// The largest MPI tag (MPI_TAG_UB; the standard guarantees at least 32767).
    public let tagUpperBound: Int
    /// This host's name as MPI reports it.
    public let processorName: String
    /// The MPI library's version string.
    public let libraryVersion: String

    let comm: MPI_Comm
    /// Serialises MPI calls (see the type's discussion).
    let lock = Mutex<Void>(())
    private let finalized = Atomic<Bool>(false)
    private let aborting = Atomic<Bool>(false)

    private static let shared = Mutex<MPIWorld?>(nil)

    /// Initialises MPI (MPI_Init_thread, MPI_THREAD_SERIALIZED) on first use.
    public static func initialize() throws -> MPIWorld {
        try shared.withLock { world in
            if let world {
                if world.finalized.load(ordering: .acquiring) { throw MPIError.finalized }
                return world
            }
            let made = try MPIWorld()
            world = made
            atexit(exitNotice)
            return made
        }
    }

    /// Runs at `exit()`: a rank that leaves without MPI_Finalize (and without aborting the job on
    /// purpose) says so, naming itself — mpirun's own message names only "[[job,1],1]".
    private static let exitNotice: @convention(c) () -> Void = {
        guard let world = shared.withLock({ $0 }),
              !world.finalized.load(ordering: .acquiring), !world.aborting.load(ordering: .acquiring) else { return }
        let line = "Error: rank \(world.rank) of \(world.size) (\(world.processorName)): exiting before the MPI run finished (without MPI_Finalize)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }

    /// Whether this process runs under an MPI launcher (mpirun, srun): OpenMPI, MPICH, Intel MPI
    /// and PMI(x) export one of these. Lets the CLI say "run me under mpirun" before MPI_Init
    /// turns a plain start into a singleton world of one rank.
    public static var launchedByMPI: Bool {
        let names = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS", "SLURM_PROCID"]
        return names.contains { getenv($0) != nil }
    }

    private init() throws {
        var initialized: Int32 = 0
        try mpiCheck(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            var provided: Int32 = 0
            try mpiCheck(MPI_Init_thread(nil, nil, shardwise_mpi_thread_serialized(), &provided), "MPI_Init_thread")
            if provided < shardwise_mpi_thread_serialized() { throw MPIError.threadSupport(provided: provided) }
        }
        comm = shardwise_mpi_comm_world()
        try mpiCheck(MPI_Comm_set_errhandler(comm, shardwise_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try mpiCheck(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try mpiCheck(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        tagUpperBound = Int(shardwise_mpi_tag_upper_bound(comm))

        var local: MPI_Comm? = shardwise_mpi_comm_null()
        var ls: Int32 = 1
        if MPI_Comm_split_type(comm, shardwise_mpi_comm_type_shared(), r, shardwise_mpi_info_null(), &local) == shardwise_mpi_success() {
            MPI_Comm_size(local, &ls)
            MPI_Comm_free(&local)
        }
        localSize = Int(ls)

        var name = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
        var length: Int32 = 0
        MPI_Get_processor_name(&name, &length)
        processorName = String(decoding: name.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var version = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        MPI_Get_library_version(&version, &length)
        libraryVersion = String(decoding: version.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: ",").first.map(String.init) ?? "MPI"
    }

    /// Whether more ranks than cores share this host (then waiting ranks must not spin).
    public var isOversubscribed: Bool { localSize > Self.coresOnHost }

    /// Online processors of this host.
    public static var coresOnHost: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Runs `body` holding the MPI lock.
    @inline(__always)
    func withMPI<R>(_ body: () throws -> R) throws -> R {
        if finalized.load(ordering: .relaxed) { throw MPIError.finalized }
        return try lock.withLock { _ in try body() }
    }

    /// MPI_Barrier on MPI_COMM_WORLD (blocking: used at start-up, before any timeout applies).
    public func barrier() throws {
        try withMPI { try mpiCheck(MPI_Barrier(comm), "MPI_Barrier") }
    }

    /// MPI_Finalize, once. Call after every communicator has been closed.
    public func finalize() {
        guard !finalized.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lock.withLock { _ in _ = MPI_Finalize() }
    }

    /// Ends the whole MPI job (every rank) with `code`: what a rank does when it fails, so the
    /// others do not wait for it until their timeouts.
    public func abort(code: Int32 = 1) -> Never {
        aborting.store(true, ordering: .releasing)
        _ = MPI_Abort(comm, code)
        exit(code)
    }
}
#endif
