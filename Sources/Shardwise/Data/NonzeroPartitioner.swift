/// Cuts sparse rows into contiguous shards balanced by nonzeros, not rows: a shard's gradient
/// costs its nonzeros, and one row of rcv1 may hold a thousand times another's.
///
/// The cut minimises the largest shard's nonzero count over all cuts into `shards` contiguous,
/// non-empty row ranges (the linear-partition problem), by binary search on that bound B:
/// a bound is feasible when the greedy cut (each shard as long as it stays ≤ B) needs at most
/// `shards` pieces, and the smallest feasible B is the optimum. Each greedy step finds its end by
/// binary search on the row offsets, so the whole costs O(shards · log(rows) · log(nonzeros)).
/// Fewer pieces than shards are then split (the longest in rows first) — splitting never raises
/// the largest count. Deterministic, so every backend and every process makes the same shards.
///
/// ```swift
/// let ranges = try NonzeroPartitioner.ranges(rowOffsets: x.rowOffsets, shards: 4)
/// ```
public enum NonzeroPartitioner {
    /// The row ranges of `shards` shards, in order, covering every row once.
    /// - Parameter rowOffsets: a CSR matrix's row offsets (rows + 1, non-decreasing, from 0).
    /// - Throws: `DataError.invalid` when there are more shards than rows or no shards.
    public static func ranges(rowOffsets: [Int64], shards: Int) throws -> [Range<Int>] {
        let rows = rowOffsets.count - 1
        guard shards > 0 else { throw DataError.invalid("cannot cut data into \(shards) shards") }
        guard shards <= rows else {
            throw DataError.invalid("cannot cut \(max(rows, 0)) rows into \(shards) shards: more shards than rows")
        }
        let total = rowOffsets[rows] - rowOffsets[0]
        var widest: Int64 = 0
        for i in 0..<rows { widest = max(widest, rowOffsets[i + 1] - rowOffsets[i]) }
        // The optimum lies in [max(widest row, ⌈total / shards⌉), total].
        var lo = max(widest, (total + Int64(shards) - 1) / Int64(shards)), hi = total
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if greedy(rowOffsets, bound: mid, limit: shards) != nil { hi = mid } else { lo = mid + 1 }
        }
        var pieces = greedy(rowOffsets, bound: lo, limit: shards)!
        while pieces.count < shards {
            // Split the piece with the most rows (the first such), halving its rows.
            var k = 0
            for p in pieces.indices where pieces[p].count > pieces[k].count { k = p }
            let piece = pieces[k], middle = piece.lowerBound + piece.count / 2
            pieces.replaceSubrange(k...k, with: [piece.lowerBound..<middle, middle..<piece.upperBound])
        }
        return pieces
    }

    /// The greedy cut under `bound`: each piece extends as far as its nonzeros stay ≤ bound (at
    /// least one row). nil when it needs more than `limit` pieces.
    static func greedy(_ offsets: [Int64], bound: Int64, limit: Int) -> [Range<Int>]? {
        let rows = offsets.count - 1
        var pieces: [Range<Int>] = []
        var start = 0
        while start < rows {
            guard pieces.count < limit else { return nil }
            // The last end e in start+1 … rows with offsets[e] − offsets[start] ≤ bound.
            let cap = offsets[start] + bound
            var a = start + 1, b = rows
            if offsets[a] > cap { return nil }   // a single row above the bound
            while a < b {
                let m = a + (b - a + 1) / 2
                if offsets[m] <= cap { a = m } else { b = m - 1 }
            }
            pieces.append(start..<a)
            start = a
        }
        return pieces
    }

    /// The nonzeros of each range (for reports and tests).
    public static func nonzeros(rowOffsets: [Int64], ranges: [Range<Int>]) -> [Int] {
        ranges.map { Int(rowOffsets[$0.upperBound] - rowOffsets[$0.lowerBound]) }
    }
}
