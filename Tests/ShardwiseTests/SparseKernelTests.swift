@testable import Shardwise
import Testing
import _TestSupport

/// Shapes for the sparse kernels: one row, one column, empty rows, a middle density, a wide
/// and very sparse matrix, and no rows at all.
let sparseShapes: [(rows: Int, columns: Int, density: Double, emptyEvery: Int)] = [
    (1, 1, 1, 0), (9, 1, 0.6, 0), (13, 5, 0.5, 3), (300, 40, 0.1, 4), (200, 1000, 0.01, 0), (64, 9, 0.9, 2), (0, 4, 0.5, 0),
]

@Suite("CSR matrix")
struct CSRMatrixTests {
    // [[0, 1.5, 0, -2], [0, 0, 0, 0], [3.25, 0, 0, 0.5]]
    let example = try! CSRMatrix<Double>(rows: 3, columns: 4, rowOffsets: [0, 2, 2, 4], columnIndices: [1, 3, 0, 3],
                                         values: [1.5, -2, 3.25, 0.5])

    @Test("counts, bytes and the dense form")
    func shape() throws {
        #expect(example.rowCount == 3 && example.columnCount == 4 && example.nonzeroCount == 4)
        #expect(example.bytes == 4 * 8 + 4 * 4 + 4 * 8)
        let x = try example.dense()
        #expect(x.elements == [0, 1.5, 0, -2, 0, 0, 0, 0, 3.25, 0, 0, 0.5])
        #expect(CSRMatrix(dense: x) == example)
        let f = example.converted(to: Float.self)
        #expect(f.values == [1.5, -2, 3.25, 0.5] && f.columnIndices == example.columnIndices && f.rowOffsets == example.rowOffsets)
    }

    @Test("a row view copies nothing and sees only its rows")
    func views() throws {
        let view = example.rows(1..<3)
        #expect(view.storage === example.storage)
        #expect(view.rowCount == 2 && view.nonzeroCount == 2 && view.firstRow == 1)
        #expect(view.bytes == 2 * (8 + 4) + 3 * 8)
        #expect(try view.dense().elements == [0, 0, 0, 0, 3.25, 0, 0, 0.5])
        let inner = view.rows(1..<2)
        #expect(inner.firstRow == 2 && Array(inner.row(0).columns) == [0, 3] && Array(inner.row(0).values) == [3.25, 0.5])
    }

    @Test("an unsorted row is sorted with its values")
    func sortsRows() throws {
        let x = try CSRMatrix<Float>(rows: 2, columns: 5, rowOffsets: [0, 3, 5], columnIndices: [4, 0, 2, 3, 1],
                                     values: [40, 0.5, 20, 30, 10])
        #expect(x.columnIndices == [0, 2, 4, 1, 3])
        #expect(x.values == [0.5, 20, 40, 10, 30])
        #expect(try x.dense().elements == [0.5, 0, 20, 0, 40, 0, 10, 0, 30, 0])
    }

    /// (rows, columns, offsets, indices, the error).
    static let invalidArrays: [(Int, Int, [Int64], [Int32], CSRError)] = [
        (2, 3, [0, 1, 2, 2], [0, 1], .offsetCount(expected: 3, found: 4)),
        (2, 3, [1, 1, 2], [0, 1], .firstOffset(1)),
        (3, 3, [0, 2, 1, 2], [0, 1], .decreasingOffsets(row: 1, start: 2, end: 1)),
        (2, 3, [0, 1, 3], [0, 1], .lastOffset(found: 3, nonzeros: 2)),
        (2, 3, [0, 1, 2], [0, 3], .columnOutOfRange(row: 1, column: 3, columns: 3)),
        (2, 3, [0, 1, 2], [-1, 0], .columnOutOfRange(row: 0, column: -1, columns: 3)),
        (2, 4, [0, 1, 4], [2, 3, 1, 3], .duplicateColumn(row: 1, column: 3)),
        (2, 4, [0, 2, 3], [1, 1, 0], .duplicateColumn(row: 0, column: 1)),
        (-1, 3, [0], [], .negativeShape(rows: -1, columns: 3)),
        (1, CSRMatrix<Double>.maximumColumns + 1, [0, 0], [], .tooManyColumns(CSRMatrix<Double>.maximumColumns + 1)),
    ]

