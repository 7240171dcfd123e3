#if MPI
import CMPI
import Shardwise
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A node's communicator in the MPI backend: one per rank, over MPI_COMM_WORLD.
///
/// How it keeps the `Communicator` contract:
/// - **send never waits for the receive.** `MPI_Isend` from a private copy of the payload; the
///   request and the copy stay in `inFlight` until `MPI_Test` reports completion (checked on every
///   call). A blocking `MPI_Send` would be unsafe: the ring and the all-to-all send before they
///   receive, and a message above the eager limit waits for its receiver.
/// - **receive polls, with a timeout.** `MPI_Improbe` (the matched probe: the message found is
///   the one received, even with several waiting for any source) then `MPI_Mrecv` into an array
///   of the probed size. Between probes the task yields or sleeps (`MPIPollingPolicy`), so a
///   receive that nothing answers throws `CommunicationError.timeout` naming the peer.
/// - **order.** Tags map one-to-one to MPI tags (`MPITagMap`), so MPI's non-overtaking rule gives
///   the FIFO order per (sender, tag); `.any` is `MPI_ANY_SOURCE`.
/// - **native all-reduce.** `MPI_Allreduce(MPI_IN_PLACE, …, MPI_SUM)`; it blocks inside MPI, so it
///   has no timeout of ours — a dead rank is handled by mpirun, which ends the job.
/// - **shutdown.** `close()` waits for this rank's sends while it drains (and discards) messages
///   nobody received, then meets the others in an `MPI_Ibarrier`, so MPI_Finalize finds no
///   unfinished communication.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var backendName: String { "mpi" }
    public let defaultTimeout: Double
    public let metrics: NodeMetrics
    public var sharedMemory: SharedMemory? { nil }
    public let world: MPIWorld
    public let polling: MPIPollingPolicy
    let tags: MPITagMap
    private let start = MonotonicClock.now()
    private let fault: MPIFaultInjection?

    /// A send MPI has not completed: its request and the copy of the payload MPI reads from.
    /// (Pointers, owned by this communicator alone; touched only under the locks.)
    private struct InFlight: @unchecked Sendable {
        var request: MPI_Request?
        var buffer: UnsafeMutableRawPointer
        var destination: Int
    }
    private struct SendState {
        var inFlight: [InFlight] = []
        var sends = 0
    }
    private let sendState = Mutex(SendState())

    /// Messages that had arrived for this rank but were never received, discarded by `close()`.
    public private(set) var discardedAtClose = 0

    /// - Parameters:
    ///   - timeout: seconds a receive waits by default (the job's `timeout`).
    ///   - polling: how waiting receives poll; by default from whether ranks outnumber cores here.
    public init(world: MPIWorld, timeout: Double, polling: MPIPollingPolicy? = nil) {
        self.world = world
        rank = world.rank
        size = world.size
        defaultTimeout = timeout
        metrics = NodeMetrics(worldSize: world.size)
        self.polling = polling ?? .forHost(oversubscribed: world.isOversubscribed)
        tags = MPITagMap(tagUpperBound: world.tagUpperBound)
        fault = MPIFaultInjection.fromEnvironment(rank: world.rank)
    }

    deinit {
        // Requests still in flight may be read by MPI later: their buffers are leaked, not freed.
        // After `close()` there are none.
    }

    public var now: Double { MonotonicClock.now() - start }

    /// Sends still in flight (buffered, not yet known to MPI as complete).
    public var sendsInFlight: Int { sendState.withLock { $0.inFlight.count } }

    // MARK: - Point-to-point

    public func send(_ payload: [UInt8], to destination: Int, tag: Tag) async throws {
        try checkRank(destination)
        let mpiTag = try tags.mpiTag(tag)
        guard payload.count <= Int(Int32.max) else {
            throw CommunicationError.badPayload("a message of \(payload.count) bytes is beyond MPI's count limit (2³¹ − 1)")
        }
        let t0 = now
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(payload.count, 1), alignment: 16)
        payload.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { buffer.copyMemory(from: base, byteCount: bytes.count) }
        }
        try world.withMPI {
            var request: MPI_Request? = shardwise_mpi_request_null()
            let rc = MPI_Isend(buffer, Int32(payload.count), shardwise_mpi_byte(), Int32(destination), mpiTag,
                               world.comm, &request)
            if rc != shardwise_mpi_success() {
                buffer.deallocate()
                throw lost(destination, "MPI_Isend: \(mpiErrorString(rc))")
            }
            var done: Int32 = 0
            let tested = MPI_Test(&request, &done, shardwise_mpi_status_ignore())
            if tested == shardwise_mpi_success() && done != 0 {
                buffer.deallocate()
            } else {
                sendState.withLock { $0.inFlight.append(InFlight(request: request, buffer: buffer, destination: destination)) }
            }
            try progressSendsHoldingLock()
        }
        metrics.recordSend(bytes: payload.count, to: destination, seconds: now - t0)
        try injectFaultAfterSend()
    }

    public func receive(from source: Source, tag: Tag, timeout: Double?) async throws -> Message {
        let mpiSource = try self.mpiSource(source)
        let mpiTag = try tags.mpiTag(tag)
        let limit = timeout ?? defaultTimeout
        let t0 = now
        var backoff = MPIBackoff(policy: polling, now: t0)
        while true {
            let probed = now
            if let message = try takeIfArrived(source: mpiSource, tag: mpiTag, peer: source) {
                let t1 = now
                metrics.recordReceive(bytes: message.payload.count, waited: probed - t0, seconds: t1 - probed)
                return message
            }
            let t = now
            if t - t0 >= limit {
                metrics.addWaiting(seconds: t - t0)
                throw CommunicationError.timeout(rank: rank, waitingFor: source.description, tag: tag, seconds: limit)
            }
            if Task.isCancelled {
                throw CommunicationError.cancelled(rank: rank, reason: "the node's task was cancelled")
            }
            await backoff.pause(now: t, sendsInFlight: sendsInFlight > 0)
        }
    }

    public func poll(from source: Source, tag: Tag) async throws -> Message? {
        let mpiSource = try self.mpiSource(source)
        let mpiTag = try tags.mpiTag(tag)
        let t0 = now
        guard let message = try takeIfArrived(source: mpiSource, tag: mpiTag, peer: source) else { return nil }
        metrics.recordReceive(bytes: message.payload.count, waited: 0, seconds: now - t0)
        return message
    }

    public func compute<R>(_ work: ComputeWork, _ body: () throws -> R) async rethrows -> R {
        let t0 = MonotonicClock.now()
        let result = try body()
        metrics.recordCompute(seconds: MonotonicClock.now() - t0)
        return result
    }

    // MARK: - Native all-reduce

    /// `MPI_Allreduce(MPI_IN_PLACE, v, MPI_SUM)` for `Float` and `Double`.
    ///
    /// Metrics: MPI's own messages are invisible to us, so the send is counted as the
    /// bandwidth-optimal volume 2(m−1)/m·d scalars to the right-hand neighbour — what OpenMPI's
    /// large-vector algorithms (ring, Rabenseifner) move — and its whole time as communication
    /// (waiting for a late rank inside MPI cannot be told apart).
    public func nativeAllReduce<Scalar: BLASScalar>(_ v: inout [Scalar]) async throws -> Bool {
        guard size > 1, !v.isEmpty else { return true }
        let datatype: MPI_Datatype
        if Scalar.self == Double.self { datatype = shardwise_mpi_double() }
        else if Scalar.self == Float.self { datatype = shardwise_mpi_float() }
        else { return false }
        guard v.count <= Int(Int32.max) else { return false }
        let t0 = now
        try world.withMPI {
            try progressSendsHoldingLock()
            let rc = v.withUnsafeMutableBufferPointer { buffer in
                MPI_Allreduce(shardwise_mpi_in_place(), buffer.baseAddress, Int32(buffer.count), datatype,
                              shardwise_mpi_sum(), world.comm)
            }
            if rc != shardwise_mpi_success() {
                throw CommunicationError.peerLost(rank: rank, peer: -1, reason: "MPI_Allreduce: \(mpiErrorString(rc))")
            }
        }
        let bytes = 2 * (size - 1) * v.count * MemoryLayout<Scalar>.stride / size
        let seconds = now - t0
        metrics.recordSend(bytes: bytes, to: (rank + 1) % size, seconds: seconds)
        metrics.recordReceive(bytes: bytes, waited: 0, seconds: 0)
        return true
    }

    // MARK: - Shutdown

    /// Ends this rank's communication: waits until its own sends are complete, draining (and
    /// discarding) whatever others sent it that nobody received, then waits in a non-blocking
    /// barrier — still draining — until every rank has done the same. Afterwards MPI_Finalize
    /// finds nothing in flight.
    ///
    /// - Throws: `CommunicationError.timeout` after `timeout` seconds (default: `defaultTimeout`),
    ///   e.g. when a peer died and our sends to it can never complete.
    public func close(timeout: Double? = nil) async throws {
        let limit = timeout ?? defaultTimeout
        let t0 = now
        var backoff = MPIBackoff(policy: polling, now: t0)
        // 1. My sends.
        while try world.withMPI({ try drainHoldingLock(); try progressSendsHoldingLock(); return sendsInFlight > 0 }) {
            if now - t0 >= limit {
                let peers = sendState.withLock { Set($0.inFlight.map(\.destination)).sorted() }
                throw CommunicationError.timeout(
                    rank: rank, waitingFor: "rank\(peers.count == 1 ? "" : "s") \(peers.map(String.init).joined(separator: ", ")) to take its last messages",
                    tag: .barrier, seconds: limit)
            }
            await backoff.pause(now: now, sendsInFlight: true)
        }
        // 2. Everyone's.
        guard size > 1 else { return }
        var barrier: MPI_Request? = shardwise_mpi_request_null()
        try world.withMPI { try mpiCheck(MPI_Ibarrier(world.comm, &barrier), "MPI_Ibarrier") }
        while true {
            let done: Bool = try world.withMPI {
                try drainHoldingLock()
                var flag: Int32 = 0
                try mpiCheck(MPI_Test(&barrier, &flag, shardwise_mpi_status_ignore()), "MPI_Test (barrier)")
                return flag != 0
            }
            if done { return }
            if now - t0 >= limit {
                throw CommunicationError.timeout(rank: rank, waitingFor: "every rank to finish", tag: .barrier, seconds: limit)
            }
            await backoff.pause(now: now, sendsInFlight: false)
        }
    }

    // MARK: - Internals (called holding the MPI lock)

    private func mpiSource(_ source: Source) throws -> Int32 {
        switch source {
        case .rank(let r):
            try checkRank(r)
            return Int32(r)
        case .any:
            return shardwise_mpi_any_source()
        }
    }

    private func lost(_ peer: Int, _ reason: String) -> CommunicationError {
        .peerLost(rank: rank, peer: peer, reason: reason)
    }

    /// Takes a matching message if MPI has one, without waiting.
    private func takeIfArrived(source: Int32, tag: Int32, peer: Source) throws -> Message? {
        try world.withMPI {
            try progressSendsHoldingLock()
            var flag: Int32 = 0
            var handle: MPI_Message? = shardwise_mpi_message_null()
            var status = MPI_Status()
            let rc = MPI_Improbe(source, tag, world.comm, &flag, &handle, &status)
            if rc != shardwise_mpi_success() {
                if case .rank(let r) = peer { throw lost(r, "MPI_Improbe: \(mpiErrorString(rc))") }
                throw MPIError.call("MPI_Improbe", code: rc, message: mpiErrorString(rc))
            }
            guard flag != 0 else { return nil }
            var count: Int32 = 0
            try mpiCheck(MPI_Get_count(&status, shardwise_mpi_byte(), &count), "MPI_Get_count")
            let sender = Int(shardwise_mpi_status_source(&status))
            let payload = try [UInt8](unsafeUninitializedCapacity: Int(count)) { buffer, initialized in
                let rc = MPI_Mrecv(buffer.baseAddress, count, shardwise_mpi_byte(), &handle, shardwise_mpi_status_ignore())
                if rc != shardwise_mpi_success() { throw lost(sender, "MPI_Mrecv: \(mpiErrorString(rc))") }
                initialized = Int(count)
            }
            return Message(source: sender, tag: tags.tag(shardwise_mpi_status_tag(&status)), payload: payload)
        }
    }

    /// Frees the buffers of completed sends.
    private func progressSendsHoldingLock() throws {
        try sendState.withLock { s in
            guard !s.inFlight.isEmpty else { return }
            var i = 0
            while i < s.inFlight.count {
                var done: Int32 = 0
                let rc = MPI_Test(&s.inFlight[i].request, &done, shardwise_mpi_status_ignore())
                if rc != shardwise_mpi_success() {
                    throw lost(s.inFlight[i].destination, "send did not complete: \(mpiErrorString(rc))")
                }
                if done != 0 {
                    s.inFlight[i].buffer.deallocate()
                    s.inFlight.remove(at: i)
                } else {
                    i += 1
                }
            }
        }
    }

    /// Receives and discards every message that has arrived (shutdown only).
    private func drainHoldingLock() throws {
        while true {
            var flag: Int32 = 0
            var handle: MPI_Message? = shardwise_mpi_message_null()
            var status = MPI_Status()
            try mpiCheck(MPI_Improbe(shardwise_mpi_any_source(), shardwise_mpi_any_tag(), world.comm, &flag, &handle, &status),
                         "MPI_Improbe (drain)")
            guard flag != 0 else { return }
            var count: Int32 = 0
            try mpiCheck(MPI_Get_count(&status, shardwise_mpi_byte(), &count), "MPI_Get_count")
            var scratch = [UInt8](repeating: 0, count: max(Int(count), 1))
            try mpiCheck(MPI_Mrecv(&scratch, count, shardwise_mpi_byte(), &handle, shardwise_mpi_status_ignore()), "MPI_Mrecv (drain)")
            discardedAtClose += 1
        }
    }

    private func injectFaultAfterSend() throws {
        guard let fault else { return }
        let sends = sendState.withLock { s -> Int in
            s.sends += 1
            return s.sends
        }
        guard sends == fault.afterSends else { return }
        switch fault.kind {
        case .crash:
            exit(3)
        case .quit:
            world.finalize()
            exit(0)
        }
    }
}
#endif
