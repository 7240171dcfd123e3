import Shardwise

/// Parsing of the simulator's quantities as people write them: durations (`50us`, `1ms`, `2.5s`),
/// bandwidths (`10Gbit/s`, `1GB/s`, `100MiB/s`), stragglers, delay distributions and faults.
/// Errors say what was expected.
public enum SimulationUnits {
    /// Seconds from `50us`, `50µs`, `100ns`, `1ms`, `2.5s`, `1min`, or a bare number of seconds.
    public static func duration(_ text: String) throws -> Double {
        let t = text.trimmed
        let (number, unit) = try split(t, what: "duration")
        let scale: Double
        switch unit {
        case "", "s", "sec", "secs", "second", "seconds": scale = 1
        case "ms", "msec": scale = 1e-3
        case "us", "µs", "μs", "usec": scale = 1e-6
        case "ns", "nsec": scale = 1e-9
        case "ps": scale = 1e-12
        case "min", "m": scale = 60
        case "h": scale = 3600
        default:
            throw SimulationError.invalidModel("duration '\(text)': unknown unit '\(unit)' (use ns, us, ms, s, min, e.g. 50us)")
        }
        let v = number * scale
        guard v >= 0, v.isFinite else { throw SimulationError.invalidModel("duration '\(text)' must be ≥ 0") }
        return v
    }

    /// Bytes per second from `10Gbit/s`, `10Gbps`, `1GB/s`, `100MB/s`, `125MiB/s`, `1e9B/s`, or a
    /// bare number of bytes per second. `b`/`bit` are bits, `B` bytes; k, M, G, T are powers of
    /// 1000 and Ki, Mi, Gi, Ti powers of 1024.
    public static func bandwidth(_ text: String) throws -> Double {
        let t = text.trimmed
        let (number, rawUnit) = try split(t, what: "bandwidth")
        var unit = rawUnit
        if unit.isEmpty { return try positive(number, text) }
        for suffix in ["/s", "/sec", "ps"] where unit.hasSuffix(suffix) {
            unit = String(unit.dropLast(suffix.count))
            break
        }
        var multiplier = 1.0
        let prefixes: [(String, Double)] = [
            ("Ki", 1024), ("Mi", 1048576), ("Gi", 1073741824), ("Ti", 1099511627776),
            ("k", 1e3), ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12),
        ]
        for (p, m) in prefixes where unit.hasPrefix(p) && unit.count > p.count {
            multiplier = m
            unit = String(unit.dropFirst(p.count))
            break
        }
        let bitsPerUnit: Double
        switch unit {
        case "b", "bit", "bits": bitsPerUnit = 1
        case "B", "byte", "bytes": bitsPerUnit = 8
        default:
            throw SimulationError.invalidModel(
                "bandwidth '\(text)': unknown unit '\(rawUnit)' (use e.g. 10Gbit/s, 10Gbps, 1GB/s, 100MiB/s; b = bits, B = bytes)")
        }
        return try positive(number * multiplier * bitsPerUnit / 8, text)
    }

    /// Chosen slow ranks: `RANK:FACTOR[,RANK:FACTOR…]`, e.g. `3:10` (rank 3 ten times slower). Only
    /// the syntax is checked here; the ranges (factor ≥ 1, rank in the world) are the model's
    /// (`SimulationModel.validate(nodeCounts:)`).
    public static func stragglers(_ text: String) throws -> [StragglerModel.Slowdown] {
        try text.split(separator: ",").map { item in
            let parts = item.split(separator: ":")
            guard parts.count == 2, let rank = Int(parts[0]), rank >= 0, let factor = Double(parts[1]) else {
                throw SimulationError.invalidModel("stragglers '\(text)': expected RANK:FACTOR[,RANK:FACTOR…], e.g. 3:10")
            }
            return StragglerModel.Slowdown(rank: rank, factor: factor)
        }
    }

    /// A random delay per computation: `exp:MEAN` (e.g. `exp:1ms`) or `lognormal:MEDIAN:SIGMA`
    /// (e.g. `lognormal:1ms:0.5`, σ of the log).
    public static func delay(_ text: String) throws -> DelayDistribution {
        let parts = text.split(separator: ":").map(String.init)
        switch parts.first {
        case "exp", "exponential":
            guard parts.count == 2 else { throw SimulationError.invalidModel("delay '\(text)': expected exp:MEAN, e.g. exp:1ms") }
            return .exponential(mean: try duration(parts[1]))
        case "lognormal", "log-normal":
            guard parts.count == 3, let sigma = Double(parts[2]), sigma >= 0 else {
                throw SimulationError.invalidModel("delay '\(text)': expected lognormal:MEDIAN:SIGMA, e.g. lognormal:1ms:0.5")
            }
            let median = try duration(parts[1])
            guard median > 0 else { throw SimulationError.invalidModel("delay '\(text)': the median must be positive") }
            return .logNormal(mu: log(median), sigma: sigma)
        default:
            throw SimulationError.invalidModel("delay '\(text)': expected exp:MEAN or lognormal:MEDIAN:SIGMA")
        }
    }

    /// A crash: `RANK@TIME+DOWNTIME`, e.g. `2@10ms+50ms` (rank 2 crashes at 10 ms, back at 60 ms).
    public static func fault(_ text: String) throws -> FaultSpec {
        let err = SimulationError.invalidModel("fault '\(text)': expected RANK@TIME+DOWNTIME, e.g. 2@10ms+50ms")
        guard let at = text.firstIndex(of: "@"), let plus = text.lastIndex(of: "+"), at < plus,
              let rank = Int(text[..<at]), rank >= 0 else { throw err }
        return FaultSpec(rank: rank, at: try duration(String(text[text.index(after: at)..<plus])),
                         downtime: try duration(String(text[text.index(after: plus)...])))
    }

    /// Node counts: `1,2,4,8` or a doubling range `1..1024`.
    public static func nodeCounts(_ text: String) throws -> [Int] {
        let err = SimulationError.invalidModel("node counts '\(text)': expected a list like 1,2,4,8 or a doubling range like 1..1024")
        if text.contains(".") {
            let ends = text.split(separator: ".", omittingEmptySubsequences: true)
            guard ends.count == 2, text.contains(".."), let lo = Int(ends[0]), let hi = Int(ends[1]), lo >= 1, hi >= lo else { throw err }
            return Array(sequence(first: lo) { $0 * 2 }.prefix { $0 <= hi })
        }
        let counts = try text.split(separator: ",").map { item -> Int in
            guard let n = Int(item.trimmed), n >= 1 else { throw err }
            return n
        }
        guard !counts.isEmpty else { throw err }
        return counts
    }

    private static func split(_ t: String, what: String) throws -> (Double, String) {
        // The longest prefix that parses as a number is the number; the rest is the unit.
        var end = t.endIndex
        while end > t.startIndex {
            if let v = Double(t[..<end]) { return (v, String(t[end...]).trimmed) }
            end = t.index(before: end)
        }
        throw SimulationError.invalidModel("\(what) '\(t)': expected a number with a unit, e.g. \(what == "duration" ? "50us" : "10Gbit/s")")
    }

    private static func positive(_ v: Double, _ text: String) throws -> Double {
        guard v > 0, v.isFinite else { throw SimulationError.invalidModel("bandwidth '\(text)' must be positive") }
        return v
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension StringProtocol {
    /// Without leading and trailing spaces.
    var trimmed: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