    @Test("invalid arrays are refused, naming the row or the array", arguments: invalidArrays)
    func refuses(rows: Int, columns: Int, offsets: [Int64], indices: [Int32], expected: CSRError) {
        let values = [Double](repeating: 1, count: indices.count)
        #expect(throws: expected) {
            try CSRMatrix(rows: rows, columns: columns, rowOffsets: offsets, columnIndices: indices, values: values)
        }
    }

    @Test("indices and values must be as long as each other")
    func lengths() {
        #expect(throws: CSRError.lengthMismatch(indices: 2, values: 1)) {
            try CSRMatrix<Double>(rows: 1, columns: 3, rowOffsets: [0, 2], columnIndices: [0, 1], values: [1])
        }
        #expect("\(CSRError.duplicateColumn(row: 7, column: 3))" == "row 7 has column 3 twice")
    }
}

@Suite("Sparse gradient kernel")
struct SparseKernelTests {
    /// Every product of `SparseGradientKernel` on `x` against the same computation on `x.dense()`:
    /// the naive dense loops (in Double) and the dense `GradientKernel`.
    func check<Scalar: BLASScalar>(_ x: CSRRows<Scalar>, link: Link, tolerance: Double, seed: UInt64 = 1) throws {
        let n = x.rowCount, d = x.columnCount
        let dense = try x.dense()
        var y: [Scalar] = TestData.vector(n, seed: seed &+ 99, as: Scalar.self)
        if link == .logistic { y = y.map { $0 > 0 ? 1 : 0 } }
        let w: [Scalar] = TestData.vector(d, seed: seed &+ 5, as: Scalar.self)
        let kernel = SparseGradientKernel(x: x, y: y[...], link: link)
        #expect(kernel.rows == n && kernel.features == d && kernel.y == y)

        // The fused gradient and its loss.
        let reference = naiveGradientSum(x: dense.view, y: y[...], link: link, w: w)
        var g = [Scalar](repeating: .nan, count: d)
        let e = kernel.gradientSum(w: w, into: &g)
        #expect(e.rows == n)
        #expect(relativeError(g, reference.gradient) < tolerance, "gradient \(n)×\(d), \(link)")
        #expect(isClose(e.lossSum, reference.lossSum, relative: tolerance), "loss \(e.lossSum) vs \(reference.lossSum)")
        #expect(isClose(kernel.lossSum(w: w), reference.lossSum, relative: tolerance))
        // The naive sparse reference agrees with the dense one.
        let sparseReference = naiveSparseGradientSum(x: x, y: y[...], link: link, w: w)
        #expect(relativeError(sparseReference.gradient, reference.gradient) < 1e-12)
        // Called again, the same bits.
        var g2 = [Scalar](repeating: 0, count: d)
        _ = kernel.gradientSum(w: w, into: &g2)
        #expect(g2 == g)

        // X v and Xᵀ u, against the dense loops.
        let u: [Scalar] = TestData.vector(n, seed: seed &+ 11, as: Scalar.self)
        var xv = [Double](repeating: 0, count: n), xtu = [Double](repeating: 0, count: d)
        for i in 0..<n {
            for j in 0..<d {
                xv[i] += Double(dense[i, j]) * Double(w[j])
                xtu[j] += Double(dense[i, j]) * Double(u[i])
            }
        }
        var outRows = [Scalar](repeating: .nan, count: n), outColumns = [Scalar](repeating: .nan, count: d)
        kernel.product(w, into: &outRows)
        kernel.transposedProduct(u, into: &outColumns)
        #expect(relativeError(outRows, xv) < tolerance, "Xv")
        #expect(relativeError(outColumns, xtu) < tolerance, "Xᵀu")
        #expect(relativeError(naiveSparseProduct(x: x, w), xv) < 1e-12)
        #expect(relativeError(naiveSparseTransposedProduct(x: x, u), xtu) < 1e-12)

        // Curvature weights and the (weighted) Gram product, against the dense kernel and the loops.
        let denseKernel = GradientKernel(x: dense.view, y: y[...], link: link)
        var weights = [Scalar](repeating: .nan, count: n), denseWeights = [Scalar](repeating: 0, count: n)
        kernel.curvatureWeights(w: w, into: &weights)
        denseKernel.curvatureWeights(w: w, into: &denseWeights)
        #expect(relativeError(weights, denseWeights) < tolerance, "curvature weights")
        for weighted in [false, true] {
            var expected = [Double](repeating: 0, count: d)
            for i in 0..<n {
                var t = 0.0
                for j in 0..<d { t += Double(dense[i, j]) * Double(w[j]) }
                if weighted { t *= Double(weights[i]) }
                for j in 0..<d { expected[j] += Double(dense[i, j]) * t }
            }
            var out = [Scalar](repeating: .nan, count: d)
            if weighted {
                kernel.weightedGramProduct(w, weights: weights, into: &out)
            } else {
                kernel.gramProduct(w, into: &out)
            }
            #expect(relativeError(out, expected) < tolerance, "Gram product, weighted: \(weighted)")
        }
    }

