/// The few vector operations the solvers need, on `Double` arrays, through BLAS (a scalar
/// reduction loop does not vectorise with Swift's baseline x86-64 code generation, and d may be
/// in the millions).
enum Vectors {
    /// aᵀb.
    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "dot of \(a.count) and \(b.count) entries")
        guard !a.isEmpty else { return 0 }
        return a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in Double.dot(count: a.count, ap.baseAddress!, bp.baseAddress!) }
        }
    }

    /// |a|₂.
    static func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

    /// y ← y + αx.
    static func axpy(_ alpha: Double, _ x: [Double], _ y: inout [Double]) {
        precondition(x.count == y.count, "axpy of \(x.count) and \(y.count) entries")
        guard !x.isEmpty else { return }
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { Double.axpy(count: x.count, alpha: alpha, x: xp.baseAddress!, y: $0.baseAddress!) }
        }
    }

    /// x + αd (a new array).
    static func step(_ x: [Double], _ alpha: Double, _ d: [Double]) -> [Double] {
        var out = x
        axpy(alpha, d, &out)
        return out
    }

    /// x ← αx.
    static func scale(_ x: inout [Double], by alpha: Double) {
        for j in x.indices { x[j] *= alpha }
    }
}
