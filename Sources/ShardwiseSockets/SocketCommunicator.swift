import Foundation
import Logging
import NIOCore
import NIOPosix
import Shardwise
import Synchronization

/// How one node of a socket run connects.
public struct SocketConfiguration: Sendable {
    public var rank: Int
    public var size: Int
    /// Where rank 0 listens and the others join (rank 0 binds it; port 0 = any free port).
    public var coordinatorHost: String
    public var coordinatorPort: Int
    /// Where ranks other than 0 accept data links (loopback by default; port 0 = any).
    public var bindHost: String
    public var secret: SharedSecret
    /// Names the run: a node of another job is refused at the handshake.
    public var jobID: String
    /// Receive timeout, and the deadline of the rendezvous and of the shutdown exchange.
    public var timeout: Double
    /// Seconds a new connection has to authenticate.
    public var handshakeTimeout: Double = 10
    /// Largest payload accepted after authentication.
    public var maximumFrameBytes: Int = FrameHeader.defaultMaximum
    /// Rank 0 writes the port it actually bound here (so a launcher can use port 0).
    public var portFile: String?
    /// How long a receive waits on its own sockets before it sleeps in the event loop (0 =
    /// never): it busy-polls them for the first 100 µs, yielding the CPU, then sleeps in poll(2)
    /// on them. Handing the wait to the event loop costs more (on a virtual machine about 100 µs a
    /// message, more than a small message takes to cross loopback), so the wait stays on the
    /// links it is for while a late peer is likely.
    public var spinSeconds: Double = SocketConfiguration.defaultSpinSeconds
    public static let defaultSpinSeconds = 1e-3
    public var logger: Logger

    public init(rank: Int, size: Int, coordinatorHost: String = "127.0.0.1", coordinatorPort: Int,
                bindHost: String = "127.0.0.1", secret: SharedSecret, jobID: String, timeout: Double,
                portFile: String? = nil, logger: Logger = Logger(label: "shardwise.sockets")) {
        self.rank = rank
        self.size = size
        self.coordinatorHost = coordinatorHost
        self.coordinatorPort = coordinatorPort
        self.bindHost = bindHost
        self.secret = secret
        self.jobID = jobID
        self.timeout = timeout
        self.portFile = portFile
        self.logger = logger
    }
}

/// Errors of the socket backend itself (the communication errors are `CommunicationError`s).
public enum SocketError: Error, CustomStringConvertible {
    /// A bad option or environment (no secret, bad address).
    case configuration(String)
    /// The rendezvous did not complete.
    case rendezvous(String)
    /// A node's process failed; the launcher names which and how.
    case runFailed(String)

    public var description: String {
        switch self {
        case .configuration(let s): return s
        case .rendezvous(let s): return "rendezvous failed: \(s)"
        case .runFailed(let s): return s
        }
    }
}

/// Where a rank accepts data links.
struct PeerAddress: Codable, Sendable {
    var rank: Int
    var host: String
    var port: Int
}

