/// A regression or classification dataset: X (n × d, row-major), targets y (n), optional names.
public struct Dataset<Scalar: BLASScalar>: Sendable {
    public var x: Matrix<Scalar>
    public var y: [Scalar]
    /// One name per column of X, when the source had them (CSV header, synthetic `x0…`).
    public var featureNames: [String]?
    /// Where the data came from, for messages and reports (a path, or a synthetic spec).
    public var source: String

    public init(x: Matrix<Scalar>, y: [Scalar], featureNames: [String]? = nil, source: String = "memory") {
        precondition(x.rows == y.count, "X has \(x.rows) rows but y has \(y.count) entries")
        precondition(featureNames == nil || featureNames!.count == x.columns,
                     "\(featureNames!.count) feature names for \(x.columns) columns")
        self.x = x
        self.y = y
        self.featureNames = featureNames
        self.source = source
    }

    public var rows: Int { x.rows }
    public var features: Int { x.columns }

    /// The same data in another precision (rounded to nearest).
    public func converted<T: BLASScalar>(to: T.Type = T.self) -> Dataset<T> {
        if let same = self as? Dataset<T> { return same }
        let m = x.withUnsafeBufferPointer { buf in Matrix<T>(rows: x.rows, columns: x.columns, elements: buf.lazy.map { T($0) }) }
        return Dataset<T>(x: m, y: y.map { T($0) }, featureNames: featureNames, source: source)
    }
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
