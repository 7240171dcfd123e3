import Foundation

/// The one check every large allocation passes before it is made: a dense matrix, a vector whose
/// length came from a file header or a spec. Without it a hostile or mistyped size ends the
/// process in "failed to allocate" (or inside BLAS) instead of an error that names the cause.
///
/// ```swift
/// try MemoryBudget.check(elements: n * d, bytesPerElement: 8, what: "the synthetic X (n=…, d=…)")
/// ```
public enum MemoryBudget {
    /// A smaller budget for the current task and its children (tests, fuzzers, an embedding
    /// program that shares the machine): `MemoryBudget.$limit.withValue(2 << 30) { … }`.
    @TaskLocal public static var limit: Int?

    /// The budget in bytes: `limit` when set, else `SHARDWISE_MEMORY_LIMIT` (e.g. `2GiB`), else the
    /// machine's physical memory.
    public static var physicalBytes: Int {
        if let limit { return limit }
        if let text = ProcessInfo.processInfo.environment["SHARDWISE_MEMORY_LIMIT"], let v = parseBytes(text) { return v }
        return Int(clamping: ProcessInfo.processInfo.physicalMemory)
    }

    /// Throws `DataError.invalid` when `elements × bytesPerElement` overflows or exceeds the
    /// machine's memory; the message names `what`, the need and the limit.
    public static func check(elements: Int, bytesPerElement: Int, what: String) throws {
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: bytesPerElement)
        guard elements >= 0, !overflow else {
            throw DataError.invalid("\(what) needs more memory than can be addressed (\(elements) elements of \(bytesPerElement) bytes)")
        }
        try check(bytes: bytes, what: what)
    }

    /// Throws `DataError.invalid` when `bytes` exceeds the machine's memory.
    public static func check(bytes: Int, what: String) throws {
        let limit = physicalBytes
        guard bytes <= limit else {
            throw DataError.invalid("\(what) needs \(format(bytes)), this machine has \(format(limit))")
        }
    }

    /// The product of `factors`, or nil on overflow (a shape read from a header).
    public static func product(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: f)
            if o { return nil }
            p = r
        }
        return p
    }

    /// "74.5 GiB", "512 MiB": binary units, as `free -h` prints them.
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        let units: [(Double, String)] = [(0x1p40, "TiB"), (0x1p30, "GiB"), (0x1p20, "MiB"), (0x1p10, "KiB")]
        for (scale, name) in units where b >= scale {
            return String(format: b / scale >= 100 ? "%.0f" : "%.1f", b / scale) + " " + name
        }
        return "\(bytes) B"
    }

    static func parseBytes(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int)] = [("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            return Int(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)).map { $0 * scale }
        }
        return Int(t)
    }
}