/// A `Communicator` over TCP, built on SwiftNIO.
///
/// - Rendezvous (torchrun-like): rank 0 listens on the coordinator address; every other rank
///   binds its own listener, joins the coordinator over an authenticated control connection,
///   announces its port, and receives the peer table once all have joined.
/// - Data links are opened as the strategy needs them: the first `send` to a peer connects to it,
///   authenticates, and from then on carries this node's messages to that peer, one way (the
///   peer's messages to us come over its own link). So a client-server strategy makes a star,
///   ring all-reduce a ring, gossip its graph; nobody pays for a full mesh. One connection per
///   (sender, receiver) keeps messages of one sender in order.
/// - One event-loop thread per node does the I/O *and* runs the node's strategy (through
///   `executor`): a message that arrives resumes the waiting receive on the same thread, without a
///   cross-thread wake-up. The BLAS kernel then also runs on that thread; while it computes, the
///   kernel's socket buffers hold what arrives.
/// - Failures: a connection that closes without a goodbye marks its peer lost; rank 0 tells every
///   rank when a node's control connection drops. Receives from a lost peer throw `.peerLost`
///   (after the messages it sent before dying); every receive has a timeout. Sends to a lost peer
///   are dropped (the loss is reported where it matters: at the receive that would wait for it).
///   A node that fails says so on every connection it has (`abort`), so its neighbours learn it
///   at once even when the coordinator is gone; a worker that loses the coordinator stops, since
///   nobody could finish the run.
/// - Every field read from the network (ranks, ports, the peer table, iterations, tags) is
///   checked before use; a peer that sends a bad one is treated as failed, with an error that
///   names it and the field.
/// - Metrics count bytes on the wire: payload plus the 24-byte frame header.
public final class SocketCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var backendName: String { "sockets" }
    public let metrics: NodeMetrics
    public var defaultTimeout: Double { configuration.timeout }
    public var sharedMemory: SharedMemory? { nil }
    public var now: Double { MonotonicClock.now() - start }

    let configuration: SocketConfiguration
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    /// Runs the node's async code on the I/O thread (see the type's discussion).
    public let executor: EventLoopTaskExecutor
    private let start = MonotonicClock.now()
    let mailbox: SocketMailbox
    /// The last iteration the monitor completed (-1 = none yet), for error messages. Rank 0
    /// tells the others (`progress` frames, at most every `progressInterval` seconds).
    let lastIteration = IterationCounter()
    static let progressInterval = 0.1
    private let lastProgressSent = Mutex(-Double.infinity)
    /// The log lines about bad connections, rate-limited.
    let badConnections: BadConnectionLog

    private enum Link {
        case idle
        case connecting([ByteBuffer])
        case ready(any Channel)
        case lost
    }

    private struct State {
        var links: [Link]
        var peers: [PeerAddress] = []
        var listener: (any Channel)?
        /// Rank 0: every rank's control connection; others: [0] = the coordinator.
        var control: [Int: any Channel] = [:]
        /// Inbound data links (kept to close them at the end).
        var inbound: [Int: any Channel] = [:]
        /// Peers that said goodbye: their connections closing is not a loss.
        var departed: Set<Int> = []
        var joined: [Int: PeerAddress] = [:]
        var finished = false
        var rendezvous: EventLoopPromise<Void>?
    }
    private let state: Mutex<State>

    /// Internal tags for control messages that travel through the mailbox (outcomes, done).
    static let outcomeTag = Tag(0xFFFF_FF01)
    static let doneTag = Tag(0xFFFF_FF02)

    private init(configuration: SocketConfiguration) {
        self.configuration = configuration
        rank = configuration.rank
        size = configuration.size
        var logger = configuration.logger
        logger[metadataKey: "rank"] = "\(configuration.rank)"
        self.logger = logger
        metrics = NodeMetrics(worldSize: configuration.size)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        executor = EventLoopTaskExecutor(loop)
        engine = ProgressEngine(budget: configuration.spinSeconds, allocator: ByteBufferAllocator())
        state = Mutex(State(links: Array(repeating: .idle, count: configuration.size)))
        let iteration = lastIteration
        let isCoordinator = configuration.rank == 0
        mailbox = SocketMailbox(rank: configuration.rank) {
            Self.describe(iteration: iteration.value.load(ordering: .relaxed), asSeenByCoordinator: isCoordinator)
        }
        badConnections = BadConnectionLog(logger: logger, loop: loop)
    }

    /// Where the run is, for error messages. A worker knows rank 0's iteration from its
    /// `progress` frames (a tenth of a second old at most).
    static func describe(iteration k: Int, asSeenByCoordinator: Bool) -> String {
        if k < 0 { return "during setup, before iteration 0" }
        return asSeenByCoordinator ? "during iteration \(k + 1), after iteration \(k) completed"
            : "during iteration \(k + 1), after rank 0 completed iteration \(k)"
    }

    /// Joins the run: binds, authenticates with the coordinator, learns the peer table.
    /// Returns once every rank has joined, or throws after `configuration.timeout` seconds.
    public static func rendezvous(_ configuration: SocketConfiguration) async throws -> SocketCommunicator {
        guard configuration.size >= 1, (0..<configuration.size).contains(configuration.rank) else {
            throw SocketError.configuration("rank \(configuration.rank) is not in a world of \(configuration.size)")
        }
        let comm = SocketCommunicator(configuration: configuration)
        do {
            try await comm.join()
        } catch {
            await comm.close()
            throw error
        }
        return comm
    }

    /// Records the monitor's progress (error messages name the iteration); rank 0 passes it on
    /// to the others a few times a second.
    public func noteIteration(_ iteration: Int) {
        lastIteration.value.store(iteration, ordering: .relaxed)
        guard rank == 0, size > 1 else { return }
        let t = MonotonicClock.now()
        let due = lastProgressSent.withLock { last in
            guard t - last >= Self.progressInterval else { return false }
            last = t
            return true
        }
        guard due else { return }
        let controls: [any Channel] = state.withLock { s in s.finished ? [] : Array(s.control.values) }
        var payload = [UInt8](repeating: 0, count: 8)
        payload.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(max(iteration, 0)).bigEndian, as: UInt64.self) }
        for ch in controls { write(ch, .progress, payload: payload) }
    }

    // MARK: - Rendezvous

    private func join() async throws {
        let c = configuration
        let promise = loop.makePromise(of: Void.self)
        state.withLock { $0.rendezvous = promise }
        let timer = loop.scheduleTask(in: .nanoseconds(Int64(c.timeout * 1e9))) { [self] in
            let missing = state.withLock { s in (1..<max(size, 1)).filter { s.joined[$0] == nil } }
            let what = rank == 0 ? "ranks \(missing) did not join within \(c.timeout) s"
                : "no peer table from the coordinator \(c.coordinatorHost):\(c.coordinatorPort) within \(c.timeout) s"
            promise.fail(SocketError.rendezvous(what))
        }
        defer { timer.cancel() }
        // Every rank listens: rank 0 on the coordinator address, the others on any port of bindHost.
        let host = rank == 0 ? c.coordinatorHost : c.bindHost
        let port = rank == 0 ? c.coordinatorPort : 0
        let listener: any Channel
        do {
            listener = try await serverBootstrap().bind(host: host, port: port).get()
        } catch {
            throw SocketError.rendezvous("cannot listen on \(host):\(port): \(error)")
        }
        let boundPort = listener.localAddress?.port ?? port
        state.withLock { $0.listener = listener }
        logger.debug("listening on \(host):\(boundPort)")
        if rank == 0 {
            if let file = c.portFile {
                do { try OutputFile.writeAtomically("\(boundPort)\n", to: file, option: "--port-file") } catch {
                    throw SocketError.configuration("\(error)")
                }
            }
            state.withLock { $0.joined[0] = PeerAddress(rank: 0, host: c.coordinatorHost, port: boundPort) }
            if size == 1 { promise.succeed(()) } else { loop.execute { [self] in completeRendezvousIfReady() } }
        } else {
            try await connectToCoordinator(listenPort: boundPort, deadline: MonotonicClock.now() + c.timeout)
        }
        try await promise.futureResult.get()
        logger.debug("rendezvous complete: \(size) ranks")
    }

    /// Connects to the coordinator, retrying (it may not be listening yet) until `deadline`.
    private func connectToCoordinator(listenPort: Int, deadline: Double) async throws {
        let c = configuration
        var delay = 0.01
        while true {
            do {
                _ = try await clientBootstrap(peer: 0, purpose: .join, listenPort: listenPort)
                    .connect(host: c.coordinatorHost, port: c.coordinatorPort).get()
                return
            } catch {
                if MonotonicClock.now() + delay > deadline {
                    throw SocketError.rendezvous("cannot reach the coordinator at \(c.coordinatorHost):\(c.coordinatorPort): \(error)")
                }
                logger.trace("coordinator not reachable yet (\(error)); retrying in \(delay) s")
                try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
                delay = min(delay * 2, 0.5)
            }
        }
    }

    private func completeRendezvousIfReady() {
        let ready: (table: [PeerAddress], controls: [any Channel], promise: EventLoopPromise<Void>?)? = state.withLock { s in
            guard s.joined.count == size, s.peers.isEmpty else { return nil }
            s.peers = (0..<size).map { s.joined[$0]! }
            let p = s.rendezvous
            s.rendezvous = nil
            return (s.peers, Array(s.control.values), p)
        }
        guard let ready else { return }
        let payload = Handshake.encode(ready.table)
        for ch in ready.controls { write(ch, .peers, payload: payload) }
        ready.promise?.succeed(())
    }

    // MARK: - Bootstraps

    private func serverBootstrap() -> ServerBootstrap {
        ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try addHandlers(channel, role: .acceptor) }
            }
    }

    private func clientBootstrap(peer: Int, purpose: ConnectionPurpose, listenPort: Int) -> ClientBootstrap {
        ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
            .connectTimeout(.seconds(max(1, Int64(configuration.handshakeTimeout))))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try addHandlers(channel, role: .connector(peer: peer, purpose: purpose, listenPort: listenPort))
                }
            }
    }

    private func addHandlers(_ channel: any Channel, role: ConnectionHandler.Role) throws {
        let decoder = FrameDecoder(logger: logger, badConnections: badConnections)
        try channel.pipeline.syncOperations.addHandler(decoder)
        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(role: role, node: self, decoder: decoder))
    }

    // MARK: - Events from connections (on the event loop)

    /// Why a hello must be refused (nil = admit).
    func admissionProblem(_ hello: Handshake.Hello) -> String? {
        guard hello.jobID == configuration.jobID else {
            return "a node of another job (\(Handshake.printable(hello.jobID)), expected \(configuration.jobID))"
        }
        guard hello.size == size else { return "world size \(hello.size), expected \(size)" }
        guard (0..<size).contains(hello.rank), hello.rank != rank else {
            return "invalid rank \(hello.rank) (this node is rank \(rank) of 0..<\(size))"
        }
        if hello.purpose == .join {
            guard rank == 0 else { return "only rank 0 accepts joins" }
            // The port goes into the peer table every rank connects by.
            guard Self.ports.contains(hello.listenPort) else {
                return "rank \(hello.rank) announced listen port \(hello.listenPort), outside \(Self.ports)"
            }
            return state.withLock { s in
                s.control[hello.rank] != nil ? "rank \(hello.rank) has already joined" : (s.finished ? "the run is over" : nil)
            }
        }
        return state.withLock { $0.inbound[hello.rank] != nil ? "rank \(hello.rank) already has a data link here" : nil }
    }

    func accepted(_ hello: Handshake.Hello, channel: any Channel, remote: SocketAddress?, decoder: FrameDecoder) {
        switch hello.purpose {
        case .join:
            let host = remote?.ipAddress ?? configuration.coordinatorHost
            let late: [PeerAddress]? = state.withLock { s in
                s.control[hello.rank] = channel
                s.joined[hello.rank] = PeerAddress(rank: hello.rank, host: host, port: hello.listenPort)
                return s.peers.isEmpty ? nil : s.peers
            }
            logger.debug("rank \(hello.rank) joined from \(host), data port \(hello.listenPort)")
            if let late { write(channel, .peers, payload: Handshake.encode(late)) } else { completeRendezvousIfReady() }
        case .data:
            state.withLock { $0.inbound[hello.rank] = channel }
            engine.add(peer: hello.rank, channel: channel, inbound: true, decoder: decoder)
            logger.trace("data link from rank \(hello.rank) accepted")
        }
    }

    func connected(peer: Int, purpose: ConnectionPurpose, channel: any Channel) {
        switch purpose {
        case .join:
            state.withLock { $0.control[0] = channel }
            logger.debug("joined the coordinator")
        case .data:
            let queued: [ByteBuffer] = state.withLock { s in
                guard case .connecting(let q) = s.links[peer] else { return [] }
                s.links[peer] = .ready(channel)
                return q
            }
            engine.add(peer: peer, channel: channel, inbound: false)
            for b in queued { engine.track(channel.write(b), peer: peer, onLoop: true) }
            channel.flush()
            logger.trace("data link to rank \(peer) ready (\(queued.count) queued messages sent)")
        }
    }

    func connectionFailed(peer: Int, purpose: ConnectionPurpose, reason: String) {
        if purpose == .data { lose(peer, reason: "cannot open a data link to it: \(reason)") }
        // A join that cannot connect is retried by `connectToCoordinator` (its connect future
        // fails, and this is not called). One that connected and then failed its handshake was
        // refused (a duplicate rank, another job, a wrong secret): waiting cannot help.
        guard purpose == .join else { return }
        let pending: EventLoopPromise<Void>? = state.withLock { s in
            defer { s.rendezvous = nil }
            return s.rendezvous
        }
        let c = configuration
        pending?.fail(SocketError.rendezvous("cannot join the coordinator at \(c.coordinatorHost):\(c.coordinatorPort) as rank \(rank): \(reason)"))
    }

    func connectionClosed(peer: Int, purpose: ConnectionPurpose) {
        let (finished, departed) = state.withLock { s in
            if purpose == .data {
                if s.inbound[peer] != nil { s.inbound[peer] = nil }
                engine.remove(peer: peer)
                if case .ready = s.links[peer] { s.links[peer] = .idle }
            } else {
                s.control[peer] = nil
            }
            return (s.finished, s.departed.contains(peer))
        }
        if finished || departed { return }
        let what = purpose == .join ? (rank == 0 ? "its control connection" : "the coordinator connection") : "a data link"
        lose(peer, reason: "\(what) closed (process died?)")
    }

    func received(_ frame: Frame, from peer: Int, purpose: ConnectionPurpose, channel: any Channel) {
        switch frame.type {
        case .data:
            guard !Self.internalTags.contains(frame.tag) else {
                return violation(peer, channel: channel, "a data frame with tag 0x\(String(frame.tag, radix: 16)), reserved for control messages")
            }
            mailbox.deliver(Message(source: peer, tag: Tag(frame.tag), payload: frame.payload))
        case .peers where purpose == .join && rank != 0:
            let table: [PeerAddress]
            switch validatePeerTable(frame.payload) {
            case .success(let t): table = t
            case .failure(let problem):
                // Without a usable table this node cannot run: the rendezvous fails now.
                let c = configuration
                let error = SocketError.rendezvous("the coordinator (rank 0 at \(c.coordinatorHost):\(c.coordinatorPort)) sent a bad peer table: \(problem.reason)")
                let pending: EventLoopPromise<Void>? = state.withLock { s in
                    defer { s.rendezvous = nil }
                    return s.rendezvous
                }
                pending?.fail(error)
                return violation(0, channel: channel, "a bad peer table: \(problem.reason)")
            }
            let promise: EventLoopPromise<Void>? = state.withLock { s in
                s.peers = table
                // Rank 0's address as this node reached it (the coordinator may not know its own).
                s.peers[0].host = configuration.coordinatorHost
                let p = s.rendezvous
                s.rendezvous = nil
                return p
            }
            promise?.succeed(())
        case .lost where purpose == .join && rank != 0:
            guard let note = Handshake.decode(LostNote.self, frame.payload) else {
                return violation(0, channel: channel, "an unreadable lost frame")
            }
            // Rank 0 reports the loss of another worker: never itself, never us.
            guard (1..<size).contains(note.rank), note.rank != rank else {
                return violation(0, channel: channel, "a lost frame naming rank \(note.rank) (field \"rank\"), which must be a rank in 1..<\(size) other than \(rank)")
            }
            lose(note.rank, reason: Handshake.printable(note.reason), relay: false)
        case .progress where purpose == .join && rank != 0:
            guard frame.payload.count == 8 else {
                return violation(0, channel: channel, "a progress frame of \(frame.payload.count) bytes (8 expected)")
            }
            let raw = frame.payload.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard let k = Int(exactly: raw), k <= Int(Int32.max) else {
                return violation(0, channel: channel, "a progress frame with iteration \(raw), outside 0...\(Int32.max)")
            }
            lastIteration.value.store(k, ordering: .relaxed)
        case .outcome where purpose == .join && rank == 0:
            mailbox.deliver(Message(source: peer, tag: Self.outcomeTag, payload: frame.payload))
        case .done where purpose == .join && rank != 0:
            state.withLock { $0.finished = true }
            mailbox.deliver(Message(source: 0, tag: Self.doneTag, payload: []))
        case .abort where purpose == .join:
            let reason = Handshake.printable(frame.payload)
            if rank == 0 {
                lose(peer, reason: "it failed: \(reason)")
            } else {
                logger.debug("the coordinator stopped the run: \(reason)")
                mailbox.cancel(reason: "rank 0 stopped the run: \(reason)")
            }
        case .abort:
            // A peer that failed tells everyone it has a link with (see `abort`).
            lose(peer, reason: "it failed: \(Handshake.printable(frame.payload))")
        case .goodbye:
            state.withLock { _ = $0.departed.insert(peer) }
        default:
            logger.warning("ignoring an unexpected \(frame.type) frame from rank \(peer)")
        }
    }

    struct LostNote: Codable { var rank: Int; var reason: String }

    /// Ports a peer may announce.
    static let ports = 1...65535
    /// Tags of the backend's own messages in the mailbox: a peer's data frame may not use them.
    static let internalTags: Set<UInt32> = [outcomeTag.rawValue, doneTag.rawValue]

    struct FieldProblem: Error { var reason: String }

    /// The peer table from the coordinator, checked entry by entry before anything connects by it.
    func validatePeerTable(_ payload: [UInt8]) -> Result<[PeerAddress], FieldProblem> {
        guard let table = Handshake.decode([PeerAddress].self, payload) else {
            return .failure(FieldProblem(reason: "it is not a JSON list of {rank, host, port}"))
        }
        guard table.count == size else {
            return .failure(FieldProblem(reason: "\(table.count) entries for a world of \(size)"))
        }
        for (i, p) in table.enumerated() {
            guard p.rank == i else { return .failure(FieldProblem(reason: "entry \(i) has rank \(p.rank) (field \"rank\"), expected \(i)")) }
            guard Self.ports.contains(p.port) else {
                return .failure(FieldProblem(reason: "entry \(i) has port \(p.port) (field \"port\"), outside \(Self.ports)"))
            }
            guard !p.host.isEmpty, p.host.utf8.count <= 255, !p.host.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                return .failure(FieldProblem(reason: "entry \(i) has host \"\(Handshake.printable(p.host))\" (field \"host\"), not a host name or address"))
            }
        }
        return .success(table)
    }

    /// `peer` sent something no correct node sends: it is treated as failed (receives from it
    /// throw an error naming it and the field), and its connection is closed.
    private func violation(_ peer: Int, channel: any Channel, _ what: String) {
        lose(peer, reason: "it sent \(what)")   // logs it
        channel.close(promise: nil)
    }

    /// Marks `peer` lost; rank 0 tells everyone else.
    private func lose(_ peer: Int, reason: String, relay: Bool = true) {
        guard !mailbox.isLost(peer) else { return }
        let others: [any Channel] = state.withLock { s in
            if case .connecting = s.links[peer] { s.links[peer] = .lost }
            if case .ready = s.links[peer] { s.links[peer] = .lost }
            s.links[peer] = .lost
            return rank == 0 && relay ? s.control.filter { $0.key != peer }.map(\.value) : []
        }
        logger.warning("lost rank \(peer): \(reason)")
        mailbox.markLost(peer, reason: reason)
        let note = Handshake.encode(LostNote(rank: peer, reason: "rank 0 reports: \(reason)"))
        for ch in others { write(ch, .lost, payload: note) }
        if peer == 0 && rank != 0 {
            // Rank 0 collects the outcomes and ends the run: without it no node can finish, so
            // every receive stops now instead of waiting for a peer that may be waiting for us.
            mailbox.cancel(reason: "lost the coordinator (rank 0): \(reason) (\(mailbox.context()))")
        }
    }

    private func write(_ channel: any Channel, _ type: FrameType, tag: UInt32 = 0, payload: [UInt8]) {
        channel.writeAndFlush(FrameWriter.buffer(type, tag: tag, payload: payload, allocator: channel.allocator), promise: nil)
    }

    // MARK: - Communicator

    public func send(_ payload: [UInt8], to destination: Int, tag: Tag) async throws {
        try checkRank(destination)
        let t0 = now
        if destination == rank {
            mailbox.deliver(Message(source: rank, tag: tag, payload: payload))
            metrics.recordSend(bytes: payload.count, to: destination, seconds: now - t0)
            return
        }
        sendFrame(FrameWriter.buffer(.data, tag: tag.rawValue, payload: payload, allocator: allocator), to: destination)
        metrics.recordSend(bytes: payload.count + FrameHeader.size, to: destination, seconds: now - t0)
    }

    /// The codec writes straight into the frame (no intermediate array).
    public func send(count: Int, to destination: Int, tag: Tag, fill: (UnsafeMutableRawBufferPointer) -> Void) async throws {
        try checkRank(destination)
        if destination == rank {
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { b, n in fill(UnsafeMutableRawBufferPointer(b)); n = count }
            return try await send(bytes, to: destination, tag: tag)
        }
        sendCopy(count: count, to: destination, tag: tag, fill: fill)
    }

    /// A data frame built in a NIO buffer (`fill` writes the payload), sent and counted.
    private func sendCopy(count: Int, to destination: Int, tag: Tag, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let t0 = now
        sendFrame(FrameWriter.buffer(.data, tag: tag.rawValue, count: count, allocator: allocator, fill: fill), to: destination)
        metrics.recordSend(bytes: count + FrameHeader.size, to: destination, seconds: now - t0)
    }

    /// The vector's own bytes go to the socket (see `ProgressEngine.sendInPlace`) when the engine
    /// drives the link; otherwise false, and the collective sends a copy.
    public func sendInPlace(_ bytes: UnsafeRawBufferPointer, to destination: Int, tag: Tag) throws -> Bool {
        try checkRank(destination)
        guard destination != rank, loop.inEventLoop, let channel = readyChannel(destination) else { return false }
        let t0 = now
        guard engine.sendInPlace(bytes, tag: tag.rawValue, to: destination, channel: channel, allocator: allocator) else { return false }
        metrics.recordSend(bytes: bytes.count + FrameHeader.size + FrameHeader.trailerSize, to: destination, seconds: now - t0)
        return true
    }

    /// Posts the receive before the send (see `Communicator.sendReceiveInPlace`): the incoming
    /// frame's payload goes from `recv` into `incoming` (see `PayloadSink`) while the outgoing
    /// vector is written from its own memory, then the receive spins like `receive`. Needs the
    /// engine to drive both links (an inbound link exists once the peer has sent to us once).
    public func sendReceiveInPlace<Scalar: BLASScalar>(
        sending outgoing: UnsafeBufferPointer<Scalar>?, to destination: Int, sendTag: Tag,
        receivingInto incoming: UnsafeMutableBufferPointer<Scalar>, combine: InPlaceCombine,
        from source: Int, receiveTag: Tag
    ) throws -> InPlaceTransfer {
        try checkRank(source)
        guard loop.inEventLoop, source != rank, incoming.count > 0, let decoder = engine.decoder(from: source) else {
            return .unsupported
        }
        if outgoing != nil {
            try checkRank(destination)
            guard destination != rank, let channel = readyChannel(destination), engine.ownsWrites(to: destination, channel: channel) else {
                return .unsupported
            }
        }
        func send() throws {
            guard let outgoing else { return }
            let bytes = UnsafeRawBufferPointer(outgoing)
            if try !sendInPlace(bytes, to: destination, tag: sendTag) {
                sendCopy(count: bytes.count, to: destination, tag: sendTag) { $0.copyMemory(from: bytes) }
            }
        }
        // A matching message that is already here is received first (one sender's messages with
        // one tag are received in the order sent): no sink.
        if try mailbox.contains(from: .rank(source), tag: receiveTag) {
            try send()
            return .partial(bytes: 0)
        }
        let add: ((UnsafeRawPointer, UnsafeMutableRawPointer, Int) -> Void)? = combine == .replace ? nil : { x, y, n in
            // x: the staging bytes, viewed as entries for the call; y: the vector's own memory.
            x.withMemoryRebound(to: Scalar.self, capacity: n) { x in
                Scalar.axpy(count: n, alpha: 1, x: x, y: y.assumingMemoryBound(to: Scalar.self))
            }
        }
        let sink = PayloadSink(tag: receiveTag.rawValue, destination: UnsafeMutableRawBufferPointer(incoming),
                               stride: MemoryLayout<Scalar>.stride, add: add, staging: engine.staging)
        decoder.attach(sink)
        do { try send() } catch { decoder.detachSink(); throw error }
        let waitStart = now
        func arriving() -> Bool { sink.state == .waiting || sink.state == .filling }
        if arriving() {
            _ = engine.run(waitingFor: [source]) { arriving() ? nil : true }
        }
        let taken = decoder.detachSink()
        switch sink.state {
        case .complete:
            metrics.recordReceive(bytes: sink.frameBytes, waited: now - waitStart, seconds: 0)
            return .complete
        case .failed(let reason):
            throw CommunicationError.badPayload("rank \(rank) from rank \(source) (\(receiveTag)): \(reason)")
        case .waiting:
            metrics.addWaiting(seconds: now - waitStart)
            return .notStarted
        default:
            metrics.recordReceive(bytes: taken, waited: now - waitStart, seconds: 0, messages: 0)
            return .partial(bytes: taken)
        }
    }

    /// Sleeps in the event loop until `source`'s data link starts a frame with `tag` (see
    /// `FrameDecoder.watchFrameStart`), a matching message is already here, the link ends, a peer
    /// is lost or the run cancelled (the receive that follows reports those), or `timeout`
    /// (default: the receive timeout) passes, which throws `.timeout`.
    public func waitForIncoming(from source: Int, tag: Tag, timeout: Double?) async throws {
        try checkRank(source)
        guard loop.inEventLoop, let decoder = engine.decoder(from: source) else { return }
        if try mailbox.contains(from: .rank(source), tag: tag) || decoder.isReceiving(tag: tag.rawValue)
            || mailbox.inTrouble(from: source) { return }
        engine.handOverAll()   // what is still to be written must not wait for us
        let t0 = now
        let seconds = timeout ?? defaultTimeout
        let timedOut: Bool = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let resumed = Box(false)
            var timer: Scheduled<Void>?
            // Everything below runs on this node's event loop.
            let resume: (Bool) -> Void = { expired in
                guard !resumed.value else { return }
                resumed.value = true
                timer?.cancel()
                decoder.cancelFrameStartWatch()
                self.mailbox.onTrouble(nil)
                c.resume(returning: expired)
            }
            let onLoop = NIOLoopBound(resume, eventLoop: loop)
            timer = loop.scheduleTask(in: .nanoseconds(Int64(min(seconds, 1e9) * 1e9))) { onLoop.value(true) }
            decoder.watchFrameStart(tag: tag.rawValue) { onLoop.value(false) }
            mailbox.onTrouble { [loop] in loop.execute { onLoop.value(false) } }
        }
        metrics.addWaiting(seconds: now - t0)
        if timedOut { throw mailbox.timeoutError(from: source, tag: tag, seconds: seconds) }
    }

    private func readyChannel(_ peer: Int) -> (any Channel)? {
        state.withLock { s in
            if case .ready(let ch) = s.links[peer] { return ch }
            return nil
        }
    }

    private func sendFrame(_ buffer: ByteBuffer, to destination: Int) {
        enum Action { case write(any Channel), connect, queued, drop }
        let action: Action = state.withLock { s in
            switch s.links[destination] {
            case .ready(let ch): return .write(ch)
            case .connecting(var q):
                s.links[destination] = .idle
                q.append(buffer)
                s.links[destination] = .connecting(q)
                return .queued
            case .idle:
                s.links[destination] = .connecting([buffer])
                return .connect
            case .lost:
                return .drop
            }
        }
        switch action {
        case .write(let ch):
            engine.write(buffer, to: destination, channel: ch, onLoop: loop.inEventLoop)
        case .connect: openLink(to: destination)
        case .queued: break
        case .drop: logger.debug("dropping a message to lost rank \(destination)")
        }
    }

    private let allocator = ByteBufferAllocator()
    /// When `poll` last let the loop read (node-thread only).
    private let lastIOTurn = Box(0.0)
    /// The data links' fast path (event-loop only).
    private let engine: ProgressEngine

    private func openLink(to peer: Int) {
        guard let address = state.withLock({ $0.peers.count > peer ? $0.peers[peer] : nil }) else {
            lose(peer, reason: "no address for it (send before the rendezvous completed?)")
            return
        }
        clientBootstrap(peer: peer, purpose: .data, listenPort: 0)
            .connect(host: address.host, port: address.port)
            .whenFailure { [self] error in
                lose(peer, reason: "cannot connect to \(address.host):\(address.port): \(error)")
            }
    }

    public func receive(from source: Source, tag: Tag, timeout: Double?) async throws -> Message {
        if case .rank(let r) = source { try checkRank(r) }
        if let m = try mailbox.take(from: source, tag: tag) {
            metrics.recordReceive(bytes: m.payload.count + FrameHeader.size, waited: 0, seconds: 0)
            return m
        }
        let t0 = now
        if loop.inEventLoop, let m = try engine.run(waitingFor: source.peers, arrived: { try mailbox.take(from: source, tag: tag) }) {
            metrics.recordReceive(bytes: m.payload.count + FrameHeader.size, waited: now - t0, seconds: 0)
            return m
        }
        let m = try await mailbox.wait(from: source, tag: tag, timeout: timeout ?? defaultTimeout, loop: loop)
        metrics.recordReceive(bytes: m.payload.count + FrameHeader.size, waited: now - t0, seconds: 0)
        return m
    }

    public func poll(from source: Source, tag: Tag) async throws -> Message? {
        if case .rank(let r) = source { try checkRank(r) }
        if loop.inEventLoop { engine.pump() }
        var m = try mailbox.take(from: source, tag: tag)
        if m == nil && now - lastIOTurn.value > 1e-4 {
            await handOverQueuedWrites()
            // The node runs on the I/O thread, and a strategy that only polls (asynchronous
            // gossip) never suspends, so the loop would never read. A task scheduled a little in
            // the future ends the loop's task run, so it polls its sockets before resuming us.
            // (Task.yield would not: NIO runs tasks queued during its task run in the same tick.)
            try? await loop.scheduleTask(in: .microseconds(20)) {}.futureResult.get()
            lastIOTurn.value = now
            m = try mailbox.take(from: source, tag: tag)
        }
        if let m { metrics.recordReceive(bytes: m.payload.count + FrameHeader.size, waited: 0, seconds: 0) }
        return m
    }

    /// Gives the engine's queued writes to NIO: before this node waits in the loop other than
    /// through `receive` (which does it itself).
    private func handOverQueuedWrites() async {
        if loop.inEventLoop {
            engine.handOverAll()
        } else {
            try? await loop.submit { [engine] in engine.handOverAll() }.get()
        }
    }

    public func compute<R>(_ work: ComputeWork, _ body: () throws -> R) async rethrows -> R {
        let t0 = MonotonicClock.now()
        let r = try body()
        metrics.recordCompute(seconds: MonotonicClock.now() - t0)
        return r
    }

    // MARK: - End of the run

    /// Ranks that are lost, with the reason.
    public var lostPeers: [Int: String] { mailbox.lostPeers }

    /// A rank other than 0 hands its outcome (any bytes) to the coordinator, then waits for the
    /// coordinator's "done" so that no connection closes while others may still need it.
    public func finishAsWorker(outcome: [UInt8]) async throws {
        precondition(rank != 0)
        await handOverQueuedWrites()
        guard let control = state.withLock({ $0.control[0] }) else {
            throw CommunicationError.peerLost(rank: rank, peer: 0, reason: "no connection to the coordinator")
        }
        write(control, .outcome, payload: outcome)
        _ = try await mailbox.wait(from: .rank(0), tag: Self.doneTag, timeout: configuration.timeout, loop: loop)
    }

    /// Rank 0 collects every other live rank's outcome (within the timeout), then tells everyone
    /// the run is done. Returns outcomes by rank; lost ranks are missing.
    public func finishAsCoordinator() async throws -> [Int: [UInt8]] {
        precondition(rank == 0)
        await handOverQueuedWrites()
        var outcomes: [Int: [UInt8]] = [:]
        let deadline = now + configuration.timeout
        while outcomes.count + mailbox.lostPeers.keys.filter({ outcomes[$0] == nil }).count < size - 1 {
            do {
                let m = try await mailbox.wait(from: .any, tag: Self.outcomeTag, timeout: max(0.001, deadline - now), loop: loop)
                outcomes[m.source] = m.payload
            } catch CommunicationError.peerLost {
                continue
            }
        }
        let controls: [any Channel] = state.withLock { s in
            s.finished = true
            return Array(s.control.values)
        }
        for ch in controls { write(ch, .done, payload: []) }
        return outcomes
    }

    /// Tells the others this node failed (rank 0: stops the run everywhere): on the control
    /// connections, and on every data link in either direction, so that a neighbour learns it at
    /// once even when the coordinator is gone (a ring whose rank 0 died).
    public func abort(reason: String) {
        if loop.inEventLoop { engine.handOverAll() } else { loop.execute { [engine] in engine.handOverAll() } }
        let channels: [any Channel] = state.withLock { s in
            s.finished = true
            var all = Array(s.control.values) + Array(s.inbound.values)
            for case .ready(let ch) in s.links { all.append(ch) }
            return all
        }
        let payload = Array(Handshake.printable(reason).utf8)
        for ch in channels where ch.isActive { write(ch, .abort, payload: payload) }
    }

    /// Closes every connection (after a goodbye, so no peer mistakes it for a death) and stops
    /// the I/O thread.
    public func close() async {
        await handOverQueuedWrites()
        let (listener, channels): ((any Channel)?, [any Channel]) = state.withLock { s in
            s.finished = true
            var all: [any Channel] = Array(s.control.values) + Array(s.inbound.values)
            for case .ready(let ch) in s.links { all.append(ch) }
            let l = s.listener
            s.listener = nil
            return (l, all)
        }
        // A goodbye on every link; then wait (at most the timeout) until it — and so everything
        // written before it — is out: closing a channel drops the bytes it has not written yet.
        let written = channels.filter(\.isActive).map {
            $0.writeAndFlush(FrameWriter.buffer(.goodbye, payload: [], allocator: $0.allocator))
        }
        if !written.isEmpty {
            let drained = loop.makePromise(of: Void.self)
            let settled = Box(false)
            let settle: @Sendable () -> Void = { [loop] in
                loop.assertInEventLoop()
                guard !settled.value else { return }
                settled.value = true
                drained.succeed(())
            }
            EventLoopFuture.whenAllComplete(written, on: loop).whenComplete { _ in settle() }
            let timer = loop.scheduleTask(in: .nanoseconds(Int64(configuration.timeout * 1e9))) {
                self.logger.warning("closing with unsent data: a peer did not read it within \(self.configuration.timeout) s")
                settle()
            }
            try? await drained.futureResult.get()
            timer.cancel()
        }
        try? await listener?.close().get()
        for ch in channels { try? await ch.close().get() }
        try? await group.shutdownGracefully()
    }
}

/// A `TaskExecutor` that runs jobs on a NIO event loop, so that async code (a node's strategy) and
/// the loop's I/O share one thread: a resumed receive is a task on the same loop, not a wake-up of
/// another thread.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let loop: any EventLoop
    init(_ loop: any EventLoop) { self.loop = loop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
}

/// The last iteration the monitor completed, shared with the mailbox's error messages.
final class IterationCounter: Sendable {
    let value = Atomic<Int>(-1)
}

extension Source {
    /// The one peer a receive waits for, or nil for any.
    var peers: [Int]? {
        if case .rank(let p) = self { return [p] }
        return nil
    }
}

/// A mutable value owned by the node's thread.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
