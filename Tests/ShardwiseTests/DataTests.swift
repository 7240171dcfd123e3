import Shardwise
import Testing
import _TestSupport

@Suite("Synthetic data, partitioning")
struct DataTests {
    func bytes<Scalar: BLASScalar>(_ d: Dataset<Scalar>) -> [UInt8] {
        d.x.withUnsafeBufferPointer { Array(UnsafeRawBufferPointer($0)) } + d.y.withUnsafeBytes { Array($0) }
    }

    @Test("same seed, same bytes; another seed, other bytes", arguments: [Precision.float64, .float32])
    func determinism(precision: Precision) throws {
        let a = SyntheticSpec(rows: 500, features: 20, noise: 0.1, condition: 30, seed: 42)
        var b = a
        b.seed = 43
        switch precision {
        case .float64:
            #expect(bytes(try a.generate(Double.self)) == bytes(try a.generate(Double.self)))
            #expect(bytes(try a.generate(Double.self)) != bytes(try b.generate(Double.self)))
        case .float32:
            #expect(bytes(try a.generate(Float.self)) == bytes(try a.generate(Float.self)))
            #expect(bytes(try a.generate(Float.self)) != bytes(try b.generate(Float.self)))
            // Float data is the Double data rounded.
            let d: Dataset<Double> = try a.generate(), f: Dataset<Float> = try a.generate()
            #expect(f.y == d.y.map { Float($0) })
        }
    }

    @Test("the generators match their published reference outputs")
    func referenceOutputs() {
        var sm = SplitMix64(seed: 0)
        #expect(sm.next() == 0xE220_A839_7B1D_CDAF)
        var x = Xoshiro256(seed: 0)
        x.s = (1, 2, 3, 4)
        #expect([x.next(), x.next(), x.next(), x.next()] == [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240])
    }

    @Test("the condition number is controlled", arguments: [1.0, 10, 100])
    func condition(target: Double) throws {
        let spec = SyntheticSpec(rows: 20_000, features: 10, noise: 0, condition: target, seed: 5)
        let data: Dataset<Double> = try spec.generate()
        // σ_max/σ_min from the eigenvalues of XᵀX by power iteration on XᵀX and on (λ_max I − XᵀX).
        let s = try LeastSquares.solve(x: data.x.view, y: data.y[...], method: .svd)
        #expect(s.rank == 10)
        var gram = [[Double]](repeating: [Double](repeating: 0, count: 10), count: 10)
        for i in 0..<data.rows { for a in 0..<10 { for b in 0..<10 { gram[a][b] += data.x[i, a] * data.x[i, b] } } }
        let (lo, hi) = extremeEigenvalues(gram)
        let cond = (hi / lo).squareRoot()
        #expect(cond > target * 0.8 && cond < target * 1.25, "cond(X) = \(cond) for target \(target)")
    }

    @Test("noise-free targets are exactly X·w_true")
    func noiseFree() throws {
        let spec = SyntheticSpec(rows: 200, features: 5, noise: 0, condition: 4, seed: 9, intercept: true)
        let data: Dataset<Double> = try spec.generate()
        #expect((0..<200).allSatisfy { data.x[$0, 0] == 1 })
        let w = try LeastSquares.solve(x: data.x.view, y: data.y[...]).w
        #expect(relativeError(w, spec.trueWeights) < 1e-10)
    }

    @Test("spec parsing and its errors")
    func parsing() throws {
        let s = try SyntheticSpec(parsing: "n=100, d=3, noise=0.5, cond=2, seed=4")
        #expect(s.rows == 100 && s.features == 3 && s.noise == 0.5 && s.condition == 2 && s.seed == 4)
        #expect(throws: JobError.self) { try SyntheticSpec(parsing: "n=100") }
        #expect(throws: JobError.self) { try SyntheticSpec(parsing: "n=100,d=3,cond=0.5") }
        #expect(throws: JobError.self) { try SyntheticSpec(parsing: "n=100,d=3,colour=red") }
        do { _ = try SyntheticSpec(parsing: "n=ten,d=3") } catch { #expect("\(error)".contains("n=ten")) }
    }

    @Test("balanced and skewed shards cover every row once", arguments: [(10, 3), (1000, 7), (5, 5), (100, 1)])
    func partitions(rows: Int, shards: Int) throws {
        for p in [Partitioning.balanced, .skewed(ratio: 4)] {
            let ranges = try p.ranges(rows: rows, shards: shards)
            #expect(ranges.count == shards)
            #expect(ranges.first!.lowerBound == 0 && ranges.last!.upperBound == rows)
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            #expect(ranges.allSatisfy { !$0.isEmpty })
            if p == .balanced { #expect(ranges.map(\.count).max()! - ranges.map(\.count).min()! <= 1) }
        }
        let skew = try Partitioning.skewed(ratio: 4).ranges(rows: 10_000, shards: 4).map(\.count)
        #expect(Double(skew.last!) / Double(skew.first!) > 3.5)
    }

    @Test("more shards than rows is a clear error")
    func tooManyShards() {
        #expect(throws: DataError.self) { try Partitioning.balanced.ranges(rows: 3, shards: 4) }
        do { _ = try Partitioning.balanced.ranges(rows: 3, shards: 4) } catch {
            #expect("\(error)".contains("more shards than rows"))
        }
    }
}

/// Smallest and largest eigenvalue of a small symmetric matrix by Jacobi rotations.
func extremeEigenvalues(_ m: [[Double]]) -> (Double, Double) {
    var a = m
    let n = a.count
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in (p + 1)..<n { off += a[p][q] * a[p][q] } }
        if off < 1e-22 { break }
        for p in 0..<n {
            for q in (p + 1)..<n where abs(a[p][q]) > 1e-300 {
                let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {
                    let akp = a[k][p], akq = a[k][q]
                    a[k][p] = c * akp - s * akq
                    a[k][q] = s * akp + c * akq
                }
                for k in 0..<n {
                    let apk = a[p][k], aqk = a[q][k]
                    a[p][k] = c * apk - s * aqk
                    a[q][k] = s * apk + c * aqk
                }
            }
        }
    }
    let diag = (0..<n).map { a[$0][$0] }
    return (diag.min()!, diag.max()!)
}
