/// The three arrays of a CSR matrix, shared by the matrix and every row view cut from it.
///
/// A final class on purpose (as `AlignedStorage` is for dense rows): a shard's view keeps the
/// arrays alive without copying them. Immutable once built.
public final class CSRStorage<Scalar: BLASScalar>: Sendable {
    public let rows: Int
    public let columns: Int
    /// Row i's nonzeros are `values[rowOffsets[i] ..< rowOffsets[i + 1]]`; rows + 1 entries.
    public let rowOffsets: [Int64]
    /// Column of each nonzero, strictly increasing within a row.
    public let columnIndices: [Int32]
    public let values: [Scalar]

    init(rows: Int, columns: Int, rowOffsets: [Int64], columnIndices: [Int32], values: [Scalar]) {
        self.rows = rows
        self.columns = columns
        self.rowOffsets = rowOffsets
        self.columnIndices = columnIndices
        self.values = values
    }
}

/// A sparse matrix in compressed sparse row (CSR) form, owning its storage: values `Float` or
/// `Double`, 32-bit column indices, 64-bit row offsets (so a matrix may hold more than 2³¹
/// nonzeros, never a row wider than 2³¹ columns).
///
/// ```swift
/// // [[0, 1.5, 0], [0, 0, 0], [2, 0, 3]]
/// let x = try CSRMatrix<Double>(rows: 3, columns: 3, rowOffsets: [0, 1, 1, 3],
///                               columnIndices: [1, 0, 2], values: [1.5, 2, 3])
/// let shard = x.rows(1..<3)   // a view of rows 1 and 2; nothing is copied
/// ```
///
/// Construction validates everything a kernel relies on, so that no kernel checks again: offsets
/// start at 0, never decrease and end at the nonzero count; indices are in 0..<columns; each row's
/// indices strictly increase (an unsorted row is sorted with its values; a column given twice in a
/// row is an error naming the row — summing duplicates, as scipy may, would hide a broken file).
public struct CSRMatrix<Scalar: BLASScalar>: Sendable {
    public let storage: CSRStorage<Scalar>

    /// The most columns a 32-bit index can name (indices 0 … 2³¹ − 1).
    public static var maximumColumns: Int { Int(Int32.max) + 1 }

    /// A validated CSR matrix; see the type's discussion for the rules.
    /// - Throws: `CSRError` naming the row or array at fault.
    public init(rows: Int, columns: Int, rowOffsets: [Int64], columnIndices: [Int32], values: [Scalar]) throws(CSRError) {
        guard rows >= 0, columns >= 0 else { throw .negativeShape(rows: rows, columns: columns) }
        guard columns <= Self.maximumColumns else { throw .tooManyColumns(columns) }
        guard rowOffsets.count == rows + 1 else { throw .offsetCount(expected: rows + 1, found: rowOffsets.count) }
        guard columnIndices.count == values.count else {
            throw .lengthMismatch(indices: columnIndices.count, values: values.count)
        }
        guard rowOffsets[0] == 0 else { throw .firstOffset(rowOffsets[0]) }
        for i in 0..<rows where rowOffsets[i + 1] < rowOffsets[i] {
            throw .decreasingOffsets(row: i, start: rowOffsets[i], end: rowOffsets[i + 1])
        }
        guard rowOffsets[rows] == Int64(columnIndices.count) else {
            throw .lastOffset(found: rowOffsets[rows], nonzeros: columnIndices.count)
        }
        var indices = columnIndices, values = values
        for i in 0..<rows {
            let lo = Int(rowOffsets[i]), hi = Int(rowOffsets[i + 1])
            var sorted = true
            for k in lo..<hi {
                let c = indices[k]
                guard c >= 0 && Int(c) < columns else { throw .columnOutOfRange(row: i, column: c, columns: columns) }
                if k > lo && c <= indices[k - 1] { sorted = false }
            }
            if !sorted { try Self.sortRow(i, lo..<hi, indices: &indices, values: &values) }
        }
        storage = CSRStorage(rows: rows, columns: columns, rowOffsets: rowOffsets, columnIndices: indices, values: values)
    }

