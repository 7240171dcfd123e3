/// A job's data, dense or sparse: what `PreparedProblem` holds and cuts into shards. Dense data is a
/// `Dataset` (row-major X); sparse data a `SparseDataset` (CSR X, never densified unless the job
/// asks with `dense`). Everything above reads it through this surface and the shards' kernels.
public enum TrainingData<Scalar: BLASScalar>: Sendable {
    case dense(Dataset<Scalar>)
    case sparse(SparseDataset<Scalar>)

    public var rows: Int {
        switch self {
        case .dense(let d): return d.rows
        case .sparse(let s): return s.rows
        }
    }

    public var features: Int {
        switch self {
        case .dense(let d): return d.features
        case .sparse(let s): return s.features
        }
    }

    public var y: [Scalar] {
        switch self {
        case .dense(let d): return d.y
        case .sparse(let s): return s.y
        }
    }

    public var source: String {
        switch self {
        case .dense(let d): return d.source
        case .sparse(let s): return s.source
        }
    }

    public var featureNames: [String]? {
        if case .dense(let d) = self { return d.featureNames }
        return nil
    }

    public var isSparse: Bool { if case .sparse = self { return true } else { return false } }

    /// Bytes of X as stored: n·d·s dense, the CSR's three arrays sparse.
    public var bytes: Int {
        switch self {
        case .dense(let d): return d.rows * d.features * Scalar.byteWidth
        case .sparse(let s): return s.x.bytes
        }
    }

    /// X's rows as one view.
    public var design: DesignRows<Scalar> {
        switch self {
        case .dense(let d): return .dense(d.x.view)
        case .sparse(let s): return .sparse(s.x.view)
        }
    }

    /// A kernel over every row (for the report's loss and gradient norm).
    public func makeKernel(link: Link) -> any ShardKernel<Scalar> { design.makeKernel(y: y[...], link: link) }

    public func validateTargets(for objective: Objective) throws {
        switch self {
        case .dense(let d): try d.validateTargets(for: objective)
        case .sparse(let s): try s.validateTargets(for: objective)
        }
    }

    /// Refuses NaN and infinities, naming the row (and the column, for dense data).
    public func checkFinite() throws {
        switch self {
        case .dense(let d): try d.checkFinite()
        case .sparse(let s):
            if let i = s.y.firstIndex(where: { !$0.isFinite }) {
                throw DataError.nonFinite(file: s.source, location: "\(s.location(ofRow: i)), the target (\(s.y[i]) in \(Scalar.precisionName))")
            }
            if let k = s.x.values.firstIndex(where: { !$0.isFinite }) {
                // The row holding nonzero k: the last offset ≤ k.
                var lo = 0, hi = s.rows - 1
                while lo < hi { let m = (lo + hi + 1) / 2; if Int(s.x.rowOffsets[m]) <= k { lo = m } else { hi = m - 1 } }
                throw DataError.nonFinite(file: s.source,
                                          location: "\(s.location(ofRow: lo)), column \(s.x.columnIndices[k]) (\(s.x.values[k]) in \(Scalar.precisionName))")
            }
        }
    }

    /// The data cut into `count` shards, views that copy nothing. Sparse data is cut balanced by
    /// nonzeros (`NonzeroPartitioner`); it takes only `balanced` partitioning (`Job.validate()`
    /// refuses the others on sparse data, and so does this).
    public func shards(_ count: Int, partitioning: Partitioning) throws -> [Shard<Scalar>] {
        switch self {
        case .dense(let d): return try d.shards(count, partitioning: partitioning)
        case .sparse(let s):
            guard partitioning == .balanced else {
                throw DataError.invalid("partitioning \(partitioning) is for dense data; sparse shards are balanced by nonzeros (use balanced)")
            }
            return try NonzeroPartitioner.ranges(rowOffsets: s.x.rowOffsets, shards: count).enumerated().map { k, range in
                Shard(index: k, x: s.x.rows(range), y: s.y[range])
            }
        }
    }

    /// The dense form: dense data as it is, sparse data densified (with a memory check).
    public func densified() throws -> Dataset<Scalar> {
        switch self {
        case .dense(let d): return d
        case .sparse(let s): return Dataset(x: try s.x.dense(), y: s.y, source: s.source, rowLines: s.rowLines)
        }
    }
}
