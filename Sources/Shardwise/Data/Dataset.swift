/// A regression or classification dataset: X (n × d, row-major), targets y (n), optional names.
public struct Dataset<Scalar: BLASScalar>: Sendable {
    public var x: Matrix<Scalar>
    public var y: [Scalar]
    /// One name per column of X, when the source had them (CSV header, synthetic `x0…`).
    public var featureNames: [String]?
    /// Where the data came from, for messages and reports (a path, or a synthetic spec).
    public var source: String
    /// The line of `source` each row was read from (text files), so that a problem found after
    /// reading (a label the objective cannot take) still names its line. `nil` for arrays and
    /// generated data, whose rows are named by index.
    public var rowLines: [Int]?

    public init(x: Matrix<Scalar>, y: [Scalar], featureNames: [String]? = nil, source: String = "memory",
                rowLines: [Int]? = nil) {
        precondition(x.rows == y.count, "X has \(x.rows) rows but y has \(y.count) entries")
        precondition(featureNames == nil || featureNames!.count == x.columns,
                     "\(featureNames!.count) feature names for \(x.columns) columns")
        precondition(rowLines == nil || rowLines!.count == x.rows, "\(rowLines!.count) line numbers for \(x.rows) rows")
        self.x = x
        self.y = y
        self.featureNames = featureNames
        self.source = source
        self.rowLines = rowLines
    }

    /// Where row `i` came from, for messages: `line 12` of a text file, else `row 11` (0-based).
    public func location(ofRow i: Int) -> String {
        if let rowLines, i < rowLines.count { return "line \(rowLines[i])" }
        return "row \(i) (0-based)"
    }

    /// Refuses targets the objective cannot take: logistic regression needs labels 0 and 1 (a
    /// −1/+1 file would otherwise train towards a loss with no minimum). The error names the first
    /// bad row's line.
    public func validateTargets(for objective: Objective) throws {
        try checkTargets(y, for: objective, source: source, location: location(ofRow:))
    }

    public var rows: Int { x.rows }
    public var features: Int { x.columns }

    /// The same data in another precision (rounded to nearest).
    public func converted<T: BLASScalar>(to: T.Type = T.self) -> Dataset<T> {
        if let same = self as? Dataset<T> { return same }
        let m = x.withUnsafeBufferPointer { buf in Matrix<T>(rows: x.rows, columns: x.columns, elements: buf.lazy.map { T($0) }) }
        return Dataset<T>(x: m, y: y.map { T($0) }, featureNames: featureNames, source: source, rowLines: rowLines)
    }
}

/// The rule behind `Dataset.validateTargets` and `SparseDataset.validateTargets`: logistic
/// regression needs labels 0 and 1; the error names the first bad row by `location`.
func checkTargets<Scalar: BLASScalar>(_ y: [Scalar], for objective: Objective, source: String,
                                      location: (Int) -> String) throws {
    guard case .logistic = objective else { return }
    guard let i = y.firstIndex(where: { $0 != 0 && $0 != 1 }) else { return }
    let value = Double(y[i])
    let shown = value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
    let hint = source.hasPrefix("synthetic(") ? " (add task=classification to the synthetic spec)"
        : y.contains(-1) ? " (for −1/+1 labels, map −1 to 0)" : ""
    throw DataError.malformed(
        file: source, location: location(i),
        message: "label \(shown) is not 0 or 1; logistic regression needs 0/1 labels\(hint)")
}

/// Errors about data: reading, validating, partitioning.
public enum DataError: Error, CustomStringConvertible, Equatable {
    /// A file could not be read or parsed. `location` is "line N", "line N, column M" or "byte N".
    case malformed(file: String, location: String, message: String)
    /// A file could not be opened.
    case unreadable(file: String, reason: String)
    /// A value is NaN or infinite.
    case nonFinite(file: String, location: String)
    /// A request that the data cannot satisfy (more shards than rows, empty data, …).
    case invalid(String)

    public var description: String {
        switch self {
        case .malformed(let file, let location, let message): return "\(file):\(location): \(message)"
        case .unreadable(let file, let reason): return "\(file): cannot read: \(reason)"
        case .nonFinite(let file, let location): return "\(file):\(location): value is NaN or infinite"
        case .invalid(let message): return message
        }
    }
}
