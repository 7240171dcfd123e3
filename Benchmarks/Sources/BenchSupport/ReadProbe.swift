import Dispatch
import Shardwise

/// The memory-read probes: the fastest a single pass over X can go on this machine.
///
/// The read ceiling of a run is the fastest of them per byte (`ceilingSeconds`): a probe typed like
/// X (`sum(_:count:)`) and one that reads the same bytes as 64-bit integers (`sumBytes`). The typed
/// Float probe alone reads slower per byte than the Double one on some machines (16.4 against 22.9
/// GB/s has been seen), which made Float kernels look faster than reading: the ceiling is a property
/// of the memory, not of the element type.
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

    /// Σ (wrapping) of `bytes` bytes read as `UInt64` with four `SIMD8<UInt64>` accumulators:
    /// integer adds have no denormal or NaN slow paths, whatever the bytes hold.
    @inline(never)
    public static func sumBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 {
        typealias V = SIMD8<UInt64>
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        let step = 4 * MemoryLayout<V>.size
        var i = 0
        while i + step <= bytes {
            let q = p + i
            a0 &+= q.loadUnaligned(as: V.self)
            a1 &+= (q + 64).loadUnaligned(as: V.self)
            a2 &+= (q + 128).loadUnaligned(as: V.self)
            a3 &+= (q + 192).loadUnaligned(as: V.self)
            i += step
        }
        var s = ((a0 &+ a1) &+ (a2 &+ a3)).wrappedSum()
        while i < bytes { s &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)); i += 1 }
        return s
    }

    /// The byte probe with `threads` threads, each reading one contiguous part.
    public static func sumBytes(_ p: UnsafeRawPointer, bytes: Int, threads: Int) -> UInt64 {
        guard threads > 1 else { return sumBytes(p, bytes: bytes) }
        let parts = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: threads)
        defer { parts.deallocate() }
        let address = UInt(bitPattern: p), partsAddress = UInt(bitPattern: parts.baseAddress!)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = bytes * t / threads, hi = bytes * (t + 1) / threads
            let base = UnsafeRawPointer(bitPattern: address)!
            UnsafeMutablePointer<UInt64>(bitPattern: partsAddress)![t] = sumBytes(base + lo, bytes: hi - lo)
        }
        return parts.reduce(0, &+)
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
