import COpenBLAS
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A floating-point type that BLAS and LAPACK compute with: `Float` (the `s` routines) or
/// `Double` (the `d` routines).
///
/// Everything numeric in Shardwise is generic over `BLASScalar`, so that `Float` storage — half the
/// bytes read by the kernel and half the bytes sent — is a first-class choice rather than a cast.
/// The static members are thin, shape-documented wrappers over CBLAS/LAPACKE; all matrices are
/// row-major.
public protocol BLASScalar: BinaryFloatingPoint, SIMDScalar, Codable, Sendable
where Self.RawSignificand: FixedWidthInteger {
    /// `"float32"` or `"float64"`.
    static var precisionName: String { get }

    /// y ← α·op(A)·x + β·y, with A (rows × cols) row-major and leading dimension `lda`.
    static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, beta: Self, y: UnsafeMutablePointer<Self>)

    /// xᵀy over `count` contiguous entries.
    static func dot(count: Int, _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>) -> Self

    /// y ← αx + y over `count` contiguous entries.
    static func axpy(count: Int, alpha: Self, x: UnsafePointer<Self>, y: UnsafeMutablePointer<Self>)

    /// Solve min |A x − B| by QR (LAPACKE ?gels). A (m × n) and B (max(m,n) × nrhs) are row-major
    /// and overwritten. Returns LAPACK's `info`.
    static func gels(
        m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        b: UnsafeMutablePointer<Self>, ldb: Int) -> Int

    /// Solve min |A x − B| by SVD with rank determination (LAPACKE ?gelsd). `rcond` < 0 means
    /// machine precision. Returns `info`; `rank` receives the effective rank and `s` (min(m,n))
    /// the singular values.
    static func gelsd(
        m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        b: UnsafeMutablePointer<Self>, ldb: Int, s: UnsafeMutablePointer<Self>,
        rcond: Self, rank: inout Int) -> Int
}

extension BLASScalar {
    /// `count` zeros, written with one `memset` (IEEE +0 is all zero bits). `Array(repeating:count:)`
    /// copies element by element through the value witness when the caller is not specialised
    /// (a collective called from another module): about 10% of a socket all-reduce's time.
    @inlinable
    public static func zeros(_ count: Int) -> [Self] {
        [Self](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { memset(buffer.baseAddress!, 0, count * MemoryLayout<Self>.stride) }
            initialized = count
        }
    }

    /// Bytes per element: 4 for `Float`, 8 for `Double`.
    @inlinable public static var byteWidth: Int { MemoryLayout<Self>.stride }
}

/// The number of threads OpenBLAS uses per call. Backends that run several nodes in one process
/// set it to 1; otherwise each node's BLAS threads would fight over the same cores.
public enum BLASThreading {
    public static var threads: Int {
        get { Int(shardwise_blas_get_threads()) }
    }
    public static func set(threads: Int) {
        shardwise_blas_set_threads(Int32(max(1, threads)))
    }

    /// Runs `body` with OpenBLAS on one thread.
    ///
    /// The setting is process-wide, and runs may overlap (two backends in one program, tests in
    /// parallel): holds nest, and the thread count returns to what it was only when the last
    /// one ends. A run that saved and restored the setting itself would put BLAS back on several
    /// threads under a run still going — whose gemv would then round differently.
    public static func withOneThread<R>(_ body: () async throws -> R) async rethrows -> R {
        holds.hold()
        defer { holds.release() }
        return try await body()
    }

    /// Synchronous `withOneThread`.
    public static func withOneThread<R>(_ body: () throws -> R) rethrows -> R {
        holds.hold()
        defer { holds.release() }
        return try body()
    }

    static let holds = ThreadCountHolds(get: { threads }, set: { set(threads: $0) })
}

/// Nested holds on a process-wide thread count (see `BLASThreading.withOneThread`): the first
/// hold saves the count and sets 1, the last release restores it.
final class ThreadCountHolds: Sendable {
    private let state = Mutex((count: 0, restore: 1))
    private let get: @Sendable () -> Int
    private let set: @Sendable (Int) -> Void

    init(get: @escaping @Sendable () -> Int, set: @escaping @Sendable (Int) -> Void) {
        self.get = get
        self.set = set
    }

    func hold() {
        state.withLock { h in
            if h.count == 0 {
                h.restore = get()
                set(1)
            }
            h.count += 1
        }
    }

    func release() {
        state.withLock { h in
            precondition(h.count > 0, "release without a hold")
            h.count -= 1
            if h.count == 0 { set(h.restore) }
        }
    }
}

extension Double: BLASScalar {
    public static var precisionName: String { "float64" }

