import Shardwise
#if canImport(Glibc)
import Glibc
#endif

/// Seconds taken by `body` (monotonic clock).
@inline(__always)
public func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = MonotonicClock.now()
    try body()
    return MonotonicClock.now() - start
}

/// On-CPU seconds of the calling thread taken by `body` (CLOCK_THREAD_CPUTIME_ID). For a
/// single-threaded kernel on a shared machine this leaves out the time the scheduler gives to other
/// processes (stalls on memory still count): other builds on the same two cores inflate wall time
/// by whole time slices, which would drown a 10% difference between kernels.
@inline(__always)
public func cpuSeconds(_ body: () throws -> Void) rethrows -> Double {
    let start = threadCPUTime()
    try body()
    return threadCPUTime() - start
}

public func threadCPUTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The median of a non-empty sample.
public func median(_ xs: [Double]) -> Double {
    precondition(!xs.isEmpty, "median of nothing")
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Keeps a value alive and opaque to the optimizer.
@inline(never)
public func consume<T>(_ x: T) { _ = x }

/// Fills `count` entries with seeded values in [−1, 1): cheap (one xorshift per entry), so a 1e8
/// entry X is ready in a fraction of a second.
public func fillRandom<Scalar: BLASScalar>(_ p: UnsafeMutablePointer<Scalar>, count: Int, seed: UInt64) {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    for i in 0..<count {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        let u = (s &* 0x2545_F491_4F6C_DD1D) >> 11            // 53 random bits
        p[i] = Scalar(Double(u) * 0x1p-52 - 1)
    }
}

/// A random n × d problem: X, y, w, and the buffers the kernels write into — allocated once, so
/// that every kernel and the probe read the very same X.
public final class KernelFixture<Scalar: BLASScalar>: @unchecked Sendable {
    public let x: Matrix<Scalar>
    public let y: [Scalar]
    public let w: UnsafeMutablePointer<Scalar>
    public let g: UnsafeMutablePointer<Scalar>
    public let r: UnsafeMutablePointer<Scalar>
    /// The block-fused cblas kernel (`GradientKernel`, `.blas` path, default block size unless told otherwise).
    public let fused: GradientKernel<Scalar>
    /// The hand-written AVX2+FMA kernel (`.avx2` path) on the same X.
    public let avx2: GradientKernel<Scalar>

    public var rows: Int { x.rows }
    public var columns: Int { x.columns }
    /// Bytes of X: what every kernel must read once.
    public var bytes: Int { x.count * Scalar.byteWidth }
    public var label: String { "\(Scalar.precisionName) \(rows)×\(columns)" }

    public init(rows: Int, columns: Int, seed: UInt64 = 42, blockBytes: Int? = nil) {
        var x = Matrix<Scalar>(rows: rows, columns: columns)
        x.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, count: $0.count, seed: seed) }
        self.x = x
        var y = [Scalar](repeating: 0, count: rows)
        y.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, count: rows, seed: seed + 1) }
        self.y = y
        w = .allocate(capacity: columns)
        fillRandom(w, count: columns, seed: seed + 2)
        g = .allocate(capacity: columns)
        g.initialize(repeating: 0, count: columns)
        r = .allocate(capacity: rows)
        r.initialize(repeating: 0, count: rows)
        fused = GradientKernel(x: x.view, y: y[...], blockBytes: blockBytes ?? GradientKernel<Scalar>.defaultBlockBytes, path: .blas)
        avx2 = GradientKernel(x: x.view, y: y[...], path: .avx2)
    }

    deinit {
        w.deallocate(); g.deallocate(); r.deallocate()
    }

    /// One typed probe pass over X.
    public func probe(threads: Int = 1) {
        x.withUnsafeBufferPointer { consume(ReadProbe.sum($0.baseAddress!, count: $0.count, threads: threads)) }
    }

    /// One byte probe pass over X.
    public func probeBytes(threads: Int = 1) {
        x.withUnsafeBufferPointer { consume(ReadProbe.sumBytes(UnsafeRawPointer($0.baseAddress!), bytes: bytes, threads: threads)) }
    }

    /// The read ceiling now: the faster of the two probes (on-CPU seconds of one pass over X).
    public func ceilingSeconds() -> Double {
        min(cpuSeconds { probe() }, cpuSeconds { probeBytes() })
    }

    /// One fused gradient (the default kernel).
    public func runFused() { consume(fused.gradientSum(w: w, into: g)) }

    /// One gradient by `kernel`.
    public func run(_ k: KernelName) {
        switch k {
        case .probe: probe()
        case .probeBytes: probeBytes()
        case .fused: runFused()
        case .twoPass: runTwoPass()
        case .avx2: consume(avx2.gradientSum(w: w, into: g))
        }
    }

    /// One fused gradient with a kernel built for another block size.
    public func runFused(_ kernel: GradientKernel<Scalar>) { consume(kernel.gradientSum(w: w, into: g)) }

    /// One two-pass gradient (the reference: two gemv over all of X).
    public func runTwoPass() {
        consume(twoPassGradientSum(x: x.view, y: y[...], w: w, g: g, r: r))
    }
}

/// Paired samples: every round runs the probe and each kernel back to back on the same X, so a
/// ratio compares runs a few milliseconds apart (the machine is shared; its speed drifts).
public struct PairedKernelSamples: Sendable {
    public var seconds: [KernelName: [Double]] = [:]
    /// Per round, kernel GB/s ÷ the read ceiling of the same round (the faster probe).
    public var ratios: [KernelName: [Double]] = [:]
    /// Per round, the read ceiling's seconds.
    public var ceilings: [Double] = []
    public let bytes: Int

    public func medianGBps(_ k: KernelName) -> Double { Double(bytes) / median(seconds[k]!) / 1e9 }
    public func medianRatio(_ k: KernelName) -> Double { median(ratios[k]!) }
    /// The read ceiling's GB/s (median over rounds).
    public var ceilingGBps: Double { Double(bytes) / median(ceilings) / 1e9 }
    public func medianSeconds(_ k: KernelName) -> Double { median(seconds[k]!) }
}

extension KernelFixture {
    /// `rounds` rounds of the probes, fused, two-pass, avx2 (order rotated each round), after one warm-up.
    public func pairedSamples(rounds: Int, kernels: [KernelName] = KernelName.allCases) -> PairedKernelSamples {
        var out = PairedKernelSamples(bytes: bytes)
        for k in kernels { run(k) }   // warm-up: page in, code paths, OpenBLAS buffers
        for round in 0..<rounds {
            var t: [KernelName: Double] = [:]
            for i in kernels.indices {
                let k = kernels[(i + round) % kernels.count]
                t[k] = cpuSeconds { run(k) }
            }
            // The ceiling of the round: the faster probe, per byte (both read the same X).
            let ceiling = [t[.probe], t[.probeBytes]].compactMap { $0 }.min()
            if let ceiling { out.ceilings.append(ceiling) }
            for (k, s) in t {
                out.seconds[k, default: []].append(s)
                if let ceiling { out.ratios[k, default: []].append(ceiling / s) }
            }
        }
        return out
    }
}