    @Test("every product matches the dense computation on dense()", arguments: sparseShapes.indices)
    func matchesDense(shape: Int) throws {
        let (n, d, density, empty) = sparseShapes[shape]
        for link in Link.allCases {
            let seed = UInt64(shape * 31 + 1)
            try check(TestData.csr(rows: n, columns: d, density: density, seed: seed, emptyEvery: empty, as: Double.self).view,
                      link: link, tolerance: 1e-12, seed: seed)
            try check(TestData.csr(rows: n, columns: d, density: density, seed: seed, emptyEvery: empty, as: Float.self).view,
                      link: link, tolerance: 2e-4, seed: seed)
        }
    }

    @Test("a row-range view in the middle computes on its own rows only, as the whole does")
    func middleView() throws {
        let x = TestData.csr(rows: 120, columns: 30, density: 0.2, seed: 4, emptyEvery: 5, as: Double.self)
        for link in Link.allCases {
            try check(x.rows(40..<77), link: link, tolerance: 1e-12)
            try check(x.converted(to: Float.self).rows(40..<77), link: link, tolerance: 2e-4)
        }
        // Rows are additive: the views' sums add up to the whole.
        let y: [Double] = TestData.vector(120, seed: 2)
        let w: [Double] = TestData.vector(30, seed: 3)
        var whole = [Double](repeating: 0, count: 30), part = whole, total = whole
        let wholeLoss = SparseGradientKernel(x: x.view, y: y[...]).gradientSum(w: w, into: &whole).lossSum
        var loss = 0.0
        for range in [0..<40, 40..<77, 77..<120] {
            loss += SparseGradientKernel(x: x.rows(range), y: y[range]).gradientSum(w: w, into: &part).lossSum
            for j in 0..<30 { total[j] += part[j] }
        }
        #expect(relativeError(total, whole) < 1e-13)
        #expect(isClose(loss, wholeLoss, relative: 1e-13))
    }

    @Test("the 4-way unrolled loops handle every row length", arguments: [1, 2, 3, 4, 5, 7, 8, 9])
    func rowLengths(length: Int) throws {
        // Rows of exactly `length` nonzeros (and one empty), so every tail of the unrolled loops runs.
        let d = 12
        var offsets: [Int64] = [0], indices: [Int32] = []
        for i in 0..<5 {
            let m = i == 2 ? 0 : length
            for k in 0..<m { indices.append(Int32((k * 5 + i) % d)) }
            offsets.append(Int64(indices.count))
        }
        let values: [Double] = TestData.vector(indices.count, seed: 8)
        let x = try CSRMatrix(rows: 5, columns: d, rowOffsets: offsets, columnIndices: indices, values: values)
        for link in Link.allCases {
            try check(x.view, link: link, tolerance: 1e-12)
            try check(x.converted(to: Float.self).view, link: link, tolerance: 2e-4)
        }
    }
}
