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

    func validate() throws {
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
        let start = MonotonicClock.now()
        var rank = dataset.features
        var methodUsed = "Newton (dsyrk + dpotrf)"
        let w: [Double]
        if obj.link == .identity {
            let solution = try LeastSquares.solve(x: dataset.x.view, y: dataset.y[...], ridge: obj.lambda,
                                                  method: method.flatMap(LeastSquaresSolution<Double>.Method.init(rawValue:)))
            w = solution.w
            rank = solution.rank
            methodUsed = solution.method == .qr ? "QR (dgels)" : "SVD (dgelsd)"
        } else {
            w = try obj.exactSolution(dataset)
        }
        let seconds = MonotonicClock.now() - start
        var residual = 0.0
        for i in 0..<dataset.rows {
            var z = 0.0
            for j in 0..<dataset.features { z += dataset.x[i, j] * w[j] }
            residual += (z - dataset.y[i]) * (z - dataset.y[i])
        }
        let names = dataset.featureNames ?? (0..<dataset.features).map { "x\($0)" }
        var t = TextTable(["feature", "w*"])
        let shown = standardization.map { $0.originalCoefficients(w) } ?? w
        for (j, v) in shown.enumerated() { t.add([names[j], fmt(v)]) }
        if let s = standardization, s.constantColumns.isEmpty { t.add(["(intercept)", fmt(s.originalIntercept(w))]) }
        print(t.render())
        print("")
        print("data        \(dataset.source): \(dataset.rows) rows × \(dataset.features) features")
        print("objective   \(obj)")
        print("method      \(methodUsed), rank \(rank), \(formatSeconds(seconds))")
        print("|Xw* − y|   \(fmt(residual.squareRoot()))")
        var lossSum = 0.0
        if obj.link == .identity { lossSum = residual / 2 }
        if obj.link == .identity { print("L(w*)       \(fmt(obj.finishLoss(lossSum, rows: dataset.rows, w: w)))") }
    }
}