    @inlinable
    public static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, beta: Double, y: UnsafeMutablePointer<Double>
    ) {
        cblas_dgemv(
            CblasRowMajor, transpose ? CblasTrans : CblasNoTrans,
            blasint(rows), blasint(cols), alpha, a, blasint(lda), x, 1, beta, y, 1)
    }

    @inlinable
    public static func dot(count: Int, _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>) -> Double {
        cblas_ddot(blasint(count), x, 1, y, 1)
    }

    @inlinable
    public static func axpy(count: Int, alpha: Double, x: UnsafePointer<Double>, y: UnsafeMutablePointer<Double>) {
        cblas_daxpy(blasint(count), alpha, x, 1, y, 1)
    }

    public static func gels(
        m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
        b: UnsafeMutablePointer<Double>, ldb: Int
    ) -> Int {
        Int(LAPACKE_dgels(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), shardwise_lapack_int(m), shardwise_lapack_int(n),
            shardwise_lapack_int(nrhs), a, shardwise_lapack_int(lda), b, shardwise_lapack_int(ldb)))
    }

    public static func gelsd(
        m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
        b: UnsafeMutablePointer<Double>, ldb: Int, s: UnsafeMutablePointer<Double>,
        rcond: Double, rank: inout Int
    ) -> Int {
        var r: shardwise_lapack_int = 0
        let info = LAPACKE_dgelsd(
            LAPACK_ROW_MAJOR, shardwise_lapack_int(m), shardwise_lapack_int(n), shardwise_lapack_int(nrhs),
            a, shardwise_lapack_int(lda), b, shardwise_lapack_int(ldb), s, rcond, &r)
        rank = Int(r)
        return Int(info)
    }
}

extension Float: BLASScalar {
    public static var precisionName: String { "float32" }

    @inlinable
    public static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(
            CblasRowMajor, transpose ? CblasTrans : CblasNoTrans,
            blasint(rows), blasint(cols), alpha, a, blasint(lda), x, 1, beta, y, 1)
    }

    @inlinable
    public static func dot(count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        cblas_sdot(blasint(count), x, 1, y, 1)
    }

    @inlinable
    public static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(blasint(count), alpha, x, 1, y, 1)
    }

    public static func gels(
        m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int,
        b: UnsafeMutablePointer<Float>, ldb: Int
    ) -> Int {
        Int(LAPACKE_sgels(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), shardwise_lapack_int(m), shardwise_lapack_int(n),
            shardwise_lapack_int(nrhs), a, shardwise_lapack_int(lda), b, shardwise_lapack_int(ldb)))
    }

    public static func gelsd(
        m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int,
        b: UnsafeMutablePointer<Float>, ldb: Int, s: UnsafeMutablePointer<Float>,
        rcond: Float, rank: inout Int
    ) -> Int {
        var r: shardwise_lapack_int = 0
        let info = LAPACKE_sgelsd(
            LAPACK_ROW_MAJOR, shardwise_lapack_int(m), shardwise_lapack_int(n), shardwise_lapack_int(nrhs),
            a, shardwise_lapack_int(lda), b, shardwise_lapack_int(ldb), s, rcond, &r)
        rank = Int(r)
        return Int(info)
    }
}

// MARK: - Symmetric positive-definite systems (Double only)
//
// The logistic reference's Newton step solves H Δ = −g with H = XᵀDX + nλI (d × d). It is formed
// and solved in Double whatever the storage, so these wrappers exist for Double alone. H is kept in
// its upper triangle, row-major (which LAPACKE passes on as the lower triangle, column-major).

extension Double {
    /// C ← α·AᵀA + β·C on the upper triangle of C (n × n, leading dimension `ldc`), with A (k × n)
    /// row-major and leading dimension `lda` (cblas_dsyrk, transposed). The strict lower triangle
    /// of C is not touched.
    @inlinable
    public static func syrkTransposed(
        n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(n), blasint(k), alpha, a, blasint(lda),
                    beta, c, blasint(ldc))
    }

    /// Cholesky factorisation A = UᵀU of a symmetric positive-definite A (n × n) row-major, from and
    /// into its upper triangle (LAPACKE_dpotrf). Returns `info`: > 0 when the leading minor of that
    /// order is not positive definite (the factorisation could not be completed).
    public static func potrf(n: Int, a: UnsafeMutablePointer<Double>, lda: Int) -> Int {
        Int(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "U")), shardwise_lapack_int(n), a,
                           shardwise_lapack_int(lda)))
    }

    /// Solves A X = B with the upper Cholesky factor U of A from `potrf` (LAPACKE_dpotrs). B
    /// (n × nrhs) row-major, overwritten with X. Returns `info`.
    public static func potrs(
        n: Int, nrhs: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafeMutablePointer<Double>, ldb: Int
    ) -> Int {
        Int(LAPACKE_dpotrs(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "U")), shardwise_lapack_int(n),
                           shardwise_lapack_int(nrhs), a, shardwise_lapack_int(lda), b, shardwise_lapack_int(ldb)))
    }
}
