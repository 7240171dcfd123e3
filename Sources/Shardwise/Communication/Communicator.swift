import Synchronization

/// A message tag: which conversation a message belongs to. Messages between one sender and one
/// receiver with the same tag arrive in the order they were sent; different tags never block each
/// other. Tags at or above `Tag.reservedBase` belong to the collectives.
public struct Tag: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static let reservedBase: UInt32 = 0x8000_0000
    public static let broadcast = Tag(reservedBase + 1)
    public static let reduce = Tag(reservedBase + 2)
    public static let allReduceReduceBroadcast = Tag(reservedBase + 3)
    public static let allToAll = Tag(reservedBase + 4)
    public static let ringReduceScatter = Tag(reservedBase + 5)
    public static let ringAllGather = Tag(reservedBase + 6)
    public static let barrier = Tag(reservedBase + 7)
    public static let neighbours = Tag(reservedBase + 8)
    public static let gather = Tag(reservedBase + 9)

    public var description: String {
        rawValue >= Tag.reservedBase ? "collective#\(rawValue - Tag.reservedBase)" : "tag \(rawValue)"
    }
}

/// Where a receive takes its message from.
public enum Source: Sendable, Hashable, CustomStringConvertible {
    case rank(Int)
    case any

    public var description: String {
        switch self {
        case .rank(let r): return "rank \(r)"
        case .any: return "any rank"
        }
    }
}

/// A received message: who sent it, under which tag, and the bytes (a codec's output).
public struct Message: Sendable {
    public var source: Int
    public var tag: Tag
    public var payload: [UInt8]

    public init(source: Int, tag: Tag, payload: [UInt8]) {
        self.source = source
        self.tag = tag
        self.payload = payload
    }
}

/// How a vector received in place (`Communicator.sendReceiveInPlace`) meets the memory it lands in.
public enum InPlaceCombine: Sendable, Equatable {
    /// The received entries replace what was there (a broadcast, an all-gather).
    case replace
    /// The received entries are added to what was there (a reduction).
    case add
}

/// What `Communicator.sendReceiveInPlace` managed.
public enum InPlaceTransfer: Sendable, Equatable {
    /// Nothing was sent or received: do both the usual way.
    case unsupported
    /// Sent, and the whole incoming vector landed in place.
    case complete
    /// Sent; the first `bytes` bytes (whole entries) of the incoming vector landed in place, and
    /// the next matching message carries the rest.
    case partial(bytes: Int)
    /// Sent; nothing of the incoming vector arrived while the backend waited for it. Call
    /// `waitForIncoming`, then `sendReceiveInPlace` again, receiving only.
    case notStarted
}

/// Errors of communication, the same on every backend.
public enum CommunicationError: Error, CustomStringConvertible, Equatable {
    /// A receive waited longer than its timeout.
    case timeout(rank: Int, waitingFor: String, tag: Tag, seconds: Double)
    /// A peer is gone (its process died, its connection closed, it crashed in the simulator).
    case peerLost(rank: Int, peer: Int, reason: String)
    /// A rank outside 0..<size was named.
    case invalidRank(Int, size: Int)
    /// A payload had the wrong length or could not be decoded.
    case badPayload(String)
    /// The backend cannot do what the strategy asked.
    case unsupported(backend: String, operation: String, reason: String)
    /// Every node is waiting and nothing is in flight (detected by backends that can see it).
    case deadlock(String)
    /// The run was cancelled (another node failed).
    case cancelled(rank: Int, reason: String)

    public var description: String {
        switch self {
        case .timeout(let rank, let from, let tag, let s):
            return "rank \(rank): no message from \(from) (\(tag)) within \(s) s — the peer is dead, silent or far behind"
        case .peerLost(let rank, let peer, let reason):
            return "rank \(rank): lost rank \(peer): \(reason)"
        case .invalidRank(let r, let size): return "rank \(r) does not exist in a world of \(size)"
        case .badPayload(let what): return "bad payload: \(what)"
        case .unsupported(let backend, let op, let reason):
            return "backend \(backend) does not support \(op): \(reason)"
        case .deadlock(let what): return "deadlock: \(what)"
        case .cancelled(let rank, let reason): return "rank \(rank) stopped: \(reason)"
        }
    }
}

