import Testing
import Shardwise
import _TestSupport

/// Least squares on standardised data, mapped back to the original scale, must be the least-squares
/// solution of the raw data: standardisation changes the conditioning, not the answer.
@Suite("Standardization")
struct StandardizationTests {
    /// X (n × d) with columns of very different means and scales, and y = X w + b + noise.
    static func problem(rows n: Int = 300, features d: Int = 4, seed: UInt64 = 3) -> (Matrix<Double>, [Double]) {
        let base = TestData.matrix(rows: n, columns: d, seed: seed, as: Double.self)
        let scales = [1000.0, 0.001, 3, 50, 7, 0.2]
        let means = [-40.0, 5, 0, 1e4, -3, 0.5]
        let x = Matrix<Double>(rows: n, columns: d) { i, j in base[i, j] * scales[j % 6] + means[j % 6] }
        let w = (0..<d).map { Double($0) - 1.5 }
        let noise = TestData.vector(n, seed: seed + 1, as: Double.self)
        let y = (0..<n).map { i in (0..<d).reduce(2.5) { $0 + x[i, $1] * w[$1] } + 0.1 * noise[i] }
        return (x, y)
    }

    /// X with a column of `value` appended (the intercept column).
    static func appending(_ value: Double, to x: Matrix<Double>) -> Matrix<Double> {
        Matrix(rows: x.rows, columns: x.columns + 1) { i, j in j < x.columns ? x[i, j] : value }
    }

    /// No constant column: y is centred, and the intercept comes back from `originalIntercept`.
    @Test(arguments: [1, 3, 6])
    func withoutInterceptColumn(features: Int) throws {
        let (x, y) = Self.problem(features: features)
        let (standardization, scaled) = Standardization.fit(Dataset(x: x, y: y))
        #expect(standardization.constantColumns.isEmpty)
        let w = try LeastSquares.solve(x: scaled.x.view, y: scaled.y[...]).w
        let coefficients = standardization.originalCoefficients(w)
        let intercept = standardization.originalIntercept(w)

        // The reference: LAPACK on the raw data with an explicit column of ones.
        let reference = try LeastSquares.solve(x: Self.appending(1, to: x).view, y: y[...]).w
        #expect(relativeError(coefficients + [intercept], reference) < 1e-9)
    }

    /// A constant column in X absorbs the intercept; y is left as it is.
    @Test(arguments: [1, 3, 6])
    func withInterceptColumn(features: Int) throws {
        let (raw, y) = Self.problem(features: features)
        let x = Self.appending(1, to: raw)
        let (standardization, scaled) = Standardization.fit(Dataset(x: x, y: y))
        #expect(standardization.constantColumns == [features])
        #expect(standardization.originalIntercept([Double](repeating: 1, count: features + 1)) == 0)
        let w = try LeastSquares.solve(x: scaled.x.view, y: scaled.y[...]).w
        let reference = try LeastSquares.solve(x: x.view, y: y[...]).w
        #expect(relativeError(standardization.originalCoefficients(w), reference) < 1e-9)
    }

    /// Standardised columns have mean 0 and deviation 1.
    @Test func standardisedColumnsAreUnitScale() {
        let (x, y) = Self.problem(features: 5)
        let (_, scaled) = Standardization.fit(Dataset(x: x, y: y))
        for j in 0..<5 {
            let column = (0..<x.rows).map { scaled.x[$0, j] }
            let mean = column.reduce(0, +) / Double(x.rows)
            let variance = column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.rows)
            #expect(abs(mean) < 1e-12)
            #expect(abs(variance - 1) < 1e-12)
        }
        #expect(abs(scaled.y.reduce(0, +)) < 1e-9 * Double(x.rows))
    }
}

extension StandardizationTests {
    /// A constant column that is not ones (here 2s) must map back as well as a column of ones.
    @Test func withConstantColumnOfTwos() throws {
        let (raw, y) = Self.problem(features: 3)
        let x = Self.appending(2, to: raw)
        let (standardization, scaled) = Standardization.fit(Dataset(x: x, y: y))
        let w = try LeastSquares.solve(x: scaled.x.view, y: scaled.y[...]).w
        let reference = try LeastSquares.solve(x: x.view, y: y[...]).w
        #expect(relativeError(standardization.originalCoefficients(w), reference) < 1e-9)
    }

    /// Logistic regression's labels are classes: standardising X must leave y at 0 and 1, so that
    /// the label check passes and the model trains on the real labels (`train` and `solve`).
    @Test("logistic: --standardize scales X and leaves the 0/1 labels alone")
    func logisticLabelsStayBinary() throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 500, features: 4, seed: 5, classification: true)))
        job.objective = .logistic(lambda: 0.01)
        job.standardize = true
        let problem = try PreparedProblem<Double>(job: job)
        #expect(problem.dataset.y.allSatisfy { $0 == 0 || $0 == 1 })
        #expect(problem.dataset.y.contains(0) && problem.dataset.y.contains(1))
        #expect(problem.standardization?.targetMean == 0)
        try problem.dataset.validateTargets(for: job.objective)
    }
}
