/// Why three arrays are not a CSR matrix: what `CSRMatrix.init(rows:columns:rowOffsets:columnIndices:values:)`
/// refuses. Each message names the row or the array at fault; the readers wrap it in a `DataError`
/// that names the file (and the `.npz` member).
public enum CSRError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A negative row or column count.
    case negativeShape(rows: Int, columns: Int)
    /// More columns than 32-bit indices can name (2³¹).
    case tooManyColumns(Int)
    /// `rowOffsets` must have rows + 1 entries.
    case offsetCount(expected: Int, found: Int)
    /// `rowOffsets[0]` must be 0.
    case firstOffset(Int64)
    /// `rowOffsets[row + 1] < rowOffsets[row]`: a row of negative length.
    case decreasingOffsets(row: Int, start: Int64, end: Int64)
    /// The last offset must be the number of nonzeros (the length of `columnIndices`).
    case lastOffset(found: Int64, nonzeros: Int)
    /// `columnIndices` and `values` must be as long as each other.
    case lengthMismatch(indices: Int, values: Int)
    /// A column index outside 0..<columns.
    case columnOutOfRange(row: Int, column: Int32, columns: Int)
    /// A column given twice in one row.
    case duplicateColumn(row: Int, column: Int32)

    public var description: String {
        switch self {
        case .negativeShape(let r, let c): return "the shape \(r) × \(c) is negative"
        case .tooManyColumns(let c): return "\(c) columns is more than 32-bit column indices can name (at most \(CSRMatrix<Double>.maximumColumns))"
        case .offsetCount(let e, let f): return "the row offsets have \(f) entries; expected rows + 1 = \(e)"
        case .firstOffset(let o): return "the first row offset is \(o); expected 0"
        case .decreasingOffsets(let row, let s, let e):
            return "row \(row) ends before it starts (offsets \(s) then \(e)); row offsets must never decrease"
        case .lastOffset(let f, let n): return "the last row offset is \(f) but there are \(n) nonzeros; expected them equal"
        case .lengthMismatch(let i, let v): return "\(i) column indices but \(v) values; expected one index per value"
        case .columnOutOfRange(let row, let c, let n): return "row \(row) has column index \(c), outside 0..<\(n)"
        case .duplicateColumn(let row, let c): return "row \(row) has column \(c) twice"
        }
    }
}