/// What a node computes, for accounting: a gradient over `rows` rows of `features` columns costs
/// about rows × features × 2 passes. The simulator turns it into virtual time; real backends
/// measure the wall time of the work itself.
public struct ComputeWork: Sendable, Equatable {
    public var rows: Int
    /// Elements read per row: d for dense rows, the mean nonzeros per row for CSR
    /// (`ShardKernel.work(rows:)`).
    public var features: Int
    public init(rows: Int, features: Int) {
        self.rows = rows
        self.features = features
    }
    /// Matrix elements read (each once, by the fused kernel).
    public var elements: Int { rows * features }
}

/// What one node can do to talk to the others: point-to-point tagged messages and a clock.
///
/// The contract, which every backend keeps:
/// - `rank` is in `0..<size` and fixed for the life of the communicator.
/// - `send` returns once the payload is handed over (buffered or delivered); it never waits for
///   the matching receive, so SPMD programs may send before they receive without deadlock.
/// - Messages from one sender to one receiver with one tag are received in the order sent.
///   `receive(from: .any, …)` takes the earliest message available among all senders.
/// - Every receive has a timeout (`defaultTimeout` unless given); an expired timeout throws
///   `CommunicationError.timeout`, a peer known to be gone throws `.peerLost`. Nothing hangs.
/// - Bytes, messages and time are counted in `metrics` exactly as they crossed the "wire".
/// - A communicator belongs to one node: its methods are called from that node's task only.
///
/// The collectives (`broadcast`, `reduce`, `allReduce`, `barrier`, neighbour exchange) are written
/// once, in extensions, on top of these operations.
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// The backend's name for messages ("threads", "sockets", "simulation", "mpi").
    var backendName: String { get }
    /// Seconds since the run began: wall time, or virtual time in the simulator.
    var now: Double { get }
    /// Timeout applied to receives that do not name one, in seconds (of `now`'s clock).
    var defaultTimeout: Double { get }
    /// This node's counters.
    var metrics: NodeMetrics { get }
    /// Memory shared by all nodes, when the backend has it (threads); `nil` otherwise.
    var sharedMemory: SharedMemory? { get }

    func send(_ payload: [UInt8], to destination: Int, tag: Tag) async throws
    func receive(from source: Source, tag: Tag, timeout: Double?) async throws -> Message

    /// Sends the `count` bytes `fill` writes (an encoded vector). A backend with its own send
    /// buffers (sockets) lets the codec write straight into them, sparing a copy; the default
    /// fills an array and calls `send`.
    func send(count: Int, to destination: Int, tag: Tag, fill: (UnsafeMutableRawBufferPointer) -> Void) async throws

    /// Sends `bytes` — a vector's own memory, already in wire format — without copying them, if
    /// the backend can do that right now; returns once it no longer needs them. Returns false
    /// (and sends nothing) when it cannot: the caller then sends a copy. The default cannot.
    func sendInPlace(_ bytes: UnsafeRawBufferPointer, to destination: Int, tag: Tag) throws -> Bool

    /// Sends `outgoing` (a vector's own memory, already in wire format; nil = send nothing) to
    /// `destination` and, at the same time, receives the vector `source` sends under `receiveTag`
    /// straight into `incoming` — written over it or added to it — without an intermediate copy,
    /// as MPI_Sendrecv does. Posting the receive before the send matters: while the send waits
    /// for the socket to drain, what arrives lands in `incoming` already.
    ///
    /// Returns `.unsupported` (nothing sent, nothing received: use `send` and `receive`) when the
    /// backend cannot do this right now; the default cannot. Otherwise the send is done, and
    /// either the whole vector arrived (`.complete`) or only its first `bytes` bytes, a whole
    /// number of entries (`.partial`): the next message from `source` with `receiveTag` then
    /// carries the rest, to be received and combined the usual way. `outgoing` and `incoming`
    /// must not overlap; the memory is not used after the call returns. If the incoming payload
    /// fails its integrity check the call throws, and `incoming` may hold part of it.
    func sendReceiveInPlace<Scalar: BLASScalar>(
        sending outgoing: UnsafeBufferPointer<Scalar>?, to destination: Int, sendTag: Tag,
        receivingInto incoming: UnsafeMutableBufferPointer<Scalar>, combine: InPlaceCombine,
        from source: Int, receiveTag: Tag
    ) throws -> InPlaceTransfer

    /// After `sendReceiveInPlace` answered `.notStarted`: returns once the vector `source` sends
    /// under `tag` has begun to arrive — or once waiting is pointless (it arrived whole, the peer
    /// is gone, `timeout` passed) — so that the next `sendReceiveInPlace` can take it in place.
    /// The node sleeps meanwhile. The default returns at once.
    func waitForIncoming(from source: Int, tag: Tag, timeout: Double?) async throws

    /// Takes a matching message if one has already arrived, without waiting; `nil` otherwise.
    /// (Asynchronous strategies mix in whatever their neighbours have sent so far.)
    func poll(from source: Source, tag: Tag) async throws -> Message?

    /// Runs `body` — this node's computation — and accounts for it as compute time. Real backends
    /// time it; the simulator charges the modelled cost of `work` on its virtual clock.
    func compute<R>(_ work: ComputeWork, _ body: () throws -> R) async rethrows -> R

    /// A native all-reduce (sum) the backend may offer instead of the generic algorithms
    /// (MPI_Allreduce, a shared-memory reduction). Returns false when the backend has none, in
    /// which case the generic algorithm runs.
    func nativeAllReduce<Scalar: BLASScalar>(_ vector: inout [Scalar]) async throws -> Bool
}

