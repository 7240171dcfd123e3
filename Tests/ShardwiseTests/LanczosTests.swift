@testable import Shardwise
import Testing
import _TestSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lanczos held to spectra known in closed form: A = QΛQᵀ with Q a product of two Householder
/// reflectors (dense, orthogonal by construction), and X = UΣV with orthonormal U and V built the
/// same way, so that λ(XᵀX) = σ².
@Suite("Lanczos")
struct LanczosTests {
    /// v − 2u(uᵀv)/(uᵀu): a Householder reflector, its own inverse.
    static func reflect(_ v: [Double], _ u: [Double]) -> [Double] {
        let c = 2 * zip(u, v).reduce(0.0) { $0 + $1.0 * $1.1 } / u.reduce(0.0) { $0 + $1 * $1 }
        return zip(v, u).map { $0 - c * $1 }
    }

    /// The operator QΛQᵀ, Q = H₁H₂, with seeded reflectors.
    struct KnownSpectrum {
        let eigenvalues: [Double]
        let u1: [Double], u2: [Double]
        init(_ eigenvalues: [Double], seed: UInt64) {
            self.eigenvalues = eigenvalues
            u1 = TestData.vector(eigenvalues.count, seed: seed)
            u2 = TestData.vector(eigenvalues.count, seed: seed + 1)
        }
        var largest: Double { eigenvalues.max()! }
        func apply(_ v: [Double]) -> [Double] {
            // Qᵀv = H₂H₁v, scale, then Q = H₁H₂.
            let t = LanczosTests.reflect(LanczosTests.reflect(v, u1), u2)
            let s = zip(t, eigenvalues).map { $0 * $1 }
            return LanczosTests.reflect(LanczosTests.reflect(s, u2), u1)
        }
    }

    /// The spectra of ill-conditioned Gram matrices (d = 200), with the relative error Lanczos must
    /// reach in 20 products and how many times worse power iteration must be. A uniform spectrum has
    /// no gap at the top (λ₂/λ₁ = 0.995): there Lanczos is in its gap-free regime, error ∝ 1/k²
    /// (3.6e-3 here, against 2.4e-2 for power iteration) — still a safe step (see `Lanczos`).
    static let spectra: [(name: String, eigenvalues: [Double], bound: Double, factor: Double)] = {
        let d = 200
        let geometric = (0..<d).map { pow(10, -6 * Double($0) / Double(d - 1)) }
        let uniform = (0..<d).map { Double(d - $0) / Double(d) }
        // Four eigenvalues within 3e-5 of the top, then a geometric tail from 0.95 to 1e-6.
        let top: [Double] = [1, 1 - 1e-5, 1 - 2e-5, 1 - 3e-5]
        let tail: [Double] = (0..<(d - 4)).map { (i: Int) -> Double in 0.95 * pow(10, -6 * Double(i) / Double(d - 5)) }
        let clustered = top + tail
        return [("geometric 1…1e-6", geometric, 1e-3, 10), ("clustered top", clustered, 1e-3, 10),
                ("uniform 1/d…1", uniform, 1e-2, 5)]
    }()

