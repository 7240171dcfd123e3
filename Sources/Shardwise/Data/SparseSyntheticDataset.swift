#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A seeded, deterministic synthetic sparse problem, shaped like text data: a few nonzeros per
/// row, feature frequencies following a power law (Zipf), labels from a planted model.
///
/// Row i holds kᵢ distinct features, kᵢ uniform in 1 … 2m − 1 (mean m = `nonzerosPerRow`, capped
/// at d). Features are drawn with P(rank r) ∝ 1 / (r + 1)^s (`zipf` = s; 0 is uniform), rank r
/// being column π(r) for a seeded permutation π, so frequent columns are spread over the index
/// range as in a real vocabulary. A draw already in the row is drawn again (up to 64 tries per
/// feature; a row that still falls short keeps fewer, which only happens when m nears the number
/// of columns the law makes likely). Values are approximately normal, scaled by 1/√m so that
/// z = xᵀw_true has unit-order variance; y = z + noise·ε (least squares), or y ∈ {0, 1} with
/// P(1) = σ(z + noise·ε) (`classification`).
///
/// Everything is drawn from `Xoshiro256` streams with integer and exact arithmetic, except the
/// table of the law's weights (r + 1)^−s, which takes `exp` and `log` from libm: the same spec
/// gives the same matrix wherever those round alike (s = 0 uses neither). Float is the Double
/// data rounded. Columns within a row come out sorted.
public struct SparseSyntheticSpec: Codable, Sendable, Equatable, CustomStringConvertible {
    public var rows: Int
    public var features: Int
    /// The average number of nonzeros per row, m.
    public var nonzerosPerRow: Int
    /// The power-law exponent s of feature frequencies (0: uniform; text is near 1).
    public var zipf: Double
    public var noise: Double
    public var seed: UInt64
    public var classification: Bool

    public init(rows: Int, features: Int, nonzerosPerRow: Int, zipf: Double = 1, noise: Double = 0.1,
                seed: UInt64 = 1, classification: Bool = false) {
        self.rows = rows
        self.features = features
        self.nonzerosPerRow = nonzerosPerRow
        self.zipf = zipf
        self.noise = noise
        self.seed = seed
        self.classification = classification
    }

    /// The largest exponent accepted: at s = 10 the second column is already 1024 times rarer
    /// than the first; beyond, rows are one feature drawn again and again.
    public static let maximumZipf = 10.0

    /// The spec's own rules.
    /// - Throws: `JobError.invalid` naming the field.
    public func validate() throws {
        guard rows > 0 else { throw JobError.invalid(field: "rows", message: "the row count n must be at least 1, got \(rows)") }
        guard features > 0, features <= CSRMatrix<Double>.maximumColumns else {
            throw JobError.invalid(field: "features",
                                   message: "the feature count d must be in 1…\(CSRMatrix<Double>.maximumColumns), got \(features)")
        }
        guard nonzerosPerRow >= 1 else {
            throw JobError.invalid(field: "nonzerosPerRow", message: "nonzeros per row must be at least 1, got \(nonzerosPerRow)")
        }
        guard zipf >= 0, zipf <= Self.maximumZipf else {
            throw JobError.invalid(field: "zipf", message: "the Zipf exponent must be in 0…\(Self.maximumZipf), got \(zipf)")
        }
        guard noise >= 0, noise <= SyntheticSpec.maximumNoise else {
            throw JobError.invalid(field: "noise", message: "noise must be in 0…\(SyntheticSpec.maximumNoise), got \(noise)")
        }
    }

    public var description: String {
        "sparse: n=\(rows),d=\(features),nnz=\(nonzerosPerRow),zipf=\(zipf),noise=\(noise),seed=\(seed)"
            + (classification ? ",task=classification" : "")
    }

    /// Nonzeros per row at most: 2m − 1, capped at d.
    var widestRow: Int { min(features, 2 * nonzerosPerRow - 1) }

    /// The true coefficients the targets were generated from.
    public var trueWeights: [Double] {
        var rng = Xoshiro256(seed: seed, stream: 1)
        return (0..<features).map { _ in rng.approximateNormal() }
    }