extension Communicator {
    public func receive(from source: Source, tag: Tag) async throws -> Message {
        try await receive(from: source, tag: tag, timeout: nil)
    }

    public func nativeAllReduce<Scalar: BLASScalar>(_ vector: inout [Scalar]) async throws -> Bool {
        false
    }

    public func sendInPlace(_ bytes: UnsafeRawBufferPointer, to destination: Int, tag: Tag) throws -> Bool { false }

    public func sendReceiveInPlace<Scalar: BLASScalar>(
        sending outgoing: UnsafeBufferPointer<Scalar>?, to destination: Int, sendTag: Tag,
        receivingInto incoming: UnsafeMutableBufferPointer<Scalar>, combine: InPlaceCombine,
        from source: Int, receiveTag: Tag
    ) throws -> InPlaceTransfer { .unsupported }

    public func waitForIncoming(from source: Int, tag: Tag, timeout: Double?) async throws {}

    public func send(count: Int, to destination: Int, tag: Tag, fill: (UnsafeMutableRawBufferPointer) -> Void) async throws {
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
        try await send(bytes, to: destination, tag: tag)
    }

    /// Checks a rank argument.
    public func checkRank(_ r: Int) throws {
        guard r >= 0 && r < size else { throw CommunicationError.invalidRank(r, size: size) }
    }
}

/// Memory all nodes of a backend can read and write (threads only): named vectors created on
/// first use and zero-filled.
public protocol SharedMemory: Sendable {
    func vector<Scalar: BLASScalar>(named name: String, count: Int, of: Scalar.Type) -> SharedVector<Scalar>
    /// Whether the nodes sharing this memory run at the same time (threads), so that one may give
    /// its core to another, or take turns on one thread (the simulator).
    var nodesRunInParallel: Bool { get }
}

/// A vector in shared memory. Reads and writes are deliberately unsynchronised (Hogwild's model:
/// word-sized writes, no locks); whoever uses it accepts that races lose updates.
public final class SharedVector<Scalar: BLASScalar>: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Scalar>
    /// A counter incremented atomically per applied update (the "clock" of the shared model).
    public let version = Atomic<Int>(0)
    /// A flag any node may set to ask the others to stop.
    public let stop = Atomic<Bool>(false)

    public init(count: Int) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { base.deallocate() }

    public func snapshot() -> [Scalar] { Array(UnsafeBufferPointer(start: base, count: count)) }
}
