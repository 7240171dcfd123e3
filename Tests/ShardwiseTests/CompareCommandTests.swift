import Foundation
import Shardwise
import Testing
import _TestSupport

/// `shardwise compare`: the grid's table and JSON, float32 against float64 on the wire.
@Suite("compare") struct CompareCommandTests {
    struct Run: Decodable {
        var codec: String, strategy: String, solver: String?, nodes: Int
        var iterations: Int, rounds: Int?, bytes: Int, trainingBytes: Int?, setupBytes: Int?
        var relativeDistance: Double?, codecSeconds: Double
        var curve: [Point]
        struct Point: Decodable { var rounds: Int; var trainingBytes: Double?; var lossGap: Double? }
    }
    struct Output: Decodable { var runs: [Run] }

    @Test("float32 sends half float64's training bytes at the same accuracy; setup is counted apart")
    func compression() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("compare-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try await ShardwiseBinary.run(["compare", "--synthetic", "n=1200,d=16,seed=4", "--codecs", "float64,float32",
                                                 "--strategies", "allreduce,ps", "--solvers", "gd,cg", "--nodes-list", "3",
                                                 "--iterations", "40", "--tolerance", "0", "--json", path])
        #expect(run.status == 0, "\(run.output)")
        // ps runs gd only: its cg combination is skipped, and said so.
        #expect(run.stdout.contains("skipped     ps with cg"), "\(run.stdout)")
        let out = try JSONDecoder().decode(Output.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(out.runs.count == 6)
        for solver in ["gd", "cg"] {
            let f64 = try #require(out.runs.first { $0.codec == "float64" && $0.strategy == "allreduce" && $0.solver == solver })
            let f32 = try #require(out.runs.first { $0.codec == "float32" && $0.strategy == "allreduce" && $0.solver == solver })
            let t64 = try #require(f64.trainingBytes), t32 = try #require(f32.trainingBytes)
            // The same rounds, each of d numbers at 4 bytes instead of 8 (the ring's framing is
            // per message, the same count for both).
            #expect(f64.rounds == f32.rounds)
            let perRound64 = Double(t64) / Double(f64.rounds!), perRound32 = Double(t32) / Double(f32.rounds!)
            #expect(abs(perRound32 / perRound64 - 0.5) < 0.05, "\(perRound32) / \(perRound64)")
            // Setup (step size, row counts) is exact float64 for both codecs.
            #expect(f64.setupBytes == f32.setupBytes)
            #expect(t64 + f64.setupBytes! == f64.bytes)
            let d64 = try #require(f64.relativeDistance), d32 = try #require(f32.relativeDistance)
            // The same accuracy, down to float32's own floor (its rounding of each gradient sum,
            // ~6e-8 relative, times the conditioning) where float64 goes further.
            #expect(abs(d32 - d64) <= max(1e-3 * d64, 1e-6), "\(solver): float32 \(d32) vs float64 \(d64)")
            #expect(f32.codecSeconds > 0)
            // The curve's bytes grow with its rounds up to the run's training bytes.
            let last = try #require(f64.curve.last)
            #expect(abs((last.trainingBytes ?? 0) - Double(t64)) <= Double(t64) * 0.05)
        }
        #expect(run.stdout.contains("float32 vs float64, allreduce gd on 3: 0.5"), "\(run.stdout)")
    }

    @Test("a bad axis value is refused naming its option", arguments: [
        (["--codecs", "float64,float8"], "--codecs"),
        (["--strategies", "allreduce,ring"], "--strategies"),
        (["--solvers", "adam"], "--solvers"),
        (["--nodes-list", "2,0"], "--nodes-list"),
    ])
    func badAxis(arguments: [String], option: String) async throws {
        let run = try await ShardwiseBinary.run(["compare", "--synthetic", "n=100,d=3"] + arguments)
        #expect(run.status != 0)
        #expect(run.stderr.contains(option), "\(run.stderr)")
    }
}
