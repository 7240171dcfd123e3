import Foundation
import Shardwise
import Synchronization
import Testing
import _TestSupport
@testable import ShardwiseSockets

/// Real node processes of the `shardwise` binary on 127.0.0.1 with ephemeral ports. Serialized:
/// every test already runs several processes on a small machine.
@Suite("Socket runs", .serialized, .spawnsProcesses)
struct ProcessTests {
    struct Variant: CustomTestStringConvertible, Sendable {
        var name: String
        var kind: StrategyKind
        var edit: @Sendable (inout Job) -> Void = { _ in }
        /// |w − w*| / |w*| the run must reach.
        var tolerance: Double
        var testDescription: String { name }
    }

    static let variants: [Variant] = [
        Variant(name: "mapreduce", kind: .mapReduce, tolerance: 1e-6),
        Variant(name: "allreduce ring", kind: .allReduce, edit: { $0.strategy.allReduce = .ring }, tolerance: 1e-6),
        Variant(name: "allreduce reduce-broadcast", kind: .allReduce, edit: { $0.strategy.allReduce = .reduceBroadcast }, tolerance: 1e-6),
        Variant(name: "allreduce all-to-all", kind: .allReduce, edit: { $0.strategy.allReduce = .allToAll }, tolerance: 1e-6),
        Variant(name: "ps staleness 0", kind: .parameterServer, edit: { $0.strategy.parameterServer.staleness = 0 }, tolerance: 1e-6),
        Variant(name: "ps async", kind: .parameterServer, edit: { $0.strategy.parameterServer.staleness = nil }, tolerance: 1e-4),
        Variant(name: "gossip ring", kind: .gossip, edit: { $0.strategy.gossip.topology = .ring }, tolerance: 1e-2),
        Variant(name: "gossip complete async", kind: .gossip, edit: { $0.strategy.gossip.topology = .complete; $0.strategy.gossip.asynchronous = true }, tolerance: 1e-2),
        // The solvers over real sockets (cg, the default for least squares, runs in the cases above).
        Variant(name: "mapreduce lbfgs", kind: .mapReduce, edit: { $0.optimizer.solver = .lbfgs }, tolerance: 1e-6),
        Variant(name: "allreduce newton-cg", kind: .allReduce, edit: { $0.optimizer.solver = .newtonCG }, tolerance: 1e-6),
    ]

    @Test("every strategy but Hogwild reaches w*", arguments: variants, [2, 4])
    func reachesOptimum(_ v: Variant, nodes: Int) async throws {
        var job = Jobs.job(v.kind, nodes: nodes)
        v.edit(&job)
        let report = try await Jobs.launcher().run(job)
        #expect(report.backend == "sockets")
        #expect(report.perNode.count == nodes)
        let d = try #require(report.relativeDistance)
        #expect(d < v.tolerance, "\(v.name) on \(nodes) processes: |w − w*|/|w*| = \(d)")
        #expect(report.totalBytesSent > 0)
    }

    @Test("synchronous strategies give the threads backend's model", arguments: [
        variants[0], variants[1], variants[2], variants[3], variants[4], variants[8], variants[9],
    ], [2, 4])
    func sameModelAsThreads(_ v: Variant, nodes: Int) async throws {
        var job = Jobs.job(v.kind, nodes: nodes, iterations: 200)
        v.edit(&job)
        job.codec = .float64
        let sockets = try await Jobs.launcher().run(job)
        let threads = try await Jobs.threads(job)
        #expect(sockets.iterations == threads.iterations)
        let e = relativeError(sockets.model, threads.model)
        #expect(e <= 1e-12, "\(v.name), \(nodes) nodes: relative difference \(e)")
    }

