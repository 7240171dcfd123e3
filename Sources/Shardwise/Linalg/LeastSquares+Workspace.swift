/// How large a problem the LAPACK reference can take, checked before anything is allocated for it.
///
/// A LIBSVM line with a mistyped index (`40000000:1`) makes X 2 × 40 000 000: small enough to
/// hold, but the reference would then copy it twice more (our working copy, LAPACKE's transposed
/// one) and hand LAPACK vectors it cannot take. Three limits, each named in the error:
///
/// - memory: A and B, LAPACKE's column-major copies of both, and the SVD's workspace;
/// - `lapack_int` is 32 bits: every dimension and the element count m·d must fit, or the
///   conversion traps and LAPACK's own index arithmetic wraps;
/// - OpenBLAS (0.3.21 as Debian ships it) copies a strided vector into its fixed 128 MiB work
///   buffer inside `?ger`, which `?gelsd` reaches through `?ormlq` on a wide X (rows are strided
///   in the column-major copy); a row longer than the buffer writes past it and the process dies
///   with SIGSEGV (2 × 17 000 000 does; 17 000 000 × 2 by QR or SVD does not, its columns being
///   contiguous). 120 MiB leaves room for the buffer's alignment offsets.
extension LeastSquares {
    /// The most columns (the length of a row) the reference hands LAPACK, in elements of `Scalar`.
    public static func maxColumns<Scalar: BLASScalar>(_: Scalar.Type) -> Int {
        (120 << 20) / MemoryLayout<Scalar>.stride
    }

    /// Throws `DataError.invalid` naming `what` (the data's source) when the reference for
    /// X (`rows` × `columns`, plus `columns` augmented rows for ridge) is beyond the limits above;
    /// `advice` (what the caller can do instead) ends the message.
    public static func checkWorkspace<Scalar: BLASScalar>(
        rows n: Int, columns d: Int, ridge lambda: Double = 0, as _: Scalar.Type = Scalar.self, what: String,
        advice: String? = nil
    ) throws {
        let tail = advice.map { "; \($0)" } ?? ""
        let m = n + (lambda > 0 ? d : 0)
        let subject = "\(what): the LAPACK reference for X of \(n) × \(d)"
        let (cells, overflow) = m.multipliedReportingOverflow(by: d)
        guard !overflow, cells <= Int(Int32.max), m <= Int(Int32.max), d <= Int(Int32.max) else {
            throw DataError.invalid(
                "\(subject) has more than \(Int32.max) elements, beyond LAPACK's 32-bit indices\(tail)")
        }
        let limit = maxColumns(Scalar.self)
        guard d <= limit else {
            throw DataError.invalid(
                "\(subject) has \(d) columns; LAPACK here takes at most \(limit) (OpenBLAS's work buffer)\(tail)")
        }
        // A, LAPACKE's transpose of A, B and its transpose (max(m, d) each), and the SVD's
        // workspace: at most a few vectors of max(m, d) and a min(m, d)² block.
        let long = max(m, d), short = min(m, d)
        let elements = 2 * cells + 2 * long + 12 * long + short * short
        do {
            try MemoryBudget.check(elements: elements, bytesPerElement: MemoryLayout<Scalar>.stride, what: subject)
        } catch DataError.invalid(let message) {
            throw DataError.invalid(message + tail)
        }
    }
}

extension LeastSquares {
    /// The limits for the logistic reference (`solveLogistic`), which never copies X: y, Xw and XΔ
    /// (n Doubles each), two blocks of rows, and H with its factor (d × d each, whose element count
    /// LAPACK's 32-bit `lapack_int` must hold). Throws `DataError.invalid` naming `what`.
    public static func checkNewtonWorkspace(rows n: Int, columns d: Int, what: String, advice: String? = nil) throws {
        let tail = advice.map { "; \($0)" } ?? ""
        let subject = "\(what): the Newton reference for X of \(n) × \(d)"
        let (cells, overflow) = d.multipliedReportingOverflow(by: d)
        guard !overflow, cells <= Int(Int32.max) else {
            throw DataError.invalid("\(subject) needs a \(d) × \(d) Hessian, beyond LAPACK's 32-bit indices\(tail)")
        }
        let blockRows = max(64, LogisticNewton<Double>.blockBytes / (8 * max(d, 1)))
        let (vectors, o1) = n.multipliedReportingOverflow(by: 3)
        let (blocks, o2) = min(n, blockRows).multipliedReportingOverflow(by: 2 * d)
        guard !o1, !o2 else { throw DataError.invalid("\(subject) needs more memory than can be addressed\(tail)") }
        do {
            try MemoryBudget.check(elements: vectors + blocks + 2 * cells + 4 * d, bytesPerElement: 8, what: subject)
        } catch DataError.invalid(let message) {
            throw DataError.invalid(message + tail)
        }
    }
}