    @Test("≤ 20 applications, relative error ≤ 1e-3 with a gap, where 20 steps of power iteration are far worse",
          arguments: spectra.indices)
    func illConditioned(_ index: Int) async {
        let (name, eigenvalues, bound, factor) = Self.spectra[index]
        let a = KnownSpectrum(eigenvalues, seed: 100 + UInt64(index))
        var applications = 0
        let lanczos = await Lanczos.largestEigenvalue(dimension: eigenvalues.count) { v in
            applications += 1
            return a.apply(v)
        }
        let power = await PowerIteration.largestEigenvalue(dimension: eigenvalues.count, maxIterations: 20,
                                                           tolerance: 0) { a.apply($0) }
        let lanczosError = (a.largest - lanczos) / a.largest
        let powerError = (a.largest - power) / a.largest
        #expect(applications <= 20, "\(name)")
        #expect(lanczosError <= bound, "\(name): Lanczos error \(lanczosError)")
        // From below: a Ritz value never exceeds λ_max.
        #expect(lanczosError >= -1e-12, "\(name): \(lanczos) > λ_max")
        #expect(powerError > bound && powerError > factor * lanczosError,
                "\(name): power iteration \(powerError) against Lanczos \(lanczosError)")
    }

    @Test("X = UΣV with chosen singular values, through the kernel overload", arguments: [false, true])
    func kernel(float: Bool) async {
        let n = 400, d = 60
        let sigma = (0..<d).map { 3 * pow(10, -2 * Double($0) / Double(d - 1)) }   // 3 … 0.03
        let un: [Double] = TestData.vector(n, seed: 201), ud: [Double] = TestData.vector(d, seed: 202)
        // Column j of U is H_n e_j (orthonormal columns); row i of V is H_d e_i.
        let u = (0..<d).map { j in Self.reflect((0..<n).map { $0 == j ? 1.0 : 0 }, un) }
        let v = (0..<d).map { i in Self.reflect((0..<d).map { $0 == i ? 1.0 : 0 }, ud) }
        let x = Matrix<Double>(rows: n, columns: d) { i, j in (0..<d).reduce(0.0) { $0 + u[$1][i] * sigma[$1] * v[$1][j] } }
        let exact = 9.0
        let xf = Matrix<Float>(rows: n, columns: d) { Float(x[$0, $1]) }
        func estimate(tolerance: Double, maxSteps: Int) async -> Double {
            if float {
                return await Lanczos.largestEigenvalue(of: GradientKernel(x: xf.view, y: [Float](repeating: 0, count: n)[...]),
                                                       maxSteps: maxSteps, tolerance: tolerance)
            }
            return await Lanczos.largestEigenvalue(of: GradientKernel(x: x.view, y: [Double](repeating: 0, count: n)[...]),
                                                   maxSteps: maxSteps, tolerance: tolerance)
        }
        let quick = await estimate(tolerance: 1e-4, maxSteps: 20)
        #expect(isClose(quick, exact, relative: 1e-4), "\(quick)")
        // Run on, it is exact to the storage's precision.
        let tight = await estimate(tolerance: 1e-13, maxSteps: 60)
        #expect(isClose(tight, exact, relative: float ? 1e-6 : 1e-11), "\(tight)")
    }

    @Test("an invariant Krylov space (three distinct eigenvalues) ends after three products, exactly")
    func invariantSubspace() async {
        let eigenvalues = (0..<30).map { [5.0, 2, 0.5][$0 % 3] }
        let a = KnownSpectrum(eigenvalues, seed: 300)
        var applications = 0
        let estimate = await Lanczos.largestEigenvalue(dimension: 30, tolerance: 0) { v in
            applications += 1
            return a.apply(v)
        }
        #expect(applications == 3)
        #expect(isClose(estimate, 5, relative: 1e-12), "\(estimate)")
    }

    @Test("dimension 0, dimension 1, and the zero operator")
    func smallCases() async {
        var applications = 0
        let none = await Lanczos.largestEigenvalue(dimension: 0) { v in applications += 1; return v }
        #expect(none == 0 && applications == 0)
        let one = await Lanczos.largestEigenvalue(dimension: 1) { v in applications += 1; return [7 * v[0]] }
        #expect(one == 7 && applications == 1)
        let zero = await Lanczos.largestEigenvalue(dimension: 5) { v in [Double](repeating: 0, count: v.count) }
        #expect(zero == 0)
        // A diagonal operator whose largest entry is not the first.
        let diagonal = [1.0, 4, 9, 2]
        let d = await Lanczos.largestEigenvalue(dimension: 4, tolerance: 0) { v in zip(v, diagonal).map { $0 * $1 } }
        #expect(isClose(d, 9, relative: 1e-12), "\(d)")
    }

    @Test("Sturm bisection: λ_max of tridiagonal matrices in closed form", arguments: [1, 2, 5, 20])
    func tridiagonal(_ k: Int) {
        // α = 2, β = 1: the eigenvalues are 2 + 2cos(πj/(k+1)).
        let top = Lanczos.largestEigenvalue(tridiagonal: [Double](repeating: 2, count: k), [Double](repeating: 1, count: k - 1))
        #expect(isClose(top, 2 + 2 * cos(Double.pi / Double(k + 1)), relative: 1e-14), "\(top)")
        // A scaled copy with negative off-diagonals has the same spectrum, times 1e-8.
        let scaled = Lanczos.largestEigenvalue(tridiagonal: [Double](repeating: 2e-8, count: k), [Double](repeating: -1e-8, count: k - 1))
        #expect(isClose(scaled, 1e-8 * (2 + 2 * cos(Double.pi / Double(k + 1))), relative: 1e-13), "\(scaled)")
    }

    @Test("Sturm bisection: a 2 × 2 block and a decoupled (β = 0) one")
    func tridiagonalSmall() {
        let (a, b, c) = (3.0, 0.7, -1.0)
        let exact = (a + c) / 2 + (((a - c) / 2) * ((a - c) / 2) + b * b).squareRoot()
        #expect(isClose(Lanczos.largestEigenvalue(tridiagonal: [a, c], [b]), exact, relative: 1e-15))
        #expect(isClose(Lanczos.largestEigenvalue(tridiagonal: [1, 6, 2], [0, 0]), 6, relative: 1e-15))
    }
}
