import Foundation

/// A seeded, deterministic synthetic linear-regression problem.
///
/// X has unit-variance random entries whose columns are scaled geometrically from 1 down to
/// 1/`condition`, so the condition number of X is close to `condition` (exactly so as n/d → ∞);
/// y = X·w_true + noise·ε. Everything is drawn from `Xoshiro256` with arithmetic only, so the same
/// spec gives the same bytes on every machine, in Float as in Double (Float is the Double data
/// rounded).
///
/// The textual form is what the CLI takes: `n=20000,d=50,noise=0.1,cond=10,seed=7,intercept=1`.
public struct SyntheticSpec: Codable, Sendable, Equatable, CustomStringConvertible {
    public var rows: Int
    public var features: Int
    public var noise: Double
    public var condition: Double
    public var seed: UInt64
    /// Adds a leading column of ones (counted in `features`) and a non-zero true intercept.
    public var intercept: Bool
    /// Labels y ∈ {0, 1} drawn from the logistic model instead of real targets.
    public var classification: Bool

    public init(rows: Int, features: Int, noise: Double = 0.1, condition: Double = 10, seed: UInt64 = 1,
                intercept: Bool = false, classification: Bool = false) {
        self.rows = rows
        self.features = features
        self.noise = noise
        self.condition = condition
        self.seed = seed
        self.intercept = intercept
        self.classification = classification
    }

    /// Parses `key=value` pairs separated by commas. Keys: n, d, noise, cond, seed, intercept,
    /// classification (or task=classification); each at most once.
    public init(parsing text: String) throws {
        self.init(rows: 0, features: 0)
        var seen: [String: String] = [:]   // canonical key → as written
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard kv.count == 2, !kv[1].isEmpty else {
                throw JobError.invalid(field: "", message: "'\(part)' is not key=value")
            }
            let key = kv[0].lowercased(), value = kv[1]
            let canonical = Self.aliases[key] ?? key
            if let earlier = seen[canonical] {
                throw JobError.invalid(field: "", message: earlier == key
                    ? "'\(key)' is given twice" : "'\(key)' and '\(earlier)' are the same key, given twice")
            }
            seen[canonical] = key
            func number<T: LosslessStringConvertible>(_: T.Type) throws -> T {
                guard let v = T(value) else {
                    throw JobError.invalid(field: "", message: "\(key)=\(value) is not \(T.self == Double.self ? "a number" : "an integer")")
                }
                return v
            }
            func flag() throws -> Bool {
                switch value.lowercased() {
                case "1", "true", "yes": return true
                case "0", "false", "no": return false
                default: throw JobError.invalid(field: "", message: "\(key)=\(value): expected 1 or 0 (true/false, yes/no)")
                }
            }
            switch canonical {
            case "n": rows = try number(Int.self)
            case "d": features = try number(Int.self)
            case "noise": noise = try number(Double.self)
            case "cond": condition = try number(Double.self)
            case "seed": seed = try number(UInt64.self)
            case "intercept": intercept = try flag()
            case "task":
                if key == "classification" { classification = try flag(); break }
                guard ["regression", "classification"].contains(value) else {
                    throw JobError.invalid(field: "", message: "task=\(value): expected regression or classification")
                }
                classification = value == "classification"
            default:
                throw JobError.invalid(field: "",
                    message: "unknown key '\(key)' (known: n, d, noise, cond, seed, intercept, task)")
            }
        }
        guard seen["n"] != nil, seen["d"] != nil else {
            throw JobError.invalid(field: "", message: "n=… and d=… are required")
        }
        try validate()
    }

    /// Spellings of the keys; `classification=1` is `task=classification`.
    private static let aliases = ["rows": "n", "features": "d", "condition": "cond", "classification": "task"]

    /// The largest condition number accepted. The columns are scaled from 1 down to 1/cond, and
    /// the LAPACK reference w* is then accurate to about cond·ε relative (QR, ε = 2⁻⁵² ≈ 2.2e-16):
    /// 2e-4 at 1e12, which still makes a yardstick; by 1e16 it has no correct digit, and beyond
    /// (1e300) the scales underflow and LAPACK is handed columns of zeros and subnormals.
    public static let maximumCondition = 1e12
    /// The largest noise level accepted: ε's standard deviation against a signal of unit scale.
    /// At 1e6 the signal is 1e-6 of the targets, still above Float's resolution (2⁻²⁴ ≈ 6e-8);
    /// above it the targets are noise alone in float32, and the sums of squares head for overflow.
    public static let maximumNoise = 1e6

    /// The spec's own rules; the memory it needs is `checkMemory`'s (it depends on the precision).
    /// - Throws: `JobError.invalid` naming the field (`rows`, `condition`, …).
    public func validate() throws {
        guard rows > 0 else { throw JobError.invalid(field: "rows", message: "the row count n must be at least 1, got \(rows)") }
        guard features > 0 else {
            throw JobError.invalid(field: "features", message: "the feature count d must be at least 1, got \(features)")
        }
        guard noise >= 0, noise <= Self.maximumNoise else {
            throw JobError.invalid(field: "noise", message: "noise must be in 0…\(String(format: "%g", Self.maximumNoise)), got \(noise)")
        }
        guard condition >= 1, condition <= Self.maximumCondition else {
            throw JobError.invalid(field: "condition",
                message: "cond must be in 1…\(String(format: "%g", Self.maximumCondition)) (beyond it the exact solution has no accurate digits), got \(condition)")
        }
    }

    /// Checks that X and y (n·d + n entries of `scalarWidth` bytes), and with `withReference`
    /// the float64 copy of X that the LAPACK reference solves on, fit in the machine's memory.
    /// - Throws: `JobError.invalid` with `MemoryBudget`'s message ("… needs 74.5 GiB, this machine has 24.0 GiB").
    public func checkMemory(scalarWidth: Int, withReference: Bool = false) throws {
        let what = "the synthetic data (n=\(rows), d=\(features), \(scalarWidth == 4 ? "float32" : "float64")"
            + (withReference ? ", with the float64 copy the LAPACK reference solves on)" : ")")
        let parts = [MemoryBudget.product([rows, features, scalarWidth]), MemoryBudget.product([rows, scalarWidth]),
                     withReference ? MemoryBudget.product([rows, features, 8]) : 0]
        do {
            var total = 0
            for part in parts {
                guard let part, case let (sum, false) = total.addingReportingOverflow(part) else {
                    throw DataError.invalid("\(what) needs more memory than can be addressed")
                }
                total = sum
            }
            try MemoryBudget.check(bytes: total, what: what)
        } catch let error as DataError {
            throw JobError.invalid(field: "", message: "\(error)")
        }
    }

    public var description: String {
        "n=\(rows),d=\(features),noise=\(noise),cond=\(condition),seed=\(seed)"
            + (intercept ? ",intercept=1" : "") + (classification ? ",task=classification" : "")
    }

    /// The true coefficients the targets were generated from.
    public var trueWeights: [Double] {
        var rng = Xoshiro256(seed: seed, stream: 1)
        return (0..<features).map { j in
            if intercept && j == 0 { return 0.5 }
            return rng.approximateNormal()
        }
    }

    /// Generates the dataset.
    /// - Throws: `JobError.invalid` when the spec breaks its rules or the data would not fit in memory.
    public func generate<Scalar: BLASScalar>(_: Scalar.Type = Scalar.self) throws -> Dataset<Scalar> {
        try validate()
        try checkMemory(scalarWidth: MemoryLayout<Scalar>.size)
        let n = rows, d = features
        let w = trueWeights
        let first = intercept ? 1 : 0
        let scaled = d - first
        var scale = [Double](repeating: 1, count: d)
        if scaled > 1 {
            // Geometric from 1 to 1/cond; a power chain of one ratio keeps it exact-arithmetic.
            let ratio = 1 / Foundationless.root(condition, Double(scaled - 1))
            for k in 1..<scaled { scale[first + k] = scale[first + k - 1] * ratio }
        }
        var x = Matrix<Scalar>(rows: n, columns: d)
        var y = [Scalar](repeating: 0, count: n)
        var rngX = Xoshiro256(seed: seed, stream: 2)
        var rngNoise = Xoshiro256(seed: seed, stream: 3)
        x.withUnsafeMutableBufferPointer { xs in
            var row = [Double](repeating: 0, count: d)
            for i in 0..<n {
                var z = 0.0
                for j in 0..<d {
                    let v = j < first ? 1.0 : rngX.approximateNormal() * scale[j]
                    row[j] = v
                    xs[i * d + j] = Scalar(v)
                    z += v * w[j]
                }
                let e = rngNoise.approximateNormal()
                if classification {
                    // Label 1 with probability σ(z + noise·e), decided by comparing to a uniform.
                    let u = rngNoise.unit()
                    let p = logisticProbability(z + noise * e)
                    y[i] = u < p ? 1 : 0
                } else {
                    y[i] = Scalar(z + noise * e)
                }
            }
        }
        let names = (0..<d).map { j in intercept && j == 0 ? "intercept" : "x\(j - first)" }
        return Dataset(x: x, y: y, featureNames: names, source: "synthetic(\(description))")
    }

    private func logisticProbability(_ z: Double) -> Double { sigmoid(z) }
}