    /// Generates the dataset.
    /// - Throws: `JobError.invalid` when the spec breaks its rules or the data would not fit in memory.
    public func generate<Scalar: BLASScalar>(_: Scalar.Type = Scalar.self) throws -> SparseDataset<Scalar> {
        try validate()
        let n = rows, d = features
        // The nonzeros at most (values, indices), a label and an offset per row, three d-tables.
        let parts = [MemoryBudget.product([n, widestRow, Scalar.byteWidth + 4]), MemoryBudget.product([n, 8 + Scalar.byteWidth]),
                     MemoryBudget.product([d, 20])]
        do {
            guard let nonzeros = parts[0], let perRow = parts[1], let perColumn = parts[2],
                  case let (partial, false) = nonzeros.addingReportingOverflow(perRow),
                  case let (total, false) = partial.addingReportingOverflow(perColumn) else {
                throw DataError.invalid("the synthetic sparse data (\(description)) needs more memory than can be addressed")
            }
            try MemoryBudget.check(bytes: total, what: "the synthetic sparse data (\(description))")
        } catch let error as DataError {
            throw JobError.invalid(field: "", message: "\(error)")
        }

        // The cumulative law over ranks, and the permutation from rank to column.
        var cumulative = [Double](repeating: 0, count: d)
        var sum = 0.0
        for r in 0..<d {
            sum += zipf == 0 ? 1 : 1 / Self.power(Double(r + 1), zipf)
            cumulative[r] = sum
        }
        var column = Array(0..<Int32(d))
        var rngPermutation = Xoshiro256(seed: seed, stream: 4)
        for k in stride(from: d - 1, to: 0, by: -1) {
            column.swapAt(k, Int(rngPermutation.next() % UInt64(k + 1)))
        }

        let w = trueWeights
        let scale = 1 / Self.squareRoot(Double(nonzerosPerRow))
        var offsets: [Int64] = [0]
        offsets.reserveCapacity(n + 1)
        var indices: [Int32] = [], values: [Scalar] = []
        indices.reserveCapacity(n * nonzerosPerRow)
        values.reserveCapacity(n * nonzerosPerRow)
        var y = [Scalar](repeating: 0, count: n)
        var rngShape = Xoshiro256(seed: seed, stream: 5)
        var rngValues = Xoshiro256(seed: seed, stream: 2)
        var rngNoise = Xoshiro256(seed: seed, stream: 3)
        var row: [Int32] = []
        var inRow = Set<Int32>()
        let span = UInt64(widestRow)
        for i in 0..<n {
            let k = 1 + Int(rngShape.next() % span)
            row.removeAll(keepingCapacity: true)
            inRow.removeAll(keepingCapacity: true)
            for _ in 0..<k {
                for _ in 0..<64 {
                    let c = column[Self.rank(of: rngShape.unit() * sum, in: cumulative)]
                    if inRow.insert(c).inserted { row.append(c); break }
                }
            }
            row.sort()
            var z = 0.0
            for c in row {
                let v = rngValues.approximateNormal() * scale
                indices.append(c)
                values.append(Scalar(v))
                z += v * w[Int(c)]
            }
            offsets.append(Int64(indices.count))
            let e = rngNoise.approximateNormal()
            if classification {
                let u = rngNoise.unit()
                y[i] = u < sigmoid(z + noise * e) ? 1 : 0
            } else {
                y[i] = Scalar(z + noise * e)
            }
        }
        let x = CSRMatrix<Scalar>(trustedRows: n, columns: d, rowOffsets: offsets, columnIndices: indices, values: values)
        return SparseDataset(x: x, y: y, source: "synthetic(\(description))")
    }

    /// The first rank whose cumulative weight exceeds `u` (binary search).
    static func rank(of u: Double, in cumulative: [Double]) -> Int {
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// x^s for x ≥ 1 by exp(s·log x) (libm).
    static func power(_ x: Double, _ s: Double) -> Double { exp(s * log(x)) }

    static func squareRoot(_ x: Double) -> Double { x.squareRoot() }
}

extension SparseSyntheticSpec {
    /// Parses the CLI's `--synthetic` text when it names `nnz`: `n=100000,d=50000,nnz=40,zipf=1.1`
    /// (keys n, d, nnz, zipf, noise, seed, task=classification or classification=1; each at most
    /// once; n, d and nnz required).
    /// - Throws: `JobError.invalid` naming the key.
    public init(parsing text: String) throws {
        self.init(rows: 0, features: 0, nonzerosPerRow: 0)
        let aliases = ["rows": "n", "features": "d", "nonzeros": "nnz", "classification": "task"]
        var seen: [String: String] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard kv.count == 2, !kv[1].isEmpty else { throw JobError.invalid(field: "", message: "'\(part)' is not key=value") }
            let key = kv[0].lowercased(), value = kv[1]
            let canonical = aliases[key] ?? key
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
            switch canonical {
            case "n": rows = try number(Int.self)
            case "d": features = try number(Int.self)
            case "nnz": nonzerosPerRow = try number(Int.self)
            case "zipf": zipf = try number(Double.self)
            case "noise": noise = try number(Double.self)
            case "seed": seed = try number(UInt64.self)
            case "task":
                if key == "classification" {
                    switch value.lowercased() {
                    case "1", "true", "yes": classification = true
                    case "0", "false", "no": classification = false
                    default: throw JobError.invalid(field: "", message: "\(key)=\(value): expected 1 or 0 (true/false, yes/no)")
                    }
                    break
                }
                guard ["regression", "classification"].contains(value) else {
                    throw JobError.invalid(field: "", message: "task=\(value): expected regression or classification")
                }
                classification = value == "classification"
            default:
                throw JobError.invalid(field: "", message: "unknown key '\(key)' for sparse data (known: n, d, nnz, zipf, noise, seed, task)")
            }
        }
        guard seen["n"] != nil, seen["d"] != nil, seen["nnz"] != nil else {
            throw JobError.invalid(field: "", message: "n=…, d=… and nnz=… are required")
        }
        try validate()
    }

    /// Whether `--synthetic` text describes sparse data: it names `nnz` (or `nonzeros`).
    public static func describesSparse(_ text: String) -> Bool {
        text.split(separator: ",").contains { part in
            let key = part.split(separator: "=", maxSplits: 1).first.map { $0.trimmingWhitespace().lowercased() }
            return key == "nnz" || key == "nonzeros"
        }
    }
}
