/// What is minimised. Every objective is a sum over rows plus an optional ℓ2 term, so its gradient
/// is additive over shards: each shard returns Σᵢ ∇ℓᵢ through the same `GradientKernel`, and
/// whoever combines the sums calls `finish` once with the total row count.
///
/// - `leastSquares`: L(w) = 1/(2n)·|Xw − y|²
/// - `ridge(λ)`: L(w) = 1/(2n)·|Xw − y|² + λ/2·|w|²
/// - `logistic(λ)`: L(w) = 1/n·Σ[log(1 + e^{xᵢᵀw}) − yᵢxᵢᵀw] + λ/2·|w|², labels in {0, 1}
public enum Objective: Codable, Sendable, Equatable, CustomStringConvertible {
    case leastSquares
    case ridge(lambda: Double)
    case logistic(lambda: Double)

    /// The link the kernel applies between its two passes.
    public var link: Link {
        switch self {
        case .leastSquares, .ridge: return .identity
        case .logistic: return .logistic
        }
    }

    /// λ of the ℓ2 term (0 for plain least squares).
    public var lambda: Double {
        switch self {
        case .leastSquares: return 0
        case .ridge(let l), .logistic(let l): return l
        }
    }

    public var name: String {
        switch self {
        case .leastSquares: return "least-squares"
        case .ridge: return "ridge"
        case .logistic: return "logistic"
        }
    }

    public var description: String {
        lambda > 0 || self != .leastSquares ? "\(name)(λ=\(lambda))" : name
    }

    /// Builds an objective from its CLI name and λ. Least squares takes no λ: with λ > 0 it is
    /// ridge, and saying so is the caller's business, not a silent switch.
    /// - Throws: `JobError.invalid` for an unknown name, a λ that `validate()` refuses, or λ ≠ 0
    ///   with least squares.
    public init(name: String, lambda: Double = 0) throws {
        switch name {
        case "least-squares", "leastsquares", "ls", "ols":
            guard lambda == 0 else {
                throw JobError.invalid(field: "", message: "least-squares has no ℓ2 term; for λ = \(lambda) use ridge (or logistic)")
            }
            self = .leastSquares
        case "ridge": self = .ridge(lambda: lambda)
        case "logistic": self = .logistic(lambda: lambda)
        default:
            throw JobError.invalid(field: "", message: "unknown objective '\(name)' (known: least-squares, ridge, logistic)")
        }
        try validate()
    }

    /// λ is a finite number ≥ 0: a negative λ rewards large weights, so the loss has no minimum
    /// and training "diverges" for a reason no step size can fix.
    /// - Throws: `JobError.invalid` naming the JSON field (`ridge.lambda`, `logistic.lambda`).
    public func validate() throws {
        switch self {
        case .leastSquares: return
        case .ridge(let l), .logistic(let l):
            guard l >= 0, l.isFinite else {
                throw JobError.invalid(field: "\(self == .ridge(lambda: l) ? "ridge" : "logistic").lambda",
                                       message: "λ must be a finite number ≥ 0, got \(l)")
            }
        }
    }

    /// Turns a gradient *sum* over `rows` rows into the gradient of the mean loss:
    /// g ← g/n + λw (in place).
    public func finishGradient<Scalar: BLASScalar>(
        _ g: UnsafeMutablePointer<Scalar>, w: UnsafePointer<Scalar>, count: Int, rows: Int
    ) {
        let inv = Scalar(1 / Double(max(rows, 1)))
        let l = Scalar(lambda)
        for j in 0..<count { g[j] = g[j] * inv + l * w[j] }
    }

    /// The mean loss from a loss *sum* over `rows` rows, plus the ℓ2 term at w.
    public func finishLoss<Scalar: BLASScalar>(_ lossSum: Double, rows: Int, w: some Collection<Scalar>) -> Double {
        var l = lossSum / Double(max(rows, 1))
        if lambda > 0 { l += 0.5 * lambda * w.reduce(0.0) { $0 + Double($1) * Double($1) } }
        return l
    }

    /// The smoothness constant (the Lipschitz constant of ∇L) from λ_max(XᵀX):
    /// λ_max/n + λ for least squares and ridge, λ_max/(4n) + λ for logistic (σ′ ≤ ¼).
    public func smoothness(gramEigenvalue: Double, rows: Int) -> Double {
        let base = gramEigenvalue / Double(max(rows, 1))
        switch self {
        case .leastSquares, .ridge: return base + lambda
        case .logistic: return base / 4 + lambda
        }
    }

    /// The exact minimiser by LAPACK (QR/SVD for least squares and ridge; Newton with LAPACK solves
    /// for logistic).
    public func exactSolution<Scalar: BLASScalar>(_ data: Dataset<Scalar>) throws -> [Double] {
        switch self {
        case .leastSquares, .ridge:
            // Solved in Double whatever the storage, so the yardstick is as exact as it can be.
            let d = data.converted(to: Double.self)
            return try LeastSquares.solve(x: d.x.view, y: d.y[...], ridge: lambda).w
        case .logistic:
            return try LeastSquares.solveLogistic(x: data.x.view, y: data.y[...], ridge: lambda).map(Double.init)
        }
    }
}
