import Foundation

/// How rows are cut into shards. Shards are contiguous row ranges: a shard is a view, not a copy.
public enum Partitioning: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Sizes differ by at most one row.
    case balanced
    /// Sizes grow linearly from the first shard to the last, the last `ratio` times the first
    /// (ratio ≥ 1): a load imbalance for straggler studies.
    case skewed(ratio: Double)
    /// Rows sorted by target (stably: ties keep their order) before being cut into balanced
    /// shards: each shard sees one slice of the targets (one class, for 0/1 labels), so the shards
    /// are as far from IID as a row partition gets — the setting where local steps drift
    /// (`local-sgd`) and one-shot averaging is biased. The cut is deterministic, so every backend
    /// and every socket process makes the same shards.
    case sorted

    public var description: String {
        switch self {
        case .balanced: return "balanced"
        case .skewed(let r): return "skewed(\(r))"
        case .sorted: return "sorted"
        }
    }

    /// Parses `balanced`, `skewed:R` (`skewed` alone is `skewed:4`) or `sorted`.
    /// - Throws: `JobError.invalid` (the syntax here, the range in `validate()`).
    public init(parsing text: String) throws {
        if text == "balanced" { self = .balanced; return }
        if text == "sorted" { self = .sorted; return }
        if text.hasPrefix("skewed") {
            let rest = text.dropFirst("skewed".count)
            let number = rest.isEmpty ? "4" : rest.first == ":" || rest.first == "=" ? String(rest.dropFirst()) : ""
            guard let r = Double(number) else {
                throw JobError.invalid(field: "", message: "the skew ratio must be a number ≥ 1 (e.g. skewed:4), got '\(text)'")
            }
            self = .skewed(ratio: r)
            try validate()
            return
        }
        throw JobError.invalid(field: "", message: "expected 'balanced', 'skewed:RATIO' or 'sorted', got '\(text)'")
    }

    /// The largest skew: the last shard a million times the first is already one shard holding
    /// nearly everything.
    public static let maximumSkew = 1e6

    /// The skew ratio is in 1…1e6 (below 1 the weights go negative and the sizes with them).
    /// - Throws: `JobError.invalid` naming the JSON field `skewed.ratio`.
    public func validate() throws {
        if case .skewed(let r) = self, !(r >= 1 && r <= Self.maximumSkew) {
            throw JobError.invalid(field: "skewed.ratio",
                                   message: "the skew ratio (last shard ÷ first) must be in 1…\(String(format: "%g", Self.maximumSkew)), got \(r)")
        }
    }

    /// The row ranges of `shards` shards over `rows` rows, in order, covering every row once.
    /// - Throws: `DataError.invalid` when there are more shards than rows or no shards.
    public func ranges(rows: Int, shards: Int) throws -> [Range<Int>] {
        do { try validate() } catch { throw DataError.invalid("partitioning \(self): \(error)") }
        guard shards > 0 else { throw DataError.invalid("cannot cut data into \(shards) shards") }
        guard shards <= rows else {
            throw DataError.invalid("cannot cut \(rows) rows into \(shards) shards: more shards than rows")
        }
        let sizes: [Int]
        switch self {
        case .balanced, .sorted:
            sizes = (0..<shards).map { k in rows / shards + (k < rows % shards ? 1 : 0) }
        case .skewed(let ratio):
            let weights = (0..<shards).map { k in shards == 1 ? 1 : 1 + (ratio - 1) * Double(k) / Double(shards - 1) }
            let total = weights.reduce(0, +)
            // Every shard gets one row, the rest by weight (largest remainders last).
            var s = weights.map { 1 + Int((Double(rows - shards) * $0 / total).rounded(.down)) }
            var left = rows - s.reduce(0, +)
            var k = shards - 1
            while left > 0 { s[k] += 1; left -= 1; k = k == 0 ? shards - 1 : k - 1 }
            sizes = s
        }
        var out: [Range<Int>] = []
        var start = 0
        for size in sizes { out.append(start..<(start + size)); start += size }
        return out
    }
}