/// Small numeric helpers that avoid platform differences where that matters.
enum Foundationless {
    /// x^(1/k) by Newton's method on tᵏ = x (k ≥ 1): basic arithmetic only.
    static func root(_ x: Double, _ k: Double) -> Double {
        guard k >= 1, x > 0 else { return 1 }
        let ki = Int(k)
        var t = 1 + (x - 1) / k // a start above the root
        for _ in 0..<200 {
            var p = 1.0
            for _ in 0..<(ki - 1) { p *= t }
            let next = t - (p * t - x) / (k * p)
            if next == t { break }
            t = next
        }
        return t
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        var s = self
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }
}

extension SyntheticSpec {
    enum CodingKeys: String, CodingKey { case rows, features, noise, condition, seed, intercept, classification }
    /// A job file needs `rows` and `features`; the rest default as in `init(rows:features:…)`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(rows: try c.decode(Int.self, forKey: .rows), features: try c.decode(Int.self, forKey: .features),
                  noise: try c.decodeIfPresent(Double.self, forKey: .noise) ?? 0.1,
                  condition: try c.decodeIfPresent(Double.self, forKey: .condition) ?? 10,
                  seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1,
                  intercept: try c.decodeIfPresent(Bool.self, forKey: .intercept) ?? false,
                  classification: try c.decodeIfPresent(Bool.self, forKey: .classification) ?? false)
    }
}
