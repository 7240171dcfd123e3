import Foundation
import Logging
import NIOCore
import Shardwise
import Synchronization
import Testing
@testable import ShardwiseSockets
#if canImport(Glibc)
import Glibc
#endif

/// How the socket backend fails (issue #11): fields from the network are range-checked, a failure
/// reaches every node at once, errors name the iteration, and a flood of bad connections does not
/// flood the log. In-process nodes and a hand-written coordinator where that suffices; real
/// processes where one must be killed (`FailureProcessTests`).
@Suite("Socket failures")
struct FailureTests {
    static let secretText = "failure-tests-secret-0123456789"

    static func configuration(rank: Int, size: Int, port: Int, timeout: Double = 60, portFile: String? = nil,
                              logger: Logger = Logger(label: "test")) throws -> SocketConfiguration {
        SocketConfiguration(rank: rank, size: size, coordinatorHost: "127.0.0.1", coordinatorPort: port,
                            secret: try SharedSecret(secretText), jobID: "failure-tests", timeout: timeout,
                            portFile: portFile, logger: logger)
    }

    // MARK: - Fields from the network

    @Test("a lost frame naming a rank outside 1..<size (or this node) is a clear error, not a trap",
          arguments: [7, -1, 3, 0, 1])
    func lostFrameOutOfRange(named: Int) async throws {
        let fake = try FakeCoordinator()
        let script = fake.run { peer, hello in
            peer.write(Frame(type: .peers, payload: Handshake.encode(FakeCoordinator.table(size: 3, port: fake.port, joiner: hello))).encoded())
            peer.write(Frame(type: .lost, payload: Handshake.encode(SocketCommunicator.LostNote(rank: named, reason: "crafted"))).encoded())
        }
        defer { fake.finish(); script.wait() }
        let comm = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 3, port: fake.port))
        let t0 = MonotonicClock.now()
        await #expect {
            _ = try await withTaskExecutorPreference(comm.executor) {
                try await comm.receive(from: .rank(2), tag: Tag(5), timeout: 300)
            }
        } throws: { error in
            let text = "\(error)"
            return text.contains("rank 0") && text.contains("a lost frame naming rank \(named)") && text.contains("field \"rank\"")
        }
        // A liveness bound far below the timeout: a loaded 2-core machine has stalled this by 30 s.
        #expect(MonotonicClock.now() - t0 < 100, "the bad frame must end the wait at once, not at the 300 s timeout")
        await comm.close()
    }

    struct BadTable: CustomTestStringConvertible, Sendable {
        var name: String
        var field: String
        var edit: @Sendable ([PeerAddress]) -> [UInt8]
        var testDescription: String { name }
    }

    static let badTables: [BadTable] = [
        BadTable(name: "port above 65535", field: "field \"port\"") { t in var t = t; t[2].port = 70_000; return Handshake.encode(t) },
        BadTable(name: "port 0", field: "field \"port\"") { t in var t = t; t[2].port = 0; return Handshake.encode(t) },
        BadTable(name: "negative port", field: "field \"port\"") { t in var t = t; t[1].port = -5; return Handshake.encode(t) },
        BadTable(name: "ranks out of order", field: "field \"rank\"") { t in var t = t; t[2].rank = 9; return Handshake.encode(t) },
        BadTable(name: "too few entries", field: "2 entries for a world of 3") { t in Handshake.encode(Array(t.prefix(2))) },
        BadTable(name: "empty host", field: "field \"host\"") { t in var t = t; t[2].host = ""; return Handshake.encode(t) },
        BadTable(name: "not JSON", field: "not a JSON list") { _ in Array("{]".utf8) },
    ]

    @Test("a bad peer table fails the rendezvous at once, naming the field", arguments: badTables)
    func badPeerTable(_ bad: BadTable) async throws {
        let fake = try FakeCoordinator()
        let script = fake.run { peer, hello in
            peer.write(Frame(type: .peers, payload: bad.edit(FakeCoordinator.table(size: 3, port: fake.port, joiner: hello))).encoded())
        }
        defer { fake.finish(); script.wait() }
        let t0 = MonotonicClock.now()
        await #expect {
            let comm = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 3, port: fake.port, timeout: 300))
            await comm.close()
        } throws: { error in
            let text = "\(error)"
            return text.contains("bad peer table") && text.contains(bad.field) && text.contains("rank 0")
        }
        #expect(MonotonicClock.now() - t0 < 100, "a bad table must fail the rendezvous at once, not at the 300 s timeout")
    }

    @Test("a data frame with a backend-internal tag is refused, naming the peer")
    func reservedTagIsRefused() async throws {
        let fake = try FakeCoordinator()
        let script = fake.run { peer, hello in
            peer.write(Frame(type: .peers, payload: Handshake.encode(FakeCoordinator.table(size: 2, port: fake.port, joiner: hello))).encoded())
            // A "done" smuggled in as data would end the worker's run as if rank 0 had finished it.
            peer.write(Frame(type: .data, tag: SocketCommunicator.doneTag.rawValue, payload: []).encoded())
        }
        defer { fake.finish(); script.wait() }
        let comm = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 2, port: fake.port))
        await #expect {
            _ = try await withTaskExecutorPreference(comm.executor) {
                try await comm.receive(from: .rank(0), tag: Tag(5), timeout: 30)
            }
        } throws: { error in
            "\(error)".contains("reserved for control messages") && "\(error)".contains("rank 0")
        }
        await comm.close()
    }

    @Test("a worker's outcome is checked before it goes into the report")
    func outcomesAreChecked() throws {
        func outcome(rank: Int, model: [Double]? = nil, trace: [TracePoint] = [], iterations: Int = 3) -> NodeOutcome {
            let recorder = Recorder(rank: rank, traceEvery: 1)
            for p in trace { recorder.record(p) }
            return NodeOutcome(rank: rank, role: "worker", model: model, iterations: iterations, stopReason: nil,
                               learningRate: 0.1, recorder: recorder, rows: 10)
        }
        #expect(SocketNode.outcomeProblem(outcome(rank: 2), from: 2, features: 4, size: 3) == nil)
        #expect(SocketNode.outcomeProblem(outcome(rank: 1), from: 2, features: 4, size: 3)?.contains("field \"rank\"") == true)
        #expect(SocketNode.outcomeProblem(outcome(rank: 2, model: [1, 2]), from: 2, features: 4, size: 3)?.contains("field \"model\"") == true)
        let short = TracePoint(iteration: 5, time: 0, model: [1])
        #expect(SocketNode.outcomeProblem(outcome(rank: 2, trace: [short]), from: 2, features: 4, size: 3)?.contains("field \"trace\"") == true)
        #expect(SocketNode.outcomeProblem(outcome(rank: 2, iterations: -1), from: 2, features: 4, size: 3)?.contains("field \"iterations\"") == true)
    }

    // MARK: - Iterations in errors

    @Test("a worker's errors name the iteration rank 0 reported, not 'during setup'")
    func workerErrorsNameTheIteration() async throws {
        let fake = try FakeCoordinator()
        let script = fake.run { peer, hello in
            peer.write(Frame(type: .peers, payload: Handshake.encode(FakeCoordinator.table(size: 2, port: fake.port, joiner: hello))).encoded())
            var payload = [UInt8](repeating: 0, count: 8)
            payload.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(11_011).bigEndian, as: UInt64.self) }
            peer.write(Frame(type: .progress, payload: payload).encoded())
        }
        defer { fake.finish(); script.wait() }
        let comm = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 2, port: fake.port))
        // The progress frame follows the table on the same connection; give it a moment to land.
        let deadline = MonotonicClock.now() + 10
        while comm.lastIteration.value.load(ordering: .relaxed) < 0 && MonotonicClock.now() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        await #expect {
            _ = try await withTaskExecutorPreference(comm.executor) {
                try await comm.receive(from: .rank(0), tag: Tag(5), timeout: 0.2)
            }
        } throws: { error in
            let text = "\(error)"
            return text.contains("during iteration 11012, after rank 0 completed iteration 11011") && !text.contains("during setup")
        }
        await comm.close()
    }

    @Test("a progress frame of the wrong size is a clear error")
    func badProgressFrame() async throws {
        let fake = try FakeCoordinator()
        let script = fake.run { peer, hello in
            peer.write(Frame(type: .peers, payload: Handshake.encode(FakeCoordinator.table(size: 2, port: fake.port, joiner: hello))).encoded())
            peer.write(Frame(type: .progress, payload: [1, 2, 3]).encoded())
        }
        defer { fake.finish(); script.wait() }
        let comm = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 2, port: fake.port))
        await #expect {
            _ = try await withTaskExecutorPreference(comm.executor) {
                try await comm.receive(from: .rank(0), tag: Tag(5), timeout: 30)
            }
        } throws: { error in
            "\(error)".contains("a progress frame of 3 bytes")
        }
        await comm.close()
    }

    // MARK: - Refused at the rendezvous

    @Test("a node refused for a duplicate rank fails at once with the coordinator's reason")
    func duplicateRankFailsAtOnce() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dup-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let portFile = dir.appendingPathComponent("port").path
        let timeout = 300.0
        let zero = Task { try await SocketCommunicator.rendezvous(try Self.configuration(rank: 0, size: 3, port: 0, timeout: timeout, portFile: portFile)) }
        let port = try await Self.readPort(portFile)
        // Two nodes claim rank 1: whichever comes second is refused, well before the other's
        // rendezvous could end (it waits for rank 2).
        let t0 = MonotonicClock.now()
        let (ended, report) = AsyncStream.makeStream(of: (Int, String?).self)
        func claim(_ i: Int) -> Task<SocketCommunicator, any Error> {
            Task {
                do {
                    let c = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 3, port: port, timeout: timeout))
                    report.yield((i, nil))
                    return c
                } catch {
                    report.yield((i, "\(error)"))
                    throw error
                }
            }
        }
        let claims = [claim(0), claim(1)]
        var events = ended.makeAsyncIterator()
        let outcome = try #require(await events.next())
        let elapsed = MonotonicClock.now() - t0
        let admitted = claims[1 - outcome.0]
        let message = try #require(outcome.1, "the first node to finish should be the refused one")
        #expect(message.contains("rank 1 has already joined"), "\(message)")
        #expect(message.contains("rendezvous failed"), "\(message)")
        #expect(elapsed < timeout / 3, "refused after \(elapsed) s; the timeout is \(timeout) s")
        // The run itself is unharmed: rank 2 completes the rendezvous.
        let two = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 2, size: 3, port: port, timeout: timeout))
        let comms = [try await zero.value, try await admitted.value, two]
        for c in comms { await c.close() }
    }

    /// Rank 0's port, once its rendezvous has written it: generous, since a machine busy with
    /// builds has been seen to take over 30 s to start a task.
    static func readPort(_ path: String) async throws -> Int {
        let deadline = MonotonicClock.now() + 120
        while MonotonicClock.now() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return p
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw SocketError.configuration("rank 0 wrote no port file within 120 s")
    }

    @Test("a checkpoint at or past the job's last iteration is refused: nothing is left to run")
    func resumePastTheEnd() throws {
        var node = SocketNode(job: Jobs.job(.mapReduce, nodes: 2, iterations: 100),
                              configuration: try Self.configuration(rank: 0, size: 2, port: 0))
        node.resumedIteration = 40
        #expect(try node.remainingJob().stopping.maxIterations == 60)
        node.resumedIteration = 100
        #expect { _ = try node.remainingJob() } throws: { "\($0)".contains("the checkpoint is at iteration 100") }
    }

    @Test("a checkpoint with a negative iteration is refused, naming the field")
    func checkpointFieldsAreChecked() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ck-\(UInt64.random(in: 0...UInt64.max)).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint(jobID: "x", iteration: -3, model: [1, 2], time: 0).write(to: path)
        #expect { _ = try Checkpoint.load(path) } throws: { "\($0)".contains("field \"iteration\" is -3") }
        try Checkpoint(jobID: "x", iteration: 3, model: [1, 2], time: 0).write(to: path)
        #expect(try Checkpoint.load(path).iteration == 3)
    }

    // MARK: - Log flood

    @Test("a flood of bad connections logs a few lines, then counts")
    func badConnectionFloodIsRateLimited() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flood-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let portFile = dir.appendingPathComponent("port").path
        let lines = CapturedLog()
        let logger = Logger(label: "flood") { _ in CapturingHandler(lines: lines) }
        let zero = Task { try await SocketCommunicator.rendezvous(try Self.configuration(rank: 0, size: 2, port: 0, portFile: portFile, logger: logger)) }
        let port = try await Self.readPort(portFile)
        let floods = 40
        var closed = 0
        for _ in 0..<floods {
            let c = try RawClient(port: port)
            c.write(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + Array(repeating: 0x41, count: 100))
            if c.closedByPeer() { closed += 1 }
        }
        #expect(closed == floods)
        let one = try await SocketCommunicator.rendezvous(try Self.configuration(rank: 1, size: 2, port: port))
        let comm = try await zero.value
        let individual = lines.all.filter { $0.contains("refusing connection") || $0.contains("closing connection") }
        // 5 a window of 10 s; a slow machine may see the flood straddle two windows.
        #expect(individual.count <= 10, "\(individual.count) lines for \(floods) bad connections:\n\(individual.joined(separator: "\n"))")
        #expect(individual.count >= 1, "the first bad connections are still logged")
        await one.close()
        await comm.close()
    }

    @Test("the summary counts the unlogged connections by address, once the window ends")
    func badConnectionSummary() {
        let lines = CapturedLog()
        let clock = Mutex(100.0)
        let log = BadConnectionLog(logger: Logger(label: "x") { _ in CapturingHandler(lines: lines) },
                                   window: 10, firstFew: 3, clock: { clock.withLock { $0 } })
        let a = try! SocketAddress(ipAddress: "10.0.0.7", port: 5555)
        let b = try! SocketAddress(ipAddress: "10.0.0.9", port: 5556)
        for i in 0..<40 { log.report("refusing connection: bad magic \(i)", remote: i % 10 == 9 ? b : a) }
        #expect(lines.all.count == 3)
        log.flush()   // the window is not over: nothing yet
        #expect(lines.all.count == 3)
        clock.withLock { $0 += 10.5 }
        log.flush()
        let summary = try! #require(lines.all.last)
        #expect(summary == "37 more bad connections from 10.0.0.7 (×33), 10.0.0.9 (×4) in the last 10 s (not logged one by one)", "\(summary)")
        // A new window logs the first few again.
        #expect(log.report("refusing connection: again", remote: a))
    }

    // MARK: - Wire

    @Test("the payload-checksum error says which value is the sender's and which was received")
    func checksumMessageNamesBothSides() throws {
        var bytes = Frame(type: .data, tag: 3, payload: (0..<64).map { UInt8($0) }).encoded()
        let sent = bytes.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: 16, as: UInt32.self)) }
        bytes[FrameHeader.size + 5] ^= 0xFF
        let received = bytes[FrameHeader.size...].withUnsafeBytes { FrameChecksum.compute($0) }
        func hex(_ v: UInt32) -> String { let s = String(v, radix: 16); return String(repeating: "0", count: 8 - s.count) + s }
        #expect {
            _ = try Frame.decode(bytes)
        } throws: { error in
            let text = "\(error)"
            return text.contains("the sender's checksum is 0x\(hex(sent))") && text.contains("the payload received has 0x\(hex(received))")
        }
    }
}

