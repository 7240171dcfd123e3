import Foundation

/// The exact solution of a problem and how it was found: what `shardwise solve` prints, and writes
/// as JSON (`--report`) at full precision, so that the answer can be reused bit for bit.
///
/// `coefficients` are on the scale of the data as given: when the columns were standardised
/// first, the solution is mapped back (`Standardization.originalCoefficients`) and `intercept` is
/// the term that the centring moved out of the columns; `trainedCoefficients` keeps w* on the
/// standardised scale, which is what a run with `--standardize` reaches.
public struct SolveReport: Codable, Sendable, Equatable {
    /// Where the data came from (a path or a synthetic spec).
    public var source: String
    public var rows: Int
    public var features: Int
    public var objective: Objective
    /// One name per coefficient (the CSV header, or x0, x1, …).
    public var names: [String]
    /// w* on the original scale of the data.
    public var coefficients: [Double]
    /// The intercept the standardisation implies (nil without `--standardize`).
    public var intercept: Double?
    /// w* on the standardised scale (nil without `--standardize`).
    public var trainedCoefficients: [Double]?
    /// "qr" (dgels), "svd" (dgelsd) or "newton" (Newton on XᵀDX: dsyrk + dpotrf).
    public var method: String
    /// The effective rank of X (d for QR and Newton; LAPACK's estimate for SVD).
    public var rank: Int
    /// |Xw* − y|₂ on the data as solved (standardised when asked).
    public var residualNorm: Double
    /// L(w*) on the data as solved.
    public var loss: Double
    /// Seconds of the solve alone (not the loading).
    public var seconds: Double

    /// Solves `data` exactly: QR, or SVD when X is rank-deficient or `method` says so, for least
    /// squares and ridge; Newton with Cholesky for logistic regression.
    /// - Parameter standardization: the fit `data` was standardised with, if any.
    public static func solve(_ data: Dataset<Double>, objective: Objective,
                             method: LeastSquaresSolution<Double>.Method? = nil,
                             standardization: Standardization? = nil) throws -> SolveReport {
        let start = MonotonicClock.now()
        let w: [Double], rank: Int, methodName: String
        if objective.link == .identity {
            let solution = try LeastSquares.solve(x: data.x.view, y: data.y[...], ridge: objective.lambda, method: method)
            (w, rank, methodName) = (solution.w, solution.rank, solution.method.rawValue)
        } else {
            (w, rank, methodName) = (try objective.exactSolution(data), data.features, "newton")
        }
        let seconds = MonotonicClock.now() - start
        // The residual by the gradient kernel: z − y summed in squares is twice its identity loss.
        let kernel = GradientKernel(x: data.x.view, y: data.y[...], link: .identity)
        let squares = 2 * w.withUnsafeBufferPointer { kernel.lossSum(w: $0.baseAddress!) }
        let loss = PreparedProblem<Double>.loss(of: w, on: data, objective: objective)
        return SolveReport(
            source: data.source, rows: data.rows, features: data.features, objective: objective,
            names: data.featureNames ?? (0..<data.features).map { "x\($0)" },
            coefficients: standardization.map { $0.originalCoefficients(w) } ?? w,
            intercept: standardization.flatMap { $0.constantColumns.isEmpty ? $0.originalIntercept(w) : nil },
            trainedCoefficients: standardization == nil ? nil : w,
            method: methodName, rank: rank, residualNorm: squares.squareRoot(), loss: loss, seconds: seconds)
    }

    /// The coefficients as CSV (`feature,coefficient`, a header, one line each, the intercept last
    /// when there is one), every number in the shortest form that reads back to the same Double.
    public var csv: String {
        var lines = ["feature,coefficient"]
        for (name, v) in zip(names, coefficients) { lines.append("\(CSVField.quoted(name)),\(v)") }
        if let intercept { lines.append("(intercept),\(intercept)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Quoting of one CSV field on output (RFC 4180): quoted when it holds a comma, a quote or a line
/// break, with quotes doubled.
enum CSVField {
    static func quoted(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
