@testable import Shardwise
import Testing
import _TestSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The logistic reference (Newton on the Gram matrix) held to what does not depend on it: the naive
/// gradient of the mean loss at its answer, a plain gradient descent, and the exact relations a
/// rescaled or rank-deficient X must satisfy.
@Suite("Logistic reference")
struct LogisticReferenceTests {
    /// Labels 0/1 drawn from the logistic model with weights `w` (seeded).
    static func labels<Scalar: BLASScalar>(_ x: Matrix<Scalar>, w: [Double], seed: UInt64) -> [Scalar] {
        var rng = SplitMix64(seed: seed)
        return (0..<x.rows).map { i in
            let z = (0..<x.columns).reduce(0.0) { $0 + Double(x[i, $1]) * w[$1] }
            let u = Double(rng.next() >> 11) * 0x1.0p-53
            return u < 1 / (1 + exp(-z)) ? 1 : 0
        }
    }

    /// The finished gradient of the mean loss, g/n + λw, by the naive loop.
    static func gradient(_ x: Matrix<Double>, _ y: [Double], _ w: [Double], lambda: Double) -> [Double] {
        let g = naiveGradientSum(x: x.view, y: y[...], link: .logistic, w: w).gradient
        return g.enumerated().map { $1 / Double(x.rows) + lambda * w[$0] }
    }

    /// |∇L(w)|∞ relative to |∇L(0)|∞.
    static func relativeGradient(_ x: Matrix<Double>, _ y: [Double], _ w: [Double], lambda: Double) -> Double {
        let at = gradient(x, y, w, lambda: lambda).map(abs).max()!
        let zero = gradient(x, y, [Double](repeating: 0, count: x.columns), lambda: lambda).map(abs).max()!
        return at / zero
    }

    /// Plain gradient descent with step 1/L, L = tr(XᵀX)/(4n) + λ ≥ the smoothness constant, until
    /// the gradient stops shrinking: an independent solve (no Hessian, no LAPACK).
    static func gradientDescent(_ x: Matrix<Double>, _ y: [Double], lambda: Double, iterations: Int) -> [Double] {
        let n = Double(x.rows)
        var trace = 0.0
        for i in 0..<x.rows { for j in 0..<x.columns { trace += x[i, j] * x[i, j] } }
        let eta = 1 / (trace / (4 * n) + lambda)
        var w = [Double](repeating: 0, count: x.columns)
        for _ in 0..<iterations {
            let g = gradient(x, y, w, lambda: lambda)
            if g.allSatisfy({ $0 == 0 }) { break }
            for j in w.indices { w[j] -= eta * g[j] }
        }
        return w
    }

    @Test("matches plain gradient descent to 1e-8, and the naive gradient vanishes", arguments: [0.0, 1e-3, 0.1])
    func matchesGradientDescent(lambda: Double) throws {
        let x = TestData.matrix(rows: 300, columns: 5, seed: 41, as: Double.self)
        let y = Self.labels(x, w: [1.5, -2, 0.5, 1, -0.7], seed: 42)
        let w = try LeastSquares.solveLogistic(x: x.view, y: y[...], ridge: lambda)
        #expect(Self.relativeGradient(x, y, w, lambda: lambda) < 1e-12)
        let descent = Self.gradientDescent(x, y, lambda: lambda, iterations: 3000)
        #expect(Self.relativeGradient(x, y, descent, lambda: lambda) < 1e-11, "gradient descent did not converge")
        #expect(relativeError(w, descent) < 1e-8, "λ = \(lambda): \(w) vs \(descent)")
    }

