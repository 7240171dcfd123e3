import Shardwise
import Testing
import _TestSupport

@Suite("LAPACK reference")
struct LeastSquaresTests {
    @Test("QR and SVD recover w exactly when y = Xw", arguments: [(50, 5), (400, 40), (7, 7)])
    func recovers(rows: Int, columns: Int) throws {
        let x = TestData.matrix(rows: rows, columns: columns, seed: 11, as: Double.self)
        let w: [Double] = TestData.vector(columns, seed: 12)
        let y = (0..<rows).map { i in (0..<columns).reduce(0.0) { $0 + x[i, $1] * w[$1] } }
        for method in LeastSquaresSolution<Double>.Method.allCases {
            let s = try LeastSquares.solve(x: x.view, y: y[...], method: method)
            #expect(relativeError(s.w, w) < 1e-10, "\(method)")
            #expect(s.residualNorm < 1e-10)
            #expect(s.rank == columns)
        }
    }

    @Test("the solution satisfies the normal equations XᵀX w = Xᵀy (and with ridge, + nλw)")
    func normalEquations() throws {
        let n = 300, d = 12
        let x = TestData.matrix(rows: n, columns: d, seed: 21, as: Double.self)
        let y: [Double] = TestData.vector(n, seed: 22)
        for lambda in [0.0, 0.1] {
            let w = try LeastSquares.solve(x: x.view, y: y[...], ridge: lambda).w
            // Gradient of the mean loss at w must vanish: Xᵀ(Xw − y)/n + λw = 0.
            let g = naiveGradientSum(x: x.view, y: y[...], w: w).gradient.enumerated().map { $1 / Double(n) + lambda * w[$0] }
            #expect(g.map(abs).max()! < 1e-12, "λ = \(lambda)")
        }
    }

    @Test("a rank-deficient X: QR refuses by name, SVD returns the minimum-norm solution and the rank")
    func rankDeficient() throws {
        let n = 60
        let base = TestData.matrix(rows: n, columns: 3, seed: 31, as: Double.self)
        // Column 3 = column 0 + column 1: rank 3 of 4.
        let x = Matrix<Double>(rows: n, columns: 4) { i, j in j < 3 ? base[i, j] : base[i, 0] + base[i, 1] }
        let y: [Double] = TestData.vector(n, seed: 32)
        #expect(throws: LinalgError.self) { try LeastSquares.solve(x: x.view, y: y[...], method: .qr) }
        let s = try LeastSquares.solve(x: x.view, y: y[...], method: .svd)
        #expect(s.rank == 3)
        // Automatic choice falls back to SVD.
        let auto = try LeastSquares.solve(x: x.view, y: y[...])
        #expect(auto.method == .svd)
        // Minimum norm: w is orthogonal to the null space direction (1, 1, 0, −1).
        #expect(abs(s.w[0] + s.w[1] - s.w[3]) < 1e-10)
        // And it fits as well as the full-rank problem on the independent columns.
        let sub = try LeastSquares.solve(x: base.view, y: y[...])
        #expect(isClose(s.residualNorm, sub.residualNorm, relative: 1e-10))
    }

    @Test("a LAPACK failure is a Swift error that says what failed")
    func errorMessage() {
        let e = LinalgError.lapack(routine: "dgels", info: 3)
        #expect(e.description.contains("dgels") && e.description.contains("rank"))
    }

    @Test("logistic reference: the gradient vanishes at the Newton solution")
    func logistic() throws {
        let spec = SyntheticSpec(rows: 2000, features: 6, noise: 0.5, condition: 2, seed: 3, classification: true)
        let data: Dataset<Double> = try spec.generate()
        let objective = Objective.logistic(lambda: 1e-3)
        let w = try objective.exactSolution(data)
        let g = naiveGradientSum(x: data.x.view, y: data.y[...], link: .logistic, w: w).gradient
        let full = g.enumerated().map { $1 / 2000 + 1e-3 * w[$0] }
        #expect(full.map(abs).max()! < 1e-10)
    }

    @Test("power iteration finds λ_max(XᵀX) of a known spectrum")
    func powerIteration() async {
        // X = diag(3, 2, 1) stacked: XᵀX = diag(9, 4, 1).
        let x = Matrix<Double>(rows: 3, columns: 3) { i, j in i == j ? Double(3 - i) : 0 }
        let kernel = GradientKernel(x: x.view, y: [0, 0, 0][...])
        let lambda = await PowerIteration.largestEigenvalue(of: kernel, tolerance: 1e-12)
        #expect(isClose(lambda, 9, relative: 1e-6))
    }
}