    @Test func hogwildIsRefusedByName() async throws {
        let job = Jobs.job(.hogwild, nodes: 2)
        await #expect {
            _ = try await Jobs.launcher().run(job)
        } throws: { error in
            "\(error)".contains("shared memory") && "\(error)".contains("hogwild")
        }
    }

    @Test("SIGKILL mid-run: a synchronous run fails within the timeout, naming the rank and iteration",
          arguments: [StrategyKind.allReduce, .mapReduce])
    func killedNodeEndsSynchronousRun(kind: StrategyKind) async throws {
        let timeout = 3.0
        var job = Jobs.job(kind, nodes: 3, iterations: 1_000_000, timeout: timeout)
        job.stopping.tolerance = 0
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ck-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let checkpoint = dir.appendingPathComponent("model.json").path
        let pids = Mutex<[Int: Int32]>([:])
        let killedAt = Mutex<Double?>(nil)
        var launcher = try Jobs.launcher()
        launcher.onStart = { rank, pid in pids.withLock { $0[rank] = pid } }
        launcher.checkpointPath = checkpoint
        launcher.checkpointEvery = 5
        let victim = 2
        let progress: @Sendable (TrainingProgress) -> Void = { p in
            guard p.iteration >= 30 else { return }
            killedAt.withLock { t in
                guard t == nil, let pid = pids.withLock({ $0[victim] }) else { return }
                kill(pid, SIGKILL)
                t = MonotonicClock.now()
            }
        }
        await #expect {
            _ = try await launcher.run(job, onProgress: progress)
        } throws: { error in
            let text = "\(error)"
            return text.contains("rank \(victim)") && text.contains("iteration")
        }
        let t = try #require(killedAt.withLock { $0 }, "the victim was never killed")
        let elapsed = MonotonicClock.now() - t
        // The survivors notice at once (closed connections); the timeout is the upper bound.
        #expect(elapsed < timeout + 5, "the run took \(elapsed) s to fail after the kill")
        // The last good model is on disk and resuming from it reaches w*.
        let saved = try Checkpoint.load(checkpoint)
        #expect(saved.iteration >= 25)
        var resumed = Jobs.job(kind, nodes: 2)
        resumed.timeout = 20
        var l2 = try Jobs.launcher()
        l2.initialModel = saved.model
        let report = try await l2.run(resumed)
        #expect(try #require(report.relativeDistance) < 1e-6)
        // It started from the checkpoint, not from zero (a cold start is at relative distance 1).
        // (Not "it converged in fewer iterations": the tolerance is relative to the starting
        // gradient, which a late checkpoint makes tiny.)
        let start = try #require(report.trace.first?.relativeDistance)
        #expect(start < 0.5, "the resumed run started at relative distance \(start)")
    }

    @Test("SIGKILL of a worker: the parameter server finishes and reports the lost shard")
    func parameterServerCarriesOn() async throws {
        var job = Jobs.job(.parameterServer, nodes: 4, iterations: 3000, timeout: 10)
        job.strategy.parameterServer.staleness = nil
        let pids = Mutex<[Int: Int32]>([:])
        let killed = Mutex(false)
        var launcher = try Jobs.launcher()
        launcher.onStart = { rank, pid in pids.withLock { $0[rank] = pid } }
        let progress: @Sendable (TrainingProgress) -> Void = { p in
            guard p.iteration >= 20 else { return }
            killed.withLock { k in
                guard !k, let pid = pids.withLock({ $0[2] }) else { return }
                kill(pid, SIGKILL)
                k = true
            }
        }
        let report = try await launcher.run(job, onProgress: progress)
        #expect(killed.withLock { $0 })
        #expect(report.notes.contains { $0.contains("lost worker rank 2") }, "notes: \(report.notes)")
        #expect(report.perNode.map(\.rank) == [0, 1, 3])
        #expect(report.finalLoss.isFinite)
    }

    @Test("garbage, a wrong secret, a truncated frame and an oversized length are refused; the run completes")
    func hostileClientsAreRefused() async throws {
        var job = Jobs.job(.allReduce, nodes: 2, iterations: 3000)
        job.stopping.tolerance = 1e-10
        let results = Mutex<[String: Bool]>([:])
        let jobID = SocketNode.jobID(job)
        var launcher = try Jobs.launcher()
        launcher.onCoordinatorPort = { port in
            // 1. Garbage: an HTTP request.
            if let c = try? RawClient(port: port) {
                c.write(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + Array(repeating: 0x41, count: 100))
                results.withLock { $0["garbage"] = c.closedByPeer() }
            }
            // 2. A well-formed hello with the wrong secret.
            if let c = try? RawClient(port: port), let challengeFrame = c.readFrame(),
               let challenge = Handshake.decode(Handshake.Challenge.self, challengeFrame.payload),
               let wrong = try? SharedSecret("not the secret of this run") {
                var hello = Handshake.Hello(rank: 1, size: 2, jobID: jobID, purpose: .join,
                                            listenPort: 1, nonce: Handshake.nonce(), mac: "")
                hello.mac = Handshake.mac(Handshake.clientMessage(hello, challenge: challenge.nonce), secret: wrong)
                c.write(Frame(type: .hello, payload: Handshake.encode(hello)).encoded())
                let reply = c.readFrame()
                results.withLock { $0["wrong secret"] = reply?.type == .reject && c.closedByPeer() }
            }
            // 3. A truncated frame: the header promises 100 bytes, 10 come, then we leave.
            if let c = try? RawClient(port: port) {
                _ = c.readFrame()
                let frame = Frame(type: .hello, payload: Array(repeating: 1, count: 100)).encoded()
                c.write(Array(frame[0..<(FrameHeader.size + 10)]))
                results.withLock { $0["truncated"] = true }
            }
            // 4. An oversized length (4 GiB − 16) in a valid header.
            if let c = try? RawClient(port: port) {
                _ = c.readFrame()
                c.write(FrameTests.header(type: FrameType.hello.rawValue, length: 0xFFFF_FFF0))
                results.withLock { $0["oversized"] = c.closedByPeer() }
            }
        }
        let report = try await launcher.run(job)
        #expect(try #require(report.relativeDistance) < 1e-6)
        let r = results.withLock { $0 }
        #expect(r["garbage"] == true)
        #expect(r["wrong secret"] == true)
        #expect(r["truncated"] == true)
        #expect(r["oversized"] == true)
    }
}