    @Test("Float storage: the same answer as the Double copy of the same values, to Float rounding")
    func floatStorage() throws {
        let xf = TestData.matrix(rows: 2000, columns: 12, seed: 51, as: Float.self)
        let yf: [Float] = Self.labels(xf, w: (0..<12).map { 0.3 * Double($0 % 5) - 0.6 }, seed: 52)
        let xd = Matrix<Double>(rows: xf.rows, columns: xf.columns) { Double(xf[$0, $1]) }
        let yd = yf.map(Double.init)
        for lambda in [0.0, 1e-2] {
            let wf = try LeastSquares.solveLogistic(x: xf.view, y: yf[...], ridge: lambda)
            let wd = try LeastSquares.solveLogistic(x: xd.view, y: yd[...], ridge: lambda)
            // Computed in Double on identical values: only the final rounding to Float differs.
            #expect(relativeError(wf, wd) < 1e-6, "λ = \(lambda)")
            #expect(Self.relativeGradient(xd, yd, wd, lambda: lambda) < 1e-12)
        }
    }

    @Test("ill-conditioned columns (scales 1…30): w of X·S is S⁻¹ w of X, and the gradient vanishes")
    func scaledColumns() throws {
        let d = 30
        let base = TestData.matrix(rows: 3000, columns: d, seed: 61, as: Double.self)
        let y = Self.labels(base, w: (0..<d).map { 0.8 * sin(Double($0)) }, seed: 62)
        let scaled = Matrix<Double>(rows: base.rows, columns: d) { i, j in base[i, j] * Double(j + 1) }
        let w0 = try LeastSquares.solveLogistic(x: base.view, y: y[...])
        let ws = try LeastSquares.solveLogistic(x: scaled.view, y: y[...])
        // Without ℓ2 the loss depends on Xw alone: rescaling column j by s_j rescales w_j by 1/s_j.
        #expect(relativeError(ws.enumerated().map { (j, v) -> Double in v * Double(j + 1) }, w0) < 1e-9)
        #expect(Self.relativeGradient(scaled, y, ws, lambda: 0) < 1e-11)
        // With ℓ2 the relation no longer holds; the gradient still vanishes.
        let wr = try LeastSquares.solveLogistic(x: scaled.view, y: y[...], ridge: 1e-4)
        #expect(Self.relativeGradient(scaled, y, wr, lambda: 1e-4) < 1e-11)
    }

    @Test("nearly separable classes on badly scaled columns, from w = 0 and λ = 0")
    func nearlySeparable() throws {
        // Labels by the sign of a margin, 1% flipped: the optimum exists but |w*| is large, and
        // the columns' scales span 10³.
        let d = 8
        let base = TestData.matrix(rows: 4000, columns: d, seed: 71, as: Double.self)
        var rng = SplitMix64(seed: 72)
        let y: [Double] = (0..<base.rows).map { i in
            let margin = (0..<d).reduce(0.0) { $0 + base[i, $1] * Double($1 + 1) }
            let flip = rng.next() % 100 == 0
            return (margin > 0) != flip ? 1 : 0
        }
        let x = Matrix<Double>(rows: base.rows, columns: d) { i, j in base[i, j] * pow(10, Double(j % 4)) }
        let w = try LeastSquares.solveLogistic(x: x.view, y: y[...])
        #expect(Self.relativeGradient(x, y, w, lambda: 0) < 1e-10)
    }

    @Test("where a full Newton step overshoots, the line search keeps descending to the optimum")
    func overshoot() throws {
        // Nearly separable (two rows near the origin keep w* finite, at about (45, 104)): pure
        // Newton from w = 0 climbs to step 10 with loss 0.846, then jumps to w ≈ (119, 188) with
        // loss 49.6 — checked beside this test in numpy.
        let rows: [[Double]] = [
            [2.2820160751744285, -0.523986047498472], [-0.7595741348164712, 0.6373221690230384],
            [-0.011081984378901, 0.0065217230295872754], [-3.7663360516807454, 0.22834776014263364],
            [0.6258554403343738, 0.6191520055713977], [1.0377121089789407, 0.43504348134091697],
            [-1.6649733765544583, -0.9941902093505264], [2.8493182465939526, -0.32453334565039876],
            [2.479087317073476, 0.063170619998799], [1.428887391231773, 0.6256859026207248],
            [1.7355826562550287, -0.10543687739033666], [0.08848608344027088, -0.07379587756989606],
            [1.6090900888821205, 0.3684465581869821], [-1.5191001734973508, 0.7046302066417286],
        ]
        let y: [Double] = [1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1]
        let x = Matrix<Double>(rows: rows.count, columns: 2) { rows[$0][$1] }
        let w = try LeastSquares.solveLogistic(x: x.view, y: y[...])
        #expect(Self.relativeGradient(x, y, w, lambda: 0) < 1e-10)
        let loss = naiveGradientSum(x: x.view, y: y[...], link: .logistic, w: w).lossSum
        #expect(loss < 0.82)
    }

