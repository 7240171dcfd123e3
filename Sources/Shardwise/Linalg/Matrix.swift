/// Heap storage aligned to a cache line, shared between a `Matrix` and the row views cut from it.
///
/// Reference semantics on purpose: a shard view keeps the storage alive without copying it.
/// Mutation happens only through `Matrix`'s copy-on-write accessors, so sharing is safe.
public final class AlignedStorage<Scalar: BLASScalar>: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Scalar>

    /// Alignment of every buffer: one cache line (and an AVX-512 register).
    public static var alignment: Int { 64 }

    public init(count: Int) {
        precondition(count >= 0, "negative element count")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(1, count) * MemoryLayout<Scalar>.stride, alignment: Self.alignment)
        base = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
        base.initialize(repeating: 0, count: max(1, count))
    }

    convenience init(copying other: AlignedStorage<Scalar>) {
        self.init(count: other.count)
        base.update(from: other.base, count: count)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }
}

/// A dense row-major matrix that owns its storage (64-byte aligned, copy-on-write).
///
/// ```swift
/// var x = Matrix<Double>(rows: 3, columns: 2)
/// x[0, 1] = 4
/// let shard = x.rows(1..<3)   // a view of rows 1 and 2; nothing is copied
/// ```
public struct Matrix<Scalar: BLASScalar>: Sendable {
    public let rows: Int
    public let columns: Int
    @usableFromInline var storage: AlignedStorage<Scalar>

    /// A zero matrix.
    public init(rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "Matrix shape must be non-negative, got \(rows)×\(columns)")
        self.rows = rows
        self.columns = columns
        storage = AlignedStorage(count: rows * columns)
    }

    /// A matrix over the first `rows * columns` elements of `storage`, which may hold more (a
    /// reader that reserved for an estimated row count hands its buffer over instead of copying it).
    init(rows: Int, columns: Int, storage: AlignedStorage<Scalar>) {
        precondition(rows >= 0 && columns >= 0 && storage.count >= rows * columns,
                     "Matrix \(rows)×\(columns) needs \(rows * columns) elements, the storage holds \(storage.count)")
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    /// A matrix from row-major elements; `elements.count` must be `rows * columns`.
    public init(rows: Int, columns: Int, elements: some Collection<Scalar>) {
        precondition(elements.count == rows * columns,
                     "Matrix \(rows)×\(columns) needs \(rows * columns) elements, got \(elements.count)")
        self.init(rows: rows, columns: columns)
        var i = 0
        for e in elements { storage.base[i] = e; i += 1 }
    }

    /// A matrix whose element (i, j) is `f(i, j)`.
    public init(rows: Int, columns: Int, _ f: (Int, Int) throws -> Scalar) rethrows {
        self.init(rows: rows, columns: columns)
        for i in 0..<rows { for j in 0..<columns { storage.base[i * columns + j] = try f(i, j) } }
    }

    public var count: Int { rows * columns }

    @inlinable
    public subscript(row: Int, column: Int) -> Scalar {
        get {
            precondition(row >= 0 && row < rows && column >= 0 && column < columns, "index out of range")
            return storage.base[row * columns + column]
        }
        set {
            precondition(row >= 0 && row < rows && column >= 0 && column < columns, "index out of range")
            makeUnique()
            storage.base[row * columns + column] = newValue
        }
    }

    /// The row-major elements as an array (a copy).
    public var elements: [Scalar] { Array(UnsafeBufferPointer(start: storage.base, count: count)) }

    /// One row as an array (a copy).
    public func row(_ i: Int) -> [Scalar] {
        precondition(i >= 0 && i < rows, "row \(i) out of range 0..<\(rows)")
        return Array(UnsafeBufferPointer(start: storage.base + i * columns, count: columns))
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: count))
    }

    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// A view of the rows in `range`, sharing this matrix's storage.
    public func rows(_ range: Range<Int>) -> MatrixRows<Scalar> {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows,
                     "rows \(range) out of range 0..<\(rows)")
        return MatrixRows(storage: storage, firstRow: range.lowerBound, rows: range.count, columns: columns)
    }

    /// A view of all rows.
    public var view: MatrixRows<Scalar> { rows(0..<rows) }

    @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = AlignedStorage(copying: storage) }
    }
}

extension Matrix: Equatable {
    public static func == (a: Matrix, b: Matrix) -> Bool {
        a.rows == b.rows && a.columns == b.columns
            && (0..<a.count).allSatisfy { a.storage.base[$0] == b.storage.base[$0] }
    }
}

/// A contiguous block of rows of a `Matrix`: what a shard sees. Holds the storage alive and copies
/// nothing; read-only.
public struct MatrixRows<Scalar: BLASScalar>: Sendable {
    @usableFromInline let storage: AlignedStorage<Scalar>
    /// Index of the first row in the parent matrix.
    public let firstRow: Int
    public let rows: Int
    public let columns: Int

    init(storage: AlignedStorage<Scalar>, firstRow: Int, rows: Int, columns: Int) {
        self.storage = storage
        self.firstRow = firstRow
        self.rows = rows
        self.columns = columns
    }

    /// Pointer to element (0, 0) of the view; row i starts at `base + i * columns`.
    @inlinable public var base: UnsafePointer<Scalar> { UnsafePointer(storage.base + firstRow * columns) }

    @inlinable
    public subscript(row: Int, column: Int) -> Scalar {
        precondition(row >= 0 && row < rows && column >= 0 && column < columns, "index out of range")
        return base[row * columns + column]
    }

    /// A sub-view of rows `range` (relative to this view).
    public func rows(_ range: Range<Int>) -> MatrixRows<Scalar> {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows,
                     "rows \(range) out of range 0..<\(rows)")
        return MatrixRows(storage: storage, firstRow: firstRow + range.lowerBound, rows: range.count, columns: columns)
    }

    /// A copy of the rows as an owning matrix.
    public func copy() -> Matrix<Scalar> {
        var m = Matrix<Scalar>(rows: rows, columns: columns)
        m.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: base, count: rows * columns) }
        return m
    }

    /// Bytes of X this view spans.
    public var byteCount: Int { rows * columns * Scalar.byteWidth }
}
