import Foundation
import Shardwise
import Testing
import _TestSupport

/// `shardwise solve --report/--output`: the exact answer written so that it reads back bit for bit.
@Suite("Solve report") struct SolveReportTests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("shardwise-solve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("the JSON report and the CSV carry LAPACK's answer bit for bit", arguments: [
        ("n=300,d=7,seed=3", "least-squares", 0.0, false),
        ("n=300,d=7,seed=3", "ridge", 0.5, false),
        ("n=300,d=7,seed=3,cond=50", "least-squares", 0.0, true),
    ])
    func roundTrip(spec: String, objective: String, lambda: Double, standardize: Bool) async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("w.json").path, csv = dir.appendingPathComponent("w.csv").path
        let run = try await ShardwiseBinary.run(["solve", "--synthetic", spec, "--objective", objective, "--lambda", "\(lambda)",
                                                 "--report", report, "--output", csv] + (standardize ? ["--standardize"] : []))
        #expect(run.status == 0, "\(run.output)")

        // The independent answer: LAPACK called here on the same generated data.
        var data = try SyntheticSpec(parsing: spec).generate(Double.self)
        var standardization: Standardization?
        if standardize { (standardization, data) = Standardization.fit(data, centerTarget: true) }
        let w = try LeastSquares.solve(x: data.x.view, y: data.y[...], ridge: lambda).w
        let expected = standardization.map { $0.originalCoefficients(w) } ?? w

        let decoded = try JSONDecoder().decode(SolveReport.self, from: Data(contentsOf: URL(fileURLWithPath: report)))
        #expect(decoded.coefficients.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(decoded.trainedCoefficients?.map(\.bitPattern) == (standardize ? w.map(\.bitPattern) : nil))
        #expect(decoded.names == (0..<7).map { "x\($0)" })
        #expect(decoded.method == "qr" && decoded.rank == 7 && decoded.rows == 300 && decoded.features == 7)
        // The residual is |Xw* − y| on the data as solved, by an independent loop.
        var squares = 0.0
        for i in 0..<data.rows {
            var z = 0.0
            for j in 0..<data.features { z += data.x[i, j] * w[j] }
            squares += (z - data.y[i]) * (z - data.y[i])
        }
        #expect(abs(decoded.residualNorm - squares.squareRoot()) <= 1e-12 * squares.squareRoot())

        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "feature,coefficient")
        let values = lines.dropFirst().prefix(7).map { Double(String($0.split(separator: ",")[1]))! }
        #expect(values.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(lines.count == 1 + 7 + (standardize ? 1 : 0))
        if standardize { #expect(lines.last!.hasPrefix("(intercept),")) }
    }

    @Test("logistic regression is solved by Newton and says so")
    func logistic() throws {
        let data = try SyntheticSpec(parsing: "n=400,d=5,seed=2,task=classification").generate(Double.self)
        let solved = try SolveReport.solve(data, objective: .logistic(lambda: 0.01))
        #expect(solved.method == "newton" && solved.intercept == nil && solved.trainedCoefficients == nil)
        let reference = try Objective.logistic(lambda: 0.01).exactSolution(data)
        #expect(solved.coefficients == reference)
    }

    @Test("an output path that cannot be written is refused before any work, naming the option")
    func badOutput() async throws {
        let run = try await ShardwiseBinary.run(["solve", "--synthetic", "n=50,d=3", "--output", "/nonexistent-dir/w.csv"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("--output /nonexistent-dir/w.csv") && run.stderr.contains("does not exist"), "\(run.stderr)")
    }

    @Test("a training report names its coefficients")
    func trainingReportNames() async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("r.json").path
        let run = try await ShardwiseBinary.run(["train", "--synthetic", "n=100,d=4", "--iterations", "5", "--quiet", "--report", path])
        #expect(run.status == 0, "\(run.output)")
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let report = try decoder.decode(TrainingReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(report.featureNames == (0..<4).map { "x\($0)" })
        #expect(report.model.count == 4)
    }
}
