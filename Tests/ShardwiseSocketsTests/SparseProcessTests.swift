import Foundation
import Shardwise
import Testing
import _TestSupport
@testable import ShardwiseSockets

/// Sparse data over real sockets: every process reads the LIBSVM file into CSR and takes its
/// nonzero-balanced shard.
@Suite("Sparse socket runs", .serialized, .spawnsProcesses)
struct SparseProcessTests {
    @Test("a 50 000-column LIBSVM file trains logistic regression on 3 socket processes to the sparse Newton reference (1e-6)")
    func wideLogistic() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shardwise-sparse-sockets-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try TestData.writeLIBSVM(path: dir + "/wide.svm", rows: 4000, columns: 50_000, nonzerosPerRow: 20, seed: 13)
        var job = Job(data: .file(path: path, format: nil, target: nil))
        job.objective = .logistic(lambda: 1e-4)
        job.nodes = 3
        job.strategy.kind = .allReduce
        job.stopping = StoppingRule(maxIterations: 500, tolerance: 1e-10)
        job.timeout = 60
        let report = try await Jobs.launcher().run(job)
        #expect(report.backend == "sockets" && report.perNode.count == 3)
        let d = try #require(report.relativeDistance)
        #expect(d < 1e-6, "|w − w*|/|w*| = \(d) after \(report.iterations)")
        #expect(report.model.count == 50_000)
        // The same job on threads (in this process) gives the same model.
        let threads = try await Jobs.threads(job)
        #expect(relativeError(report.model, threads.model) < 1e-12)
    }
}
