import Foundation
import Logging
import NIOCore
import Shardwise
import Synchronization

/// One TCP connection's handshake, then its frames. The acceptor challenges; the connector answers
/// with its identity and HMAC; both sides verify each other (see `Handshake`). Until then the
/// decoder accepts only small frames, and a connection that has not authenticated within the
/// handshake timeout is closed.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    enum Role {
        case acceptor
        /// Connects to `peer` for `purpose`; `listenPort` is announced on join.
        case connector(peer: Int, purpose: ConnectionPurpose, listenPort: Int)
    }

    private enum State {
        case awaitingChallenge
        case awaitingHello(challenge: String)
        case awaitingWelcome(challenge: String, hello: Handshake.Hello)
        case established(peer: Int, purpose: ConnectionPurpose)
        case closed
    }

    private let role: Role
    private var state: State
    private let node: SocketCommunicator
    private let decoder: FrameDecoder
    private var handshakeTimer: Scheduled<Void>?
    private var refusal: String?

    init(role: Role, node: SocketCommunicator, decoder: FrameDecoder) {
        self.role = role
        self.node = node
        self.decoder = decoder
        switch role {
        case .acceptor: state = .awaitingHello(challenge: "")
        case .connector: state = .awaitingChallenge
        }
    }

    private var logger: Logger { node.logger }

    func channelActive(context: ChannelHandlerContext) {
        let timeout = node.configuration.handshakeTimeout
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout * 1e9))) {
            let (me, ctx) = loopBound.value
            if case .established = me.state { return }
            me.refuse(context: ctx, "no handshake within \(timeout) s")
        }
        if case .acceptor = role {
            let challenge = Handshake.nonce()
            state = .awaitingHello(challenge: challenge)
            write(context: context, Frame(type: .challenge, payload: Handshake.encode(Handshake.Challenge(nonce: challenge))))
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch state {
        case .established(let peer, let purpose):
            node.received(frame, from: peer, purpose: purpose, channel: context.channel)

        case .awaitingHello(let challenge):
            guard frame.type == .hello, let hello = Handshake.decode(Handshake.Hello.self, frame.payload) else {
                return refuse(context: context, frame.type == .hello ? "an unreadable hello" : "expected a hello, got \(frame.type)")
            }
            guard Handshake.verify(hello.mac, Handshake.clientMessage(hello, challenge: challenge), secret: node.configuration.secret) else {
                return refuse(context: context, "authentication failed (wrong shared secret?) for a peer claiming rank \(hello.rank)", tell: "authentication failed")
            }
            if let problem = node.admissionProblem(hello) {
                return refuse(context: context, problem, tell: problem)
            }
            let mac = Handshake.mac(Handshake.serverMessage(rank: node.rank, challenge: challenge, clientNonce: hello.nonce),
                                    secret: node.configuration.secret)
            write(context: context, Frame(type: .welcome, payload: Handshake.encode(Handshake.Welcome(rank: node.rank, mac: mac))))
            establish(context: context, peer: hello.rank, purpose: hello.purpose)
            node.accepted(hello, channel: context.channel, remote: context.remoteAddress, decoder: decoder)

        case .awaitingChallenge:
            guard case .connector(let peer, let purpose, let listenPort) = role,
                  frame.type == .challenge, let challenge = Handshake.decode(Handshake.Challenge.self, frame.payload) else {
                return refuse(context: context, frame.type == .challenge ? "an unreadable challenge" : "expected a challenge, got \(frame.type)")
            }
            var hello = Handshake.Hello(rank: node.rank, size: node.size, jobID: node.configuration.jobID, purpose: purpose,
                                        listenPort: listenPort, nonce: Handshake.nonce(), mac: "")
            hello.mac = Handshake.mac(Handshake.clientMessage(hello, challenge: challenge.nonce), secret: node.configuration.secret)
            node.logger.trace("answering the challenge of rank \(peer)")
            state = .awaitingWelcome(challenge: challenge.nonce, hello: hello)
            write(context: context, Frame(type: .hello, payload: Handshake.encode(hello)))

        case .awaitingWelcome(let challenge, let hello):
            guard case .connector(let peer, let purpose, _) = role else { return }
            if frame.type == .reject {
                let reason = Handshake.decode(Handshake.Reject.self, frame.payload).map { Handshake.printable($0.reason) } ?? "no reason given"
                return refuse(context: context, "rank \(peer) refused us: \(reason)")
            }
            guard frame.type == .welcome, let welcome = Handshake.decode(Handshake.Welcome.self, frame.payload) else {
                return refuse(context: context, frame.type == .welcome ? "an unreadable welcome" : "expected a welcome, got \(frame.type)")
            }
            guard welcome.rank == peer,
                  Handshake.verify(welcome.mac, Handshake.serverMessage(rank: peer, challenge: challenge, clientNonce: hello.nonce),
                                   secret: node.configuration.secret) else {
                return refuse(context: context, "the peer at this address failed to prove it is rank \(peer) (wrong shared secret?)")
            }
            establish(context: context, peer: peer, purpose: purpose)
            node.connected(peer: peer, purpose: purpose, channel: context.channel)

        case .closed:
            break
        }
    }

    private func establish(context: ChannelHandlerContext, peer: Int, purpose: ConnectionPurpose) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        decoder.maximumLength = node.configuration.maximumFrameBytes
        state = .established(peer: peer, purpose: purpose)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        let previous = state
        state = .closed
        switch previous {
        case .established(let peer, let purpose):
            node.connectionClosed(peer: peer, purpose: purpose)
        case .closed:
            break
        default:
            if case .connector(let peer, let purpose, _) = role {
                node.connectionFailed(peer: peer, purpose: purpose, reason: refusal ?? "the connection closed during the handshake")
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is FrameError {
            refusal = refusal ?? "\(error)"   // the decoder has logged it and is closing
            return
        }
        logger.debug("connection error: \(error)", metadata: ["remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        refusal = refusal ?? "\(error)"
        context.close(promise: nil)
    }

    /// Logs why, tells the peer (when `tell` is given), and closes. `channelInactive` then reports
    /// the failure of an outgoing connection to the node.
    private func refuse(context: ChannelHandlerContext, _ reason: String, tell: String? = nil) {
        if case .closed = state { return }
        guard refusal == nil else { return }
        refusal = reason
        node.badConnections.report("refusing connection: \(reason)", remote: context.remoteAddress)
        decoder.stop()
        if let tell {
            write(context: context, Frame(type: .reject, payload: Handshake.encode(Handshake.Reject(reason: tell))))
        }
        context.close(promise: nil)
    }

    private func write(context: ChannelHandlerContext, _ frame: Frame) {
        let buffer = FrameWriter.buffer(frame.type, tag: frame.tag, payload: frame.payload, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}

/// The log lines about refused or broken connections, rate-limited: a flood of bad connections
/// (a port scanner, a misconfigured client in a loop) must not fill the log or cost more than
/// the connections themselves.
///
/// In each `window` (10 s) the first `firstFew` lines are logged as they come; the rest are only
/// counted, by remote address, and one summary line says how many there were ("37 more bad
/// connections from 10.0.0.7 (×36), 10.0.0.9 (×1) in the last 10 s") when the window ends — on a
/// timer of the node's event loop, or at the next bad connection after it.
final class BadConnectionLog: Sendable {
    private struct State {
        var windowStart: Double
        var logged = 0
        var suppressed = 0
        /// Suppressed lines by remote address, in order of first appearance (at most `maximumHosts`).
        var hosts: [(host: String, count: Int)] = []
        var otherHosts = 0
        var flushScheduled = false
    }

    static let maximumHosts = 5
    let logger: Logger
    let window: Double
    let firstFew: Int
    private let clock: @Sendable () -> Double
    private let loop: (any EventLoop)?
    private let state: Mutex<State>

    init(logger: Logger, window: Double = 10, firstFew: Int = 5, loop: (any EventLoop)? = nil,
         clock: @escaping @Sendable () -> Double = { MonotonicClock.now() }) {
        self.logger = logger
        self.window = window
        self.firstFew = firstFew
        self.loop = loop
        self.clock = clock
        state = Mutex(State(windowStart: clock()))
    }

    /// Logs `message` (a warning, with the remote address as metadata) or counts it. Returns
    /// whether it was logged.
    @discardableResult
    func report(_ message: @autoclosure () -> String, remote: SocketAddress?) -> Bool {
        let now = clock()
        let host = remote?.ipAddress ?? "an unknown address"
        var summary: String?
        var schedule: Double?
        let log: Bool = state.withLock { s in
            if now - s.windowStart >= window {
                summary = Self.summary(&s, window: window)
                s.windowStart = now
                s.logged = 0
            }
            if s.logged < firstFew {
                s.logged += 1
                return true
            }
            s.suppressed += 1
            if let i = s.hosts.firstIndex(where: { $0.host == host }) {
                s.hosts[i].count += 1
            } else if s.hosts.count < Self.maximumHosts {
                s.hosts.append((host, 1))
            } else {
                s.otherHosts += 1
            }
            if !s.flushScheduled {
                s.flushScheduled = true
                schedule = max(0, s.windowStart + window - now)
            }
            return false
        }
        if let summary { logger.warning("\(summary)") }
        if log { logger.warning("\(message())", metadata: ["remote": "\(remote.map { "\($0)" } ?? "?")"]) }
        if let schedule, let loop {
            loop.scheduleTask(in: .nanoseconds(Int64(schedule * 1e9) + 1_000_000)) { [self] in flush() }
        }
        return log
    }

    /// Logs the summary of the lines counted in a window that is over (the timer calls it).
    func flush() {
        let now = clock()
        let summary: String? = state.withLock { s in
            s.flushScheduled = false
            guard now - s.windowStart >= window else { return nil }
            let text = Self.summary(&s, window: window)
            s.windowStart = now
            s.logged = 0
            return text
        }
        if let summary { logger.warning("\(summary)") }
    }

    /// The count of a window's unlogged lines (nil if none), and resets it.
    private static func summary(_ s: inout State, window: Double) -> String? {
        defer {
            s.suppressed = 0
            s.hosts = []
            s.otherHosts = 0
        }
        guard s.suppressed > 0 else { return nil }
        var from = s.hosts.map { "\($0.host) (×\($0.count))" }.joined(separator: ", ")
        if s.otherHosts > 0 { from += " and \(s.otherHosts) from other addresses" }
        let what = s.suppressed == 1 ? "bad connection" : "bad connections"
        return "\(s.suppressed) more \(what) from \(from) in the last \(seconds(window)) s (not logged one by one)"
    }

    private static func seconds(_ t: Double) -> String {
        t == t.rounded() ? "\(Int(t))" : "\(t)"
    }
}
