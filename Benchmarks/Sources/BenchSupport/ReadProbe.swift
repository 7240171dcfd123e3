import Dispatch
import Shardwise

/// The memory-read probe: the fastest a single pass over X can go on this machine.
///
/// It sums every element of a buffer with four independent SIMD accumulators (four `SIMD8<Double>`
/// or four `SIMD16<Float>`, 256 bytes in flight per step), so neither the add latency nor the
/// instruction count limits it even when compiled for baseline x86-64 (SSE2): what is left is the
/// memory system. A kernel's "ratio to the probe" is how close it gets to just reading its input.
public enum ReadProbe {
    /// Σ of `count` Doubles (the value only defeats dead-code elimination).
    @inline(never)
    public static func sum(_ p: UnsafePointer<Double>, count: Int) -> Double {
        typealias V = SIMD8<Double>
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        let raw = UnsafeRawPointer(p)
        let step = 4 * V.scalarCount
        var i = 0
        while i + step <= count {
            let q = raw + i * 8
            a0 += q.loadUnaligned(as: V.self)
            a1 += (q + 64).loadUnaligned(as: V.self)
            a2 += (q + 128).loadUnaligned(as: V.self)
            a3 += (q + 192).loadUnaligned(as: V.self)
            i += step
        }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }

    /// Σ of `count` Floats.
    @inline(never)
    public static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        typealias V = SIMD16<Float>
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        let raw = UnsafeRawPointer(p)
        let step = 4 * V.scalarCount
        var i = 0
        while i + step <= count {
            let q = raw + i * 4
            a0 += q.loadUnaligned(as: V.self)
            a1 += (q + 64).loadUnaligned(as: V.self)
            a2 += (q + 128).loadUnaligned(as: V.self)
            a3 += (q + 192).loadUnaligned(as: V.self)
            i += step
        }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }

    /// The probe over any `BLASScalar` buffer.
    public static func sum<Scalar: BLASScalar>(_ p: UnsafePointer<Scalar>, count: Int) -> Double {
        if Scalar.self == Double.self {
            return p.withMemoryRebound(to: Double.self, capacity: count) { sum($0, count: count) }
        } else if Scalar.self == Float.self {
            return Double(p.withMemoryRebound(to: Float.self, capacity: count) { sum($0, count: count) })
        }
        fatalError("ReadProbe supports Float and Double")
    }

    /// The probe with `threads` threads, each summing one contiguous part (as the nodes of the
    /// threads backend each read their own shard).
    public static func sum<Scalar: BLASScalar>(_ p: UnsafePointer<Scalar>, count: Int, threads: Int) -> Double {
        guard threads > 1 else { return sum(p, count: count) }
        let parts = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        defer { parts.deallocate() }
        let address = UInt(bitPattern: p)
        let partsAddress = UInt(bitPattern: parts.baseAddress!)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = count * t / threads, hi = count * (t + 1) / threads
            let base = UnsafePointer<Scalar>(bitPattern: address)!
            UnsafeMutablePointer<Double>(bitPattern: partsAddress)![t] = sum(base + lo, count: hi - lo)
        }
        return parts.reduce(0, +)
    }
}
