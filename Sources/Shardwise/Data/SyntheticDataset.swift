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
    /// classification (or task=classification).
    public init(parsing text: String) throws {
        self.init(rows: 0, features: 0)
        var seen = Set<String>()
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard kv.count == 2, !kv[1].isEmpty else {
                throw DataError.invalid("synthetic spec '\(text)': '\(part)' is not key=value")
            }
            let key = kv[0].lowercased(), value = kv[1]
            seen.insert(key)
            func number<T: LosslessStringConvertible>(_: T.Type) throws -> T {
                guard let v = T(value) else {
                    throw DataError.invalid("synthetic spec '\(text)': \(key)=\(value) is not a valid \(T.self)")
                }
                return v
            }
            switch key {
            case "n", "rows": rows = try number(Int.self)
            case "d", "features": features = try number(Int.self)
            case "noise": noise = try number(Double.self)
            case "cond", "condition": condition = try number(Double.self)
            case "seed": seed = try number(UInt64.self)
            case "intercept": intercept = ["1", "true", "yes"].contains(value.lowercased())
            case "classification": classification = ["1", "true", "yes"].contains(value.lowercased())
            case "task":
                guard ["regression", "classification"].contains(value) else {
                    throw DataError.invalid("synthetic spec '\(text)': task must be regression or classification")
                }
                classification = value == "classification"
            default:
                throw DataError.invalid(
                    "synthetic spec '\(text)': unknown key '\(key)' (known: n, d, noise, cond, seed, intercept, task)")
            }
        }
        guard seen.contains("n") || seen.contains("rows"), seen.contains("d") || seen.contains("features") else {
            throw DataError.invalid("synthetic spec '\(text)': n=… and d=… are required")
        }
        try validate()
    }

    public func validate() throws {
        guard rows > 0 else { throw DataError.invalid("synthetic spec: n must be positive, got \(rows)") }
        guard features > 0 else { throw DataError.invalid("synthetic spec: d must be positive, got \(features)") }
        guard noise >= 0, noise.isFinite else { throw DataError.invalid("synthetic spec: noise must be ≥ 0, got \(noise)") }
        guard condition >= 1, condition.isFinite else {
            throw DataError.invalid("synthetic spec: cond must be ≥ 1, got \(condition)")
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
    public func generate<Scalar: BLASScalar>(_: Scalar.Type = Scalar.self) -> Dataset<Scalar> {
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