/// One node's part of the data: views of X (dense rows or CSR rows) and y that copy nothing.
public struct Shard<Scalar: BLASScalar>: Sendable {
    /// Index of the shard (usually the rank of the node that owns it).
    public let index: Int
    /// The shard's rows of X, dense or CSR.
    public let design: DesignRows<Scalar>
    public let y: ArraySlice<Scalar>
    /// Which rows of the full dataset this shard holds.
    public var range: Range<Int> {
        switch design {
        case .dense(let x): return x.firstRow..<(x.firstRow + x.rows)
        case .sparse(let x): return x.firstRow..<(x.firstRow + x.rowCount)
        }
    }
    public var rows: Int { design.rows }
    public var features: Int { design.columns }
    public var isSparse: Bool { design.isSparse }

    /// The dense rows. Only the strategies that need dense rows read them (`gram`, `one-shot`,
    /// `cocoa`), and `Job.validate()` refuses those strategies on sparse data, so a sparse shard
    /// never reaches here.
    public var x: MatrixRows<Scalar> {
        guard case .dense(let x) = design else {
            preconditionFailure("shard \(index) is sparse (CSR): this code path needs dense rows")
        }
        return x
    }

    public init(index: Int, x: MatrixRows<Scalar>, y: ArraySlice<Scalar>) {
        self.init(index: index, design: .dense(x), y: y)
    }

    public init(index: Int, x: CSRRows<Scalar>, y: ArraySlice<Scalar>) {
        self.init(index: index, design: .sparse(x), y: y)
    }

    public init(index: Int, design: DesignRows<Scalar>, y: ArraySlice<Scalar>) {
        precondition(design.rows == y.count, "shard \(index): X has \(design.rows) rows, y has \(y.count)")
        self.index = index
        self.design = design
        self.y = y
    }

    /// A kernel over this shard's rows.
    public func makeKernel(link: Link) -> any ShardKernel<Scalar> { design.makeKernel(y: y, link: link) }

    /// An empty shard (a node that holds no data, such as a parameter server).
    public static func empty(index: Int, features: Int) -> Shard {
        let m = Matrix<Scalar>(rows: 0, columns: features)
        return Shard(index: index, x: m.view, y: [][...])
    }
}

extension Dataset {
    /// The dataset cut into `count` shards. With `.sorted` the shards are views of the rows sorted
    /// by target: of this dataset when it is already sorted (`PreparedProblem` sorts it first, so
    /// nothing is copied), else of a sorted copy.
    public func shards(_ count: Int, partitioning: Partitioning = .balanced) throws -> [Shard<Scalar>] {
        if partitioning == .sorted && !isSortedByTarget { return try sortedByTarget().shards(count, partitioning: partitioning) }
        return try partitioning.ranges(rows: rows, shards: count).enumerated().map { k, range in
            Shard(index: k, x: x.rows(range), y: y[range])
        }
    }

    /// Whether the targets are in non-decreasing order.
    public var isSortedByTarget: Bool { zip(y, y.dropFirst()).allSatisfy { $0 <= $1 } }

    /// The same rows in order of their targets (a stable sort, so equal targets keep their
    /// order and the result is the same on every machine); line numbers move with their rows.
    public func sortedByTarget() -> Dataset {
        let order = y.indices.sorted { y[$0] < y[$1] || (y[$0] == y[$1] && $0 < $1) }
        let d = features
        var sorted = Matrix<Scalar>(rows: rows, columns: d)
        x.withUnsafeBufferPointer { old in
            sorted.withUnsafeMutableBufferPointer { new in
                for (i, row) in order.enumerated() {
                    (new.baseAddress! + i * d).update(from: old.baseAddress! + row * d, count: d)
                }
            }
        }
        return Dataset(x: sorted, y: order.map { y[$0] }, featureNames: featureNames, source: source,
                       rowLines: rowLines.map { lines in order.map { lines[$0] } })
    }

}
