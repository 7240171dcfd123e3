/// A contiguous block of rows of a `CSRMatrix`: what a sparse shard sees. Holds the storage alive
/// and copies nothing; read-only. Every kernel takes a view, so a shard computes exactly what the
/// whole matrix would on the same rows.
public struct CSRRows<Scalar: BLASScalar>: Sendable {
    public let storage: CSRStorage<Scalar>
    /// Index of the first row in the parent matrix.
    public let firstRow: Int
    public let rowCount: Int

    init(storage: CSRStorage<Scalar>, firstRow: Int, rowCount: Int) {
        self.storage = storage
        self.firstRow = firstRow
        self.rowCount = rowCount
    }

    public var columnCount: Int { storage.columns }

    /// Where row i (of this view) starts in the parent's `values` and `columnIndices`.
    @inlinable
    public func offset(ofRow i: Int) -> Int { Int(storage.rowOffsets[firstRow + i]) }

    /// Nonzeros in the view's rows.
    public var nonzeroCount: Int { offset(ofRow: rowCount) - offset(ofRow: 0) }

    /// Bytes a pass over the view reads: its values, column indices and rowCount + 1 offsets.
    public var bytes: Int { nonzeroCount * (Scalar.byteWidth + 4) + (rowCount + 1) * 8 }

    /// Row i's column indices and values (slices of the parent's arrays).
    public func row(_ i: Int) -> (columns: ArraySlice<Int32>, values: ArraySlice<Scalar>) {
        precondition(i >= 0 && i < rowCount, "row \(i) out of range 0..<\(rowCount)")
        let range = offset(ofRow: i)..<offset(ofRow: i + 1)
        return (storage.columnIndices[range], storage.values[range])
    }

    /// A sub-view of rows `range` (relative to this view).
    public func rows(_ range: Range<Int>) -> CSRRows<Scalar> {
        precondition(range.lowerBound >= 0 && range.upperBound <= rowCount, "rows \(range) out of range 0..<\(rowCount)")
        return CSRRows(storage: storage, firstRow: firstRow + range.lowerBound, rowCount: range.count)
    }

    /// The view's rows as a dense row-major matrix (for tests and small data).
    /// - Throws: `DataError.invalid` when rowCount × columnCount would not fit in memory.
    public func dense() throws -> Matrix<Scalar> {
        try MemoryBudget.check(elements: MemoryBudget.product([rowCount, columnCount]) ?? -1, bytesPerElement: Scalar.byteWidth,
                               what: "the dense form of a \(rowCount) × \(columnCount) sparse matrix")
        var x = Matrix<Scalar>(rows: rowCount, columns: columnCount)
        let d = columnCount
        x.withUnsafeMutableBufferPointer { out in
            for i in 0..<rowCount {
                let (columns, values) = row(i)
                for (j, v) in zip(columns, values) { out[i * d + Int(j)] = v }
            }
        }
        return x
    }

    /// The view's three arrays as pointers, for the C kernels: `values` and `indices` are the
    /// parent's (offsets are absolute), `offsets` points at this view's first row (rowCount + 1 entries).
    @inlinable
    public func withUnsafeArrays<R>(
        _ body: (_ values: UnsafePointer<Scalar>, _ indices: UnsafePointer<Int32>, _ offsets: UnsafePointer<Int64>) throws -> R
    ) rethrows -> R {
        try storage.values.withUnsafeBufferPointer { v in
            try storage.columnIndices.withUnsafeBufferPointer { j in
                try storage.rowOffsets.withUnsafeBufferPointer { o in
                    // An empty array may have no base address; the kernels then read nothing from it.
                    let dummyV = UnsafePointer<Scalar>(bitPattern: MemoryLayout<Scalar>.alignment)!
                    let dummyJ = UnsafePointer<Int32>(bitPattern: MemoryLayout<Int32>.alignment)!
                    return try body(v.baseAddress ?? dummyV, j.baseAddress ?? dummyJ, o.baseAddress! + firstRow)
                }
            }
        }
    }
}