    /// Sorts one row's (index, value) pairs by index; a repeated index is an error.
    private static func sortRow(_ row: Int, _ range: Range<Int>, indices: inout [Int32], values: inout [Scalar]) throws(CSRError) {
        let pairs = range.map { (indices[$0], values[$0]) }.sorted { $0.0 < $1.0 }
        for k in pairs.indices.dropFirst() where pairs[k].0 == pairs[k - 1].0 {
            throw .duplicateColumn(row: row, column: pairs[k].0)
        }
        for (k, pair) in zip(range, pairs) {
            indices[k] = pair.0
            values[k] = pair.1
        }
    }

    /// From arrays a producer of this module has already made valid (the LIBSVM parser, the
    /// generator): checked in debug builds only.
    init(trustedRows rows: Int, columns: Int, rowOffsets: [Int64], columnIndices: [Int32], values: [Scalar]) {
        assert((try? CSRMatrix(rows: rows, columns: columns, rowOffsets: rowOffsets, columnIndices: columnIndices,
                               values: values))?.storage.columnIndices == columnIndices,
               "invalid or unsorted CSR arrays from a trusted producer")
        storage = CSRStorage(rows: rows, columns: columns, rowOffsets: rowOffsets, columnIndices: columnIndices, values: values)
    }

    /// The nonzeros of a dense matrix (exact zeros are left out).
    public init(dense x: Matrix<Scalar>) {
        var offsets: [Int64] = [0]
        offsets.reserveCapacity(x.rows + 1)
        var indices: [Int32] = [], values: [Scalar] = []
        x.withUnsafeBufferPointer { e in
            for i in 0..<x.rows {
                for j in 0..<x.columns where e[i * x.columns + j] != 0 {
                    indices.append(Int32(j))
                    values.append(e[i * x.columns + j])
                }
                offsets.append(Int64(indices.count))
            }
        }
        self.init(trustedRows: x.rows, columns: x.columns, rowOffsets: offsets, columnIndices: indices, values: values)
    }

    init(storage: CSRStorage<Scalar>) { self.storage = storage }

    public var rowCount: Int { storage.rows }
    public var columnCount: Int { storage.columns }
    public var nonzeroCount: Int { storage.values.count }
    /// Bytes of the three arrays: values, column indices and row offsets.
    public var bytes: Int { view.bytes }

    public var rowOffsets: [Int64] { storage.rowOffsets }
    public var columnIndices: [Int32] { storage.columnIndices }
    public var values: [Scalar] { storage.values }

    /// A view of the rows in `range`, sharing this matrix's storage.
    public func rows(_ range: Range<Int>) -> CSRRows<Scalar> { view.rows(range) }

    /// A view of all rows.
    public var view: CSRRows<Scalar> { CSRRows(storage: storage, firstRow: 0, rowCount: storage.rows) }

    /// The same matrix as a dense row-major one (for tests and small data).
    /// - Throws: `DataError.invalid` when rows × columns would not fit in memory.
    public func dense() throws -> Matrix<Scalar> { try view.dense() }

    /// The same matrix in another precision (values rounded to nearest); the index arrays are
    /// shared, not copied.
    public func converted<T: BLASScalar>(to: T.Type = T.self) -> CSRMatrix<T> {
        if let same = self as? CSRMatrix<T> { return same }
        return CSRMatrix<T>(storage: CSRStorage(rows: rowCount, columns: columnCount, rowOffsets: storage.rowOffsets,
                                                columnIndices: storage.columnIndices, values: storage.values.map { T($0) }))
    }
}

extension CSRMatrix: Equatable {
    public static func == (a: CSRMatrix, b: CSRMatrix) -> Bool {
        a.rowCount == b.rowCount && a.columnCount == b.columnCount && a.rowOffsets == b.rowOffsets
            && a.columnIndices == b.columnIndices && a.values == b.values
    }
}
