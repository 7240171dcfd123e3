@testable import Shardwise
import Synchronization
import Testing
import _TestSupport

/// Shapes that exercise the block logic: a single row, a single column, fewer rows than a block,
/// a row count that is not a multiple of the block, and a wide matrix.
let kernelShapes: [(rows: Int, columns: Int)] = [(1, 1), (1, 7), (9, 1), (13, 5), (1000, 33), (3001, 17), (257, 1000)]

@Suite("Gradient kernel")
struct KernelTests {
    func check<Scalar: BLASScalar>(_: Scalar.Type, rows: Int, columns: Int, link: Link, blockBytes: Int, path: KernelPath,
                                   tolerance: Double) {
        let x = TestData.matrix(rows: rows, columns: columns, seed: UInt64(rows * 31 + columns), as: Scalar.self)
        var y: [Scalar] = TestData.vector(rows, seed: 99, as: Scalar.self)
        if link == .logistic { y = y.map { $0 > 0 ? 1 : 0 } }
        let w: [Scalar] = TestData.vector(columns, seed: 5, as: Scalar.self)
        let reference = naiveGradientSum(x: x.view, y: y[...], link: link, w: w)

        let kernel = GradientKernel(x: x.view, y: y[...], link: link, blockBytes: blockBytes, path: path)
        #expect(kernel.path == (path == .avx2 && KernelPath.avx2Available ? .avx2 : .blas))
        var g = [Scalar](repeating: .nan, count: columns)
        let e = kernel.gradientSum(w: w, into: &g)
        #expect(e.rows == rows)
        #expect(relativeError(g, reference.gradient) < tolerance, "fused gradient (\(kernel.path)), \(rows)×\(columns), block \(kernel.blockRows) rows")
        #expect(isClose(e.lossSum, reference.lossSum, relative: tolerance))

        var g2 = [Scalar](repeating: .nan, count: columns)
        var r = [Scalar](repeating: 0, count: rows)
        let e2 = w.withUnsafeBufferPointer { wp in
            g2.withUnsafeMutableBufferPointer { gp in
                r.withUnsafeMutableBufferPointer { rp in
                    twoPassGradientSum(x: x.view, y: y[...], link: link, w: wp.baseAddress!, g: gp.baseAddress!, r: rp.baseAddress!)
                }
            }
        }
        #expect(relativeError(g2, reference.gradient) < tolerance, "two-pass gradient")
        #expect(isClose(e2.lossSum, reference.lossSum, relative: tolerance))

        // Called again, the workspace is reused and the result is the same bits.
        var g3 = [Scalar](repeating: 0, count: columns)
        _ = kernel.gradientSum(w: w, into: &g3)
        #expect(g3 == g)
    }

    /// Both paths: `avx2` (the hand-written kernel; `blas` again on a CPU without AVX2+FMA) and `blas`.
    @Test("fused (both paths) and two-pass kernels match the naive loop",
          arguments: kernelShapes.indices, KernelPath.allCases)
    func matchesNaive(shape: Int, path: KernelPath) {
        let (n, d) = kernelShapes[shape]
        for link in Link.allCases {
            // A small block forces many blocks and a ragged last one; the default, usually one.
            for block in [64, GradientKernel<Double>.defaultBlockBytes] {
                check(Double.self, rows: n, columns: d, link: link, blockBytes: block, path: path, tolerance: 1e-12)
                check(Float.self, rows: n, columns: d, link: link, blockBytes: block, path: path, tolerance: 2e-4)
            }
        }
    }

    /// The AVX2 kernel's edges: unaligned rows (odd d), d below one vector, n = 2 (first and last row
    /// only), and tails of every length against 8 and 16.
    @Test("the avx2 path handles every tail", arguments: [(2, 1), (2, 3), (5, 15), (6, 16), (7, 17), (11, 31), (4, 33)])
    func avx2Tails(n: Int, d: Int) {
        for link in Link.allCases {
            check(Double.self, rows: n, columns: d, link: link, blockBytes: 64, path: .avx2, tolerance: 1e-12)
            check(Float.self, rows: n, columns: d, link: link, blockBytes: 64, path: .avx2, tolerance: 2e-4)
        }
    }

    @Test("a shard view computes on its own rows only")
    func shardView() {
        let x = TestData.matrix(rows: 100, columns: 6, seed: 1, as: Double.self)
        let y: [Double] = TestData.vector(100, seed: 2)
        let w: [Double] = TestData.vector(6, seed: 3)
        let view = x.rows(40..<70)
        let ref = naiveGradientSum(x: x.rows(40..<70), y: y[40..<70], w: w)
        var g = [Double](repeating: 0, count: 6)
        _ = GradientKernel(x: view, y: y[40..<70]).gradientSum(w: w, into: &g)
        #expect(relativeError(g, ref.gradient) < 1e-13)
        // Rows are additive: the shards' sums add up to the whole.
        var whole = [Double](repeating: 0, count: 6), part = whole
        _ = GradientKernel(x: x.view, y: y[...]).gradientSum(w: w, into: &whole)
        var total = [Double](repeating: 0, count: 6)
        for range in [0..<40, 40..<70, 70..<100] {
            _ = GradientKernel(x: x.rows(range), y: y[range]).gradientSum(w: w, into: &part)
            for j in 0..<6 { total[j] += part[j] }
        }
        #expect(relativeError(total, whole) < 1e-13)
    }

    @Test("the Gram product is XᵀXv")
    func gram() {
        let x = TestData.matrix(rows: 300, columns: 9, seed: 4, as: Double.self)
        let v: [Double] = TestData.vector(9, seed: 8)
        let kernel = GradientKernel(x: x.view, y: [Double](repeating: 0, count: 300)[...], blockBytes: 500)
        var out = [Double](repeating: 0, count: 9)
        v.withUnsafeBufferPointer { vp in out.withUnsafeMutableBufferPointer { kernel.gramProduct(vp.baseAddress!, into: $0.baseAddress!) } }
        var expected = [Double](repeating: 0, count: 9)
        for i in 0..<300 {
            var z = 0.0
            for j in 0..<9 { z += x[i, j] * v[j] }
            for j in 0..<9 { expected[j] += x[i, j] * z }
        }
        #expect(relativeError(out, expected) < 1e-13)
    }
}

/// `BLASThreading.withOneThread`'s holds, on a stand-in for OpenBLAS's setting (the real one is
/// process-wide, and other tests run at the same time): overlapping holds keep the count at 1
/// until the last ends, then restore the count from before the first.
@Suite("BLAS threading")
struct BLASThreadingTests {
    @Test func overlappingHoldsRestoreOnlyAtTheEnd() {
        let count = Mutex(4)
        let holds = ThreadCountHolds(get: { count.withLock { $0 } }, set: { n in count.withLock { $0 = n } })
        holds.hold()
        #expect(count.withLock { $0 } == 1)
        holds.hold()            // a second run begins…
        holds.release()         // …and ends while the first is still going
        #expect(count.withLock { $0 } == 1)
        holds.release()
        #expect(count.withLock { $0 } == 4)
        holds.hold()            // a new first hold saves the count again
        count.withLock { $0 = 1 }
        holds.release()
        #expect(count.withLock { $0 } == 4)
    }
}