    @Test("a rank-deficient X: the minimum-norm minimiser, by the SVD step", arguments: ["dependent", "zero"])
    func rankDeficient(_ kind: String) throws {
        let n = 500
        let base = TestData.matrix(rows: n, columns: 3, seed: 81, as: Double.self)
        let y = Self.labels(base, w: [1, -1, 2], seed: 82)
        // Column 3 = column 0 + column 1 (null direction (1, 1, 0, −1)), or column 3 = 0.
        let x = Matrix<Double>(rows: n, columns: 4) { i, j in
            j < 3 ? base[i, j] : kind == "zero" ? 0 : base[i, 0] + base[i, 1]
        }
        let newton = LogisticNewton(x: x.view, y: y[...], lambda: 0)
        let w = try newton.minimise(maxIterations: 100, tolerance: 1e-12)
        #expect(newton.pseudoInverseSteps > 0)
        #expect(Self.relativeGradient(x, y, w, lambda: 0) < 1e-11)
        let sub = try LeastSquares.solveLogistic(x: base.view, y: y[...])
        if kind == "zero" {
            #expect(relativeError(w, sub + [0]) < 1e-9)
        } else {
            // The same fit (Xw = X_base·w_sub), and w orthogonal to the null direction.
            #expect(relativeError([w[0] + w[3], w[1] + w[3], w[2]], sub) < 1e-9)
            #expect(abs(w[0] + w[1] - w[3]) < 1e-9 * sub.map(abs).max()!)
        }
        // Through the public entry point as well.
        #expect(try LeastSquares.solveLogistic(x: x.view, y: y[...]) == w)
    }

    @Test("separable classes: no optimum without ℓ2 (an error naming --lambda), an exact one with it")
    func separable() throws {
        let x = TestData.matrix(rows: 200, columns: 2, seed: 91, as: Double.self)
        let y: [Double] = (0..<200).map { x[$0, 0] - 0.5 * x[$0, 1] > 0 ? 1 : 0 }
        let error = #expect(throws: LinalgError.self) { try LeastSquares.solveLogistic(x: x.view, y: y[...]) }
        guard case .notConverged(let message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(message.contains("--lambda") && message.contains("separates"), "\(message)")
        let w = try LeastSquares.solveLogistic(x: x.view, y: y[...], ridge: 1e-3)
        #expect(Self.relativeGradient(x, y, w, lambda: 1e-3) < 1e-12)
    }

    @Test("empty problems: no rows gives w = 0, no columns gives w = []")
    func empty() throws {
        let none = Matrix<Double>(rows: 0, columns: 3)
        #expect(try LeastSquares.solveLogistic(x: none.view, y: [Double]()[...]) == [0, 0, 0])
        let narrow = Matrix<Double>(rows: 4, columns: 0)
        #expect(try LeastSquares.solveLogistic(x: narrow.view, y: [1, 0, 1, 0][...]).isEmpty)
    }

    @Test("the workspace check names a Hessian beyond LAPACK's indices")
    func workspace() {
        #expect(throws: DataError.self) { try LeastSquares.checkNewtonWorkspace(rows: 10, columns: 50_000, what: "wide.svm") }
        #expect(throws: Never.self) { try LeastSquares.checkNewtonWorkspace(rows: 200_000, columns: 200, what: "ok") }
    }
}