// MARK: - Helpers

/// Log lines a test reads back.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [String] { lines.withLock { $0 } }
}

struct CapturingHandler: LogHandler {
    let lines: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        lines.append("\(message)")
    }
}

/// A hand-written coordinator on 127.0.0.1 (blocking POSIX sockets on a thread of its own): it
/// authenticates one joining node as rank 0 would, then sends what the test scripts — frames no
/// correct coordinator sends.
final class FakeCoordinator: @unchecked Sendable {
    let listener: Int32
    let port: Int
    private let done = DispatchSemaphore(value: 0)
    let secret: SharedSecret

    init() throws {
        secret = try SharedSecret(FailureTests.secretText)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { Glibc.close(fd); throw SocketError.configuration("fake coordinator: cannot listen") }
        var out = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &out) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: out.sin_port))
    }

    deinit { Glibc.close(listener) }

    /// The table a correct coordinator would send: every rank on loopback, the joiner at its port.
    static func table(size: Int, port: Int, joiner: Handshake.Hello) -> [PeerAddress] {
        (0..<size).map { r in
            PeerAddress(rank: r, host: "127.0.0.1", port: r == 0 ? port : r == joiner.rank ? joiner.listenPort : 1)
        }
    }

    /// On a thread: accepts one node, authenticates it, runs `script`, then keeps the connection
    /// open until `finish` (a closing coordinator would be a loss of its own).
    func run(_ script: @escaping @Sendable (RawClient, Handshake.Hello) -> Void) -> Finished {
        let finished = Finished()
        let thread = Thread { [self] in
            defer { finished.signal() }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            let peer = RawClient(accepted: fd)
            let challenge = Handshake.nonce()
            peer.write(Frame(type: .challenge, payload: Handshake.encode(Handshake.Challenge(nonce: challenge))).encoded())
            guard let frame = peer.readFrame(), frame.type == .hello,
                  let hello = Handshake.decode(Handshake.Hello.self, frame.payload) else { return }
            let mac = Handshake.mac(Handshake.serverMessage(rank: 0, challenge: challenge, clientNonce: hello.nonce), secret: secret)
            peer.write(Frame(type: .welcome, payload: Handshake.encode(Handshake.Welcome(rank: 0, mac: mac))).encoded())
            script(peer, hello)
            _ = done.wait(timeout: .now() + 60)
        }
        thread.start()
        return finished
    }

    func finish() { done.signal() }

    final class Finished: @unchecked Sendable {
        private let semaphore = DispatchSemaphore(value: 0)
        func signal() { semaphore.signal() }
        func wait() { _ = semaphore.wait(timeout: .now() + 60) }
    }
}

