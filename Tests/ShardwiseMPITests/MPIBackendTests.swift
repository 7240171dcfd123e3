#if MPI
import Foundation
import Shardwise
@testable import ShardwiseMPI
import ShardwiseThreads
import Testing
import _TestSupport

/// The MPI backend under real mpirun (2 and 4 ranks; 4 oversubscribe this 2-core machine),
/// against LAPACK's w* and against the threads backend run in this process.
@Suite("MPI backend under mpirun", .serialized, .spawnsProcesses, .enabled(if: MPIRun.available, "needs mpirun and a `shardwise` built with --traits MPI"))
struct MPIBackendTests {
    /// n = 4000, d = 20, well conditioned: small, so that 20-odd mpirun runs stay well under 3 min.
    static func job(_ kind: StrategyKind, ranks: Int, _ edit: (inout Job) -> Void = { _ in }) -> Job {
        var job = Job(data: .synthetic(TestData.wellConditioned(rows: 4000, features: 20)))
        job.nodes = ranks
        job.strategy.kind = kind
        job.stopping = StoppingRule(maxIterations: 3000, tolerance: 1e-10)
        job.timeout = 30
        job.traceEvery = 50
        edit(&job)
        return job
    }

    /// Trains `job` with `mpirun -np job.nodes shardwise node --backend mpi` and reads the report.
    static func trainUnderMPI(_ job: Job, environment: [String: String] = [:]) async throws -> TrainingReport {
        let directory = try MPIRun.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let jobPath = directory.appendingPathComponent("job.json").path
        let reportPath = directory.appendingPathComponent("report.json").path
        try JSONEncoder().encode(job).write(to: URL(fileURLWithPath: jobPath))
        let result = try await MPIRun.shardwise(ranks: job.nodes, ["node", "--backend", "mpi", "--job", jobPath, "--report", reportPath],
                                          environment: environment)
        guard result.status == 0, !result.timedOut else {
            throw MPITestFailure("mpirun exited \(result.status)\(result.timedOut ? " (timed out)" : ""):\n\(result.output)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(TrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: reportPath)))
    }

    @Test("native MPI_Allreduce equals the generic ring, reduce-broadcast and all-to-all", arguments: [2, 4])
    func selfTest(ranks: Int) async throws {
        let r = try await MPIRun.shardwise(ranks: ranks, ["mpi", "selftest", "--counts", "0,1,3,5,1000,65537"])
        #expect(r.status == 0 && !r.timedOut, "\(r.output)")
        #expect(r.stdout.contains("0 failures"), "\(r.output)")
    }

    /// Decentralised gossip with a constant step converges to a neighbourhood of w* whose radius
    /// shrinks with the step (D-PSGD's known bias), and 1/L is too bold for it: 0.5/L here.
    static func gossip(_ job: inout Job) {
        job.optimizer.learningRate = .fixed(0.5)
    }

    @Test("synchronous strategies match the threads backend to 1e-12 (float64) and reach w*",
          arguments: [2, 4], ["mapreduce", "allreduce-ring", "allreduce-native", "ps-staleness-0", "gossip", "allreduce-lbfgs"])
    func synchronousMatchesThreads(ranks: Int, variant: String) async throws {
        let kind: StrategyKind = variant.hasPrefix("ps") ? .parameterServer : variant.hasPrefix("mapreduce") ? .mapReduce
            : variant.hasPrefix("gossip") ? .gossip : .allReduce
        let job = Self.job(kind, ranks: ranks) { job in
            job.strategy.allReduce = variant.hasSuffix("native") ? .native : .ring
            if kind == .parameterServer { job.strategy.parameterServer.staleness = 0 }
            if kind == .gossip { Self.gossip(&job) }
            if variant.hasSuffix("lbfgs") { job.optimizer.solver = .lbfgs }   // cg is the default
        }
        let mpi = try await Self.trainUnderMPI(job)
        let threads = try await ThreadsBackend().run(job)
        #expect(mpi.backend == "mpi" && mpi.nodes == ranks)
        #expect(mpi.relativeDistance! < (kind == .gossip ? 1e-3 : 1e-6), "\(variant) on \(ranks): \(mpi.relativeDistance!)")
        if variant.hasSuffix("native") {
            // MPI_Allreduce sums in its own order, so the two runs are two roundings of the same
            // iteration: each is within its distance of w*, and so is their difference (triangle).
            let bound = mpi.relativeDistance! + threads.relativeDistance! + 1e-12
            #expect(relativeError(mpi.model, threads.model) <= bound, "\(variant) on \(ranks) differs from threads")
        } else {
            // Everything else follows the same path, sum for sum.
            #expect(relativeError(mpi.model, threads.model) < 1e-12, "\(variant) on \(ranks) differs from threads")
            #expect(mpi.iterations == threads.iterations)
        }
        #expect(mpi.perNode.count == ranks && mpi.perNode.allSatisfy { $0.messagesSent > 0 })
    }

    @Test("asynchronous strategies reach w* (any-source receives)",
          arguments: [2, 4], ["ps-async", "ps-staleness-2", "gossip-async"])
    func asynchronousReachesReference(ranks: Int, variant: String) async throws {
        let kind: StrategyKind = variant.hasPrefix("ps") ? .parameterServer : .gossip
        let job = Self.job(kind, ranks: ranks) { job in
            job.stopping.maxIterations = 6000
            if variant == "ps-staleness-2" { job.strategy.parameterServer.staleness = 2 }
            if kind == .gossip { job.strategy.gossip.asynchronous = true; Self.gossip(&job) }
        }
        let mpi = try await Self.trainUnderMPI(job)
        #expect(mpi.relativeDistance! < (kind == .gossip ? 1e-3 : 1e-4),
                "\(variant) on \(ranks): \(mpi.relativeDistance!) after \(mpi.iterations) (\(mpi.stopReason))")
    }

    @Test("Hogwild is refused by name: MPI ranks share no memory")
    func hogwildRefused() async throws {
        let directory = try MPIRun.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let jobPath = directory.appendingPathComponent("job.json").path
        try JSONEncoder().encode(Self.job(.hogwild, ranks: 2)).write(to: URL(fileURLWithPath: jobPath))
        let r = try await MPIRun.shardwise(ranks: 2, ["node", "--backend", "mpi", "--job", jobPath], limit: 60)
        #expect(r.status != 0 && !r.timedOut)
        #expect(r.stderr.contains("hogwild") && r.stderr.contains("share no memory"), "\(r.output)")
    }

    @Test("a rank that crashes ends the run with an error naming it, not a hang")
    func crashedRankIsNamed() async throws {
        let directory = try MPIRun.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let jobPath = directory.appendingPathComponent("job.json").path
        try JSONEncoder().encode(Self.job(.allReduce, ranks: 2)).write(to: URL(fileURLWithPath: jobPath))
        let r = try await MPIRun.shardwise(ranks: 2, ["node", "--backend", "mpi", "--job", jobPath],
                                     environment: ["SHARDWISE_MPI_FAULT": "crash:1:5"], limit: 60)
        #expect(r.status != 0 && !r.timedOut, "\(r.output)")
        #expect(r.stderr.contains("rank 1"), "mpirun's message should name rank 1:\n\(r.output)")
        #expect(r.seconds < 45)
    }

    @Test("a rank that leaves early (finalizes and exits 0) is named by the others' timeout")
    func quitRankIsNamed() async throws {
        let directory = try MPIRun.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let jobPath = directory.appendingPathComponent("job.json").path
        try JSONEncoder().encode(Self.job(.mapReduce, ranks: 2) { $0.timeout = 3 }).write(to: URL(fileURLWithPath: jobPath))
        let r = try await MPIRun.shardwise(ranks: 2, ["node", "--backend", "mpi", "--job", jobPath],
                                     environment: ["SHARDWISE_MPI_FAULT": "quit:1:5"], limit: 60)
        #expect(r.status != 0 && !r.timedOut, "\(r.output)")
        #expect(r.stderr.contains("no message from rank 1"), "\(r.output)")
        #expect(r.seconds < 45)
    }

    @Test("`launch --backend mpi` wraps mpirun, and names a rank that dies")
    func launch() async throws {
        let ok = try await MPIRun.plain(["launch", "--backend", "mpi", "--nodes", "2", "--synthetic", "n=2000,d=10,seed=3",
                                   "--strategy", "allreduce", "--allreduce", "native", "--quiet"])
        #expect(ok.status == 0 && ok.stdout.contains("mpi"), "\(ok.output)")
        let failed = try await MPIRun.plain(["launch", "--backend", "mpi", "--nodes", "2", "--synthetic", "n=2000,d=10,seed=3", "--quiet"],
                                      environment: ["SHARDWISE_MPI_FAULT": "crash:1:3"], limit: 60)
        #expect(failed.status != 0 && !failed.timedOut)
        #expect(failed.stderr.contains("rank 1"), "\(failed.output)")
    }

    @Test("`train --backend mpi` returns the report of an mpirun run")
    func trainBackend() async throws {
        let r = try await MPIRun.plain(["train", "--backend", "mpi", "--nodes", "2", "--synthetic", "n=2000,d=10,seed=3",
                                  "--strategy", "mapreduce", "--quiet"])
        #expect(r.status == 0, "\(r.output)")
    }
}

/// Tags ↔ MPI tags: one-to-one within MPI_TAG_UB, refused beyond.
@Suite("MPI tag map")
struct MPITagMapTests {
    @Test("strategy tags and collective tags map one-to-one into 0…32767", arguments: [32767, Int(Int32.max)])
    func roundTrip(upperBound: Int) throws {
        let map = MPITagMap(tagUpperBound: upperBound)
        let tags = [Tag(0), Tag(1), Tag(21), Tag(16383), .broadcast, .ringReduceScatter, .ringAllGather, .gather,
                    Tag(Tag.reservedBase + 16383)]
        var seen = Set<Int32>()
        for t in tags {
            let m = try map.mpiTag(t)
            #expect(m >= 0 && Int(m) <= upperBound)
            #expect(map.tag(m) == t)
            #expect(seen.insert(m).inserted)
        }
    }

    @Test("a tag beyond the bound is refused by name")
    func refused() {
        let map = MPITagMap(tagUpperBound: 32767)
        #expect(throws: CommunicationError.self) { try map.mpiTag(Tag(20000)) }
        #expect(throws: CommunicationError.self) { try map.mpiTag(Tag(Tag.reservedBase + 20000)) }
    }
}

struct MPITestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
#endif
