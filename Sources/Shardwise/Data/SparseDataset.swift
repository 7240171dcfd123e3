/// A regression or classification dataset whose X is sparse (CSR): what `LIBSVMReader.readSparse` and
/// `SparseSyntheticSpec` produce (an `NPZReader` matrix needs its targets from elsewhere). The sparse
/// twin of `Dataset`.
public struct SparseDataset<Scalar: BLASScalar>: Sendable {
    public var x: CSRMatrix<Scalar>
    public var y: [Scalar]
    /// Where the data came from, for messages and reports (a path, or a synthetic spec).
    public var source: String
    /// The line of `source` each row was read from (text files); `nil` for generated data.
    public var rowLines: [Int]?

    public init(x: CSRMatrix<Scalar>, y: [Scalar], source: String = "memory", rowLines: [Int]? = nil) {
        precondition(x.rowCount == y.count, "X has \(x.rowCount) rows but y has \(y.count) entries")
        precondition(rowLines == nil || rowLines!.count == x.rowCount, "\(rowLines!.count) line numbers for \(x.rowCount) rows")
        self.x = x
        self.y = y
        self.source = source
        self.rowLines = rowLines
    }

    public var rows: Int { x.rowCount }
    public var features: Int { x.columnCount }

    /// Where row `i` came from, for messages: `line 12` of a text file, else `row 11` (0-based).
    public func location(ofRow i: Int) -> String {
        if let rowLines, i < rowLines.count { return "line \(rowLines[i])" }
        return "row \(i) (0-based)"
    }

    /// Refuses targets the objective cannot take (logistic regression needs 0/1), naming the
    /// first bad row's line: the same rule as `Dataset.validateTargets`.
    public func validateTargets(for objective: Objective) throws {
        try checkTargets(y, for: objective, source: source, location: location(ofRow:))
    }

    /// The same data in another precision (values and targets rounded to nearest; the index
    /// arrays are shared).
    public func converted<T: BLASScalar>(to: T.Type = T.self) -> SparseDataset<T> {
        if let same = self as? SparseDataset<T> { return same }
        return SparseDataset<T>(x: x.converted(to: T.self), y: y.map { T($0) }, source: source, rowLines: rowLines)
    }

    /// The dataset cut into `count` shards of contiguous rows balanced by nonzeros
    /// (`NonzeroPartitioner`); each shard is a view, nothing is copied.
    /// - Throws: `DataError.invalid` when there are more shards than rows or no shards.
    public func shards(_ count: Int) throws -> [SparseShard<Scalar>] {
        try NonzeroPartitioner.ranges(rowOffsets: x.rowOffsets, shards: count).enumerated().map { k, range in
            SparseShard(index: k, x: x.rows(range), y: y[range])
        }
    }
}

/// One node's part of sparse data: views of X and y that copy nothing.
public struct SparseShard<Scalar: BLASScalar>: Sendable {
    /// Index of the shard (usually the rank of the node that owns it).
    public let index: Int
    public let x: CSRRows<Scalar>
    public let y: ArraySlice<Scalar>
    /// Which rows of the full dataset this shard holds.
    public var range: Range<Int> { x.firstRow..<(x.firstRow + x.rowCount) }
    public var rows: Int { x.rowCount }
    public var features: Int { x.columnCount }

    public init(index: Int, x: CSRRows<Scalar>, y: ArraySlice<Scalar>) {
        precondition(x.rowCount == y.count, "shard \(index): X has \(x.rowCount) rows, y has \(y.count)")
        self.index = index
        self.x = x
        self.y = y
    }
}
