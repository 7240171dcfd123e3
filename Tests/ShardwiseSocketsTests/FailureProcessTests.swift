import Foundation
import Shardwise
import Synchronization
import Testing
import _TestSupport
@testable import ShardwiseSockets
#if canImport(Glibc)
import Glibc
#endif

/// Failures that need a real process killed: node processes of the `shardwise` binary on
/// 127.0.0.1. Timing bounds are generous (a loaded 2-core machine): what they tell apart is "at
/// once" from "after the job's timeout", which is made long.
@Suite("Socket failures with processes", .serialized, .spawnsProcesses)
struct FailureProcessTests {
    /// Kills `victim` once rank 0's progress passes `iteration` (and `after` seconds of training).
    final class Killer: Sendable {
        let pids = Mutex<[Int: Int32]>([:])
        let killedAt = Mutex<Double?>(nil)
        let victim: Int
        let iteration: Int
        let after: Double
        let signal: Int32

        init(victim: Int, iteration: Int, after: Double = 0, signal: Int32 = SIGKILL) {
            self.victim = victim
            self.iteration = iteration
            self.after = after
            self.signal = signal
        }

        func started(rank: Int, pid: Int32) { pids.withLock { $0[rank] = pid } }

        func progress(_ p: TrainingProgress) {
            guard p.iteration >= iteration, p.time >= after else { return }
            killedAt.withLock { t in
                guard t == nil, let pid = pids.withLock({ $0[victim] }) else { return }
                kill(pid, signal)
                t = MonotonicClock.now()
            }
        }

        func launcher() throws -> LocalLauncher {
            var l = try Jobs.launcher()
            l.onStart = { [self] rank, pid in started(rank: rank, pid: pid) }
            return l
        }
    }

    /// Staleness 0 waits for the round's last gradient; staleness 1 holds the faster workers back
    /// for the slowest. Either way a lost worker must release the others at once.
    @Test("ps with a bounded staleness: a killed worker is dropped at once and the run finishes with a report",
          arguments: [0, 1])
    func boundedServerCarriesOn(staleness: Int) async throws {
        let timeout = 300.0
        var job = Jobs.job(.parameterServer, nodes: 4, iterations: 1500, timeout: timeout)
        job.strategy.parameterServer.staleness = staleness
        job.stopping.tolerance = 0
        let killer = Killer(victim: 2, iteration: 20)
        let report = try await killer.launcher().run(job, onProgress: { killer.progress($0) })
        let killedAt = try #require(killer.killedAt.withLock { $0 }, "the worker was never killed")
        let elapsed = MonotonicClock.now() - killedAt
        #expect(elapsed < timeout / 3, "the run took \(elapsed) s after the kill; the receive timeout is \(timeout) s")
        #expect(report.notes.contains { $0.contains("lost worker rank 2") }, "notes: \(report.notes)")
        #expect(report.perNode.map(\.rank) == [0, 1, 3])
        #expect(report.iterations == 1500)
        #expect(report.finalLoss.isFinite)
    }

    @Test("rank 0 stopped (SIGSTOP): the launcher does not wait forever, and names it")
    func stoppedCoordinatorIsNamed() async throws {
        let timeout = 3.0
        var job = Jobs.job(.allReduce, nodes: 3, iterations: 1_000_000, timeout: timeout)
        job.stopping.tolerance = 0
        let killer = Killer(victim: 0, iteration: 30, signal: SIGSTOP)
        let start = MonotonicClock.now()
        await #expect {
            _ = try await killer.launcher().run(job, onProgress: { killer.progress($0) })
        } throws: { error in
            "\(error)".contains("rank 0 was killed by signal 9 (SIGKILL): error: rank 0 was stopped (SIGSTOP?)")
        }
        // The workers time out (3 s), the stopped rank 0 gets the timeout plus 5 s: a liveness bound.
        #expect(MonotonicClock.now() - start < 120)
    }

    @Test("ring all-reduce with rank 0 killed: every rank stops at once, naming the iteration")
    func ringStopsWhenTheCoordinatorDies() async throws {
        let timeout = 300.0
        var job = Jobs.job(.allReduce, nodes: 3, iterations: 1_000_000, timeout: timeout)
        job.strategy.allReduce = .ring
        job.stopping.tolerance = 0
        // Late enough that rank 0 has told the others a real iteration (`progress` frames).
        let killer = Killer(victim: 0, iteration: 30, after: 0.5)
        await #expect {
            _ = try await killer.launcher().run(job, onProgress: { killer.progress($0) })
        } throws: { error in
            let text = "\(error)"
            let workers = text.split(separator: "\n").filter { $0.contains("rank 1 (") || $0.contains("rank 2 (") }
            // Both workers failed on their own, and their errors name the iteration rank 0 was at.
            let iterations = workers.compactMap { line -> Int? in
                guard let r = line.range(of: "after rank 0 completed iteration ") else { return nil }
                return Int(line[r.upperBound...].prefix { $0.isNumber })
            }
            return text.contains("rank 0 was killed") && workers.count == 2 && iterations.count == 2
                && iterations.allSatisfy { $0 > 0 } && !text.contains("before iteration 0")
        }
        let killedAt = try #require(killer.killedAt.withLock { $0 }, "rank 0 was never killed")
        let elapsed = MonotonicClock.now() - killedAt
        #expect(elapsed < timeout / 3, "the others took \(elapsed) s to stop; the receive timeout is \(timeout) s")
    }

    @Test("launch --resume continues the iteration count from the checkpoint, and the report says so")
    func resumeContinuesTheCount() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let checkpoint = dir.appendingPathComponent("ck.json").path
        var job = Jobs.job(.mapReduce, nodes: 2, iterations: 200)
        job.stopping.tolerance = 0
        var launcher = try Jobs.launcher()
        launcher.checkpointPath = checkpoint
        let first = try await launcher.run(job)
        #expect(first.iterations == 200)
        #expect(try Checkpoint.load(checkpoint).iteration == 200)

        // The same job with a larger budget, resumed by the CLI from the checkpoint.
        var longer = job
        longer.stopping.maxIterations = 500
        let jobPath = dir.appendingPathComponent("job.json").path
        let reportPath = dir.appendingPathComponent("report.json").path
        try JSONEncoder().encode(longer).write(to: URL(fileURLWithPath: jobPath))
        let run = try await ShardwiseBinary.run(["launch", "--job", jobPath, "--resume", checkpoint, "--checkpoint", checkpoint,
                                                 "--report", reportPath, "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")
        let data = try #require(FileManager.default.contents(atPath: reportPath))
        let report = try JSONDecoder().decode(TrainingReport.self, from: data)
        #expect(report.iterations == 500)
        #expect(report.notes.contains("resumed from checkpoint at iteration 200"), "notes: \(report.notes)")
        #expect(report.trace.first?.iteration == 200)
        #expect(report.trace.last?.iteration == 500)
        #expect(report.job.stopping.maxIterations == 500)
        // Its own checkpoints count on from there too.
        #expect(try Checkpoint.load(checkpoint).iteration == 500)
    }
}
