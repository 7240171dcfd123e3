import ArgumentParser
import Shardwise

struct SolveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "solve",
        abstract: "Print the exact solution w* by LAPACK (QR, or SVD for rank-deficient data)."
    )

    @Option(help: ArgumentHelp("Data file (CSV, LIBSVM or NPY).", valueName: "file"))
    var data: String?

    @Option(help: "Format of --data; by default from its extension.")
    var format: DataFormat?

    @Option(help: ArgumentHelp("Target column (name or 0-based index; default: last).", valueName: "column"))
    var target: String?

    @Option(help: ArgumentHelp("A generated problem instead of a file.", valueName: "spec"))
    var synthetic: String?

    @Option(help: ArgumentHelp("least-squares, ridge or logistic.", valueName: "name"))
    var objective = "least-squares"

    @Option(help: "ℓ2 regularisation λ.")
    var lambda = 0.0

    @Option(help: "qr or svd (default: QR, falling back to SVD when X is rank-deficient).")
    var method: String?

    @Flag(help: "Standardise the columns first (coefficients are printed on the original scale).")
    var standardize = false

    @Option(help: ArgumentHelp("Write the solution and how it was found as JSON (coefficients at full precision).", valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("Write the coefficients as CSV (feature,coefficient), full precision.", valueName: "file"))
    var output: String?

    func validate() throws {
        try OutputFile.check(path: report, option: "--report")
        try OutputFile.check(path: output, option: "--output")
        if data == nil && synthetic == nil { throw ValidationError("give --data FILE or --synthetic SPEC") }
        if data != nil && synthetic != nil { throw ValidationError("give either --data or --synthetic, not both") }
        if let method, method != "qr" && method != "svd" { throw ValidationError("--method must be qr or svd") }
        // The rules are the core's; here they are only given the flags' names.
        do { _ = try Objective(name: objective, lambda: lambda) } catch let error as JobError {
            throw ValidationError(lambda != 0 ? "--lambda \(lambda): \(error.message)" : "--objective \(objective): \(error.message)")
        }
        if let synthetic {
            do {
                // X and y, and the float64 copy LAPACK solves on.
                try SyntheticSpec(parsing: synthetic).checkMemory(scalarWidth: 8, withReference: true)
            } catch let error as JobError {
                throw ValidationError("--synthetic \(synthetic): \(error.message)")
            }
        }
    }

    func run() async throws {
        let source: DataSource = try data.map { .file(path: $0, format: format, target: target) }
            ?? .synthetic(SyntheticSpec(parsing: synthetic!))
        let obj = try Objective(name: objective, lambda: lambda)
        var dataset = try DataLoader.load(source, as: Double.self)
        var standardization: Standardization?
        try dataset.validateTargets(for: obj)
        if standardize { (standardization, dataset) = Standardization.fit(dataset, centerTarget: obj.link == .identity) }
        try LeastSquares.checkWorkspace(rows: dataset.rows, columns: dataset.features, ridge: obj.lambda, as: Double.self, what: dataset.source)
        let solved = try SolveReport.solve(dataset, objective: obj, method: method.flatMap(LeastSquaresSolution<Double>.Method.init(rawValue:)),
                                           standardization: standardization)
        var t = TextTable(["feature", "w*"])
        for (name, v) in zip(solved.names, solved.coefficients) { t.add([name, fmt(v)]) }
        if let intercept = solved.intercept { t.add(["(intercept)", fmt(intercept)]) }
        print(t.render())
        print("")
        let methods = ["qr": "QR (dgels)", "svd": "SVD (dgelsd)", "newton": "Newton (dsyrk + dpotrf)"]
        print("data        \(solved.source): \(solved.rows) rows × \(solved.features) features")
        print("objective   \(obj)")
        print("method      \(methods[solved.method] ?? solved.method), rank \(solved.rank), \(formatSeconds(solved.seconds))")
        print("|Xw* − y|   \(fmt(solved.residualNorm))")
        print("L(w*)       \(fmt(solved.loss))")
        if let report {
            try writeJSON(solved, to: report, option: "--report")
            print("report: \(report)")
        }
        if let output {
            try OutputFile.writeAtomically(solved.csv, to: output, option: "--output")
            print("coefficients: \(output)")
        }
    }
}
