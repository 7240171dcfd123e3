// The bandwidth summary of `make bench`: the kernels' GB/s and their ratio to the memory-read
// ceiling (the faster probe per byte), the threads backend's MapReduce iteration against the 2-thread ceiling, the
// coordination overhead and the codecs (issue 3) — medians of paired rounds, with the bars.
//
//     BenchSummary              everything
//     BenchSummary kernels      only the kernel table
//     BenchSummary training     only the threads-backend and codec tables
//     BenchSummary overhead | codecs   one of them
//     BenchSummary sweep        fused-kernel block-size sweep, 32 KiB … 1 MiB
//     BenchSummary blocks 64 128 256   those block sizes (KiB), interleaved round by round
import BenchSupport
import Shardwise

BLASThreading.set(threads: 1)
let mode = CommandLine.arguments.dropFirst().first ?? "all"

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
func f(_ x: Double, _ digits: Int = 1) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let v = (x * scale).rounded() / scale
    var s = "\(v)"
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        if digits == 0 { s.removeSubrange(dot...) }
    }
    return s
}
func verdict(_ ok: Bool) -> String { ok ? "met" : "NOT met" }

var bars: [(String, String, Bool)] = []

@MainActor func kernelTable(rounds: Int) {
    print("Gradient kernels against the read ceiling (per round, the faster of the typed and the byte probe on the")
    print("same X): one OpenBLAS thread, on-CPU time of the thread; medians of \(rounds) rounds (each round runs every")
    print("kernel once, order rotated; ratios per round). Default path: float64 \(KernelPath.preferred(for: Double.self)), "
          + "float32 \(KernelPath.preferred(for: Float.self))")
    print(pad("X", 20) + pad("kernel", 20) + lpad("ms", 9) + lpad("GB/s", 7) + lpad("of ceiling", 11) + lpad("Mrows/s", 9))
    for (rows, columns) in kernelShapes {
        var rowsPerSecond: [String: Double] = [:]
        var fusedRatio: [String: Double] = [:]
        var paths: [String: String] = [:]
        var rowsPerSecondBy: [String: Double] = [:]
        func one<S: BLASScalar>(_: S.Type) {
            let fixture = FixtureCache.kernel(S.self, rows: rows, columns: columns)
            let s = fixture.pairedSamples(rounds: rounds)
            for k in KernelName.allCases {
                print(pad(fixture.label, 20) + pad(k.rawValue, 20) + lpad(f(s.medianSeconds(k) * 1e3, 2), 9)
                      + lpad(f(s.medianGBps(k)), 7) + lpad(f(100 * s.medianRatio(k)) + "%", 11)
                      + lpad(f(Double(rows) / s.medianSeconds(k) / 1e6, 2), 9))
            }
            // The bars are on the default path of each precision (`KernelPath.preferred(for:)`).
            let chosen: KernelName = KernelPath.preferred(for: S.self) == .avx2 ? .avx2 : .fused
            rowsPerSecond[S.precisionName] = Double(rows) / s.medianSeconds(chosen)
            fusedRatio[S.precisionName] = s.medianRatio(chosen)
            paths[S.precisionName] = chosen.rawValue
            for k in [KernelName.fused, .avx2] { rowsPerSecondBy[S.precisionName + " " + k.rawValue] = Double(rows) / s.medianSeconds(k) }
        }
        one(Double.self)
        one(Float.self)
        FixtureCache.clear()
        let speedup = rowsPerSecond["float32"]! / rowsPerSecond["float64"]!
        for precision in ["float64", "float32"] {
            let r = fusedRatio[precision]!
            bars.append(("default (\(paths[precision]!)) ≥ 90% of ceiling, \(precision) \(rows)×\(columns)", "\(f(100 * r))%", r >= 0.9))
        }
        print("  float32/float64 rows/s, \(rows)×\(columns): " + [KernelName.fused, .avx2].flatMap { a in
            [KernelName.fused, .avx2].map { b in
                "f32 \(a.rawValue) / f64 \(b.rawValue) = \(f(rowsPerSecondBy["float32 " + a.rawValue]! / rowsPerSecondBy["float64 " + b.rawValue]!, 2))×"
            }
        }.joined(separator: ", "))
        bars.append(("float32 (\(paths["float32"]!)) rows/s ≥ 1.9× float64 (\(paths["float64"]!)) \(rows)×\(columns)",
                     "\(f(speedup, 2))×", speedup >= 1.9))
    }
    print()
}

@MainActor func mapReduceTable(rounds: Int) async throws {
    let fixture = try MapReduceFixture(rows: 200_000, columns: 500, iterations: 11)
    print("MapReduce on the threads backend, 2 nodes, float64 200000×500 (800 MB of X): one iteration is")
    print("(t(11 iterations) − t(1 iteration)) / 10 from the report's training seconds (no data generation, no")
    print("LAPACK); the 2-thread ceiling is the faster of the typed and byte probes over the same X, each thread one")
    print("node's rows; medians of \(rounds) rounds")
    var perIteration: [Double] = [], probes: [Double] = [], ratios: [Double] = [], compute: [Double] = []
    _ = fixture.ceilingSeconds()
    _ = try await fixture.sample()
    for _ in 0..<rounds {
        let p = fixture.ceilingSeconds()
        let s = try await fixture.sample()
        perIteration.append(s.secondsPerIteration)
        probes.append(p)
        ratios.append(p / s.secondsPerIteration)
        compute.append(s.computeSecondsPerIteration.max() ?? 0)
    }
    let t = median(perIteration), p = median(probes), r = median(ratios)
    print("  2-thread read ceiling    \(lpad(f(p * 1e3, 2), 8)) ms  \(lpad(f(Double(fixture.bytes) / p / 1e9), 6)) GB/s")
    print("  MapReduce iteration      \(lpad(f(t * 1e3, 2), 8)) ms  \(lpad(f(Double(fixture.bytes) / t / 1e9), 6)) GB/s  \(f(100 * r))% of ceiling")
    print("  slowest node's kernel    \(lpad(f(median(compute) * 1e3, 2), 8)) ms  (report's computeSeconds / iterations)")
    print()
    bars.append(("MapReduce iteration ≥ 90% of 2-thread ceiling", "\(f(100 * r))% (\(f(t * 1e3, 1)) ms)", r >= 0.9))
}

@MainActor func overheadTable(rounds: Int) async throws {
    let fixture = try MapReduceFixture(rows: 1000, columns: 10, iterations: 2001)
    let kernel = fixture.shardKernelSeconds(repeats: 41)
    _ = try await fixture.sample()
    var perIteration: [Double] = []
    for _ in 0..<rounds { perIteration.append(try await fixture.sample().secondsPerIteration) }
    let t = median(perIteration)
    print("Coordination overhead, MapReduce, 2 nodes, float64 1000×10 (500 rows per node), 2001 vs 1 iterations,")
    print("medians of \(rounds) rounds")
    print("  iteration \(f(t * 1e6, 2)) µs − one shard's kernel \(f(kernel * 1e6, 2)) µs = \(f((t - kernel) * 1e6, 2)) µs of coordination")
    print()
    bars.append(("coordination < 20 µs per iteration", "\(f((t - kernel) * 1e6, 2)) µs", t - kernel < 20e-6))
}

@MainActor func codecTable(rounds: Int) throws {
    print("Codecs, encode + decode of a 1e6-entry float64 vector (8 MB; GB/s counts those 8 MB), medians of \(rounds)")
    print(pad("codec", 12) + lpad("wire bytes", 12) + lpad("encode ms", 11) + lpad("decode ms", 11) + lpad("GB/s", 8))
    for spec in CodecFixture.all {
        let fixture = CodecFixture(spec: spec)
        try fixture.roundTrip()
        var e: [Double] = [], d: [Double] = [], both: [Double] = []
        for _ in 0..<rounds {
            let (a, b) = try fixture.roundTrip()
            e.append(a); d.append(b); both.append(a + b)
        }
        let rate = Double(fixture.bytes) / median(both) / 1e9
        print(pad("\(spec)", 12) + lpad("\(fixture.wireBytes)", 12) + lpad(f(median(e) * 1e3, 3), 11)
              + lpad(f(median(d) * 1e3, 3), 11) + lpad(f(rate, 2), 8))
        bars.append(("codec \(spec) encode + decode ≥ 5 GB/s", "\(f(rate, 2)) GB/s", rate >= 5))
    }
    print()
}

func sweep() {
    func one<S: BLASScalar>(_: S.Type, rows: Int, columns: Int) {
        let fixture = KernelFixture<S>(rows: rows, columns: columns)
        print("\(fixture.label), fused kernel, % of read ceiling (median of 7 paired runs, on-CPU time)")
        for kb in [32, 64, 128, 192, 256, 384, 512, 1024] {
            let k = GradientKernel<S>(x: fixture.x.view, y: fixture.y[...], blockBytes: kb * 1024, path: .blas)
            var ratios: [Double] = []
            fixture.runFused(k)
            for _ in 0..<7 {
                let p = fixture.ceilingSeconds()
                ratios.append(p / cpuSeconds { fixture.runFused(k) })
            }
            print("  block \(lpad("\(kb)", 5)) KiB (\(lpad("\(k.blockRows)", 4)) rows): \(f(100 * median(ratios)))%")
        }
    }
    for (rows, columns) in kernelShapes {
        one(Double.self, rows: rows, columns: columns)
        one(Float.self, rows: rows, columns: columns)
    }
}

/// Candidate block sizes of the cblas path, interleaved round by round.
func blocks(_ sizes: [Int], rounds: Int) {
    func one<S: BLASScalar>(_: S.Type, rows: Int, columns: Int) {
        let fixture = KernelFixture<S>(rows: rows, columns: columns)
        let kernels = sizes.map { GradientKernel<S>(x: fixture.x.view, y: fixture.y[...], blockBytes: $0 * 1024, path: .blas) }
        var ratios = [[Double]](repeating: [], count: sizes.count)
        for k in kernels { fixture.runFused(k) }
        for round in 0..<rounds {
            for i in sizes.indices {
                let k = (i + round) % sizes.count
                let p = fixture.ceilingSeconds()
                ratios[k].append(p / cpuSeconds { fixture.runFused(kernels[k]) })
            }
        }
        print(pad(fixture.label, 20) + sizes.indices.map { lpad("\(sizes[$0])K: " + f(100 * median(ratios[$0])) + "%", 14) }.joined())
    }
    for (rows, columns) in kernelShapes {
        one(Double.self, rows: rows, columns: columns)
        one(Float.self, rows: rows, columns: columns)
    }
}

switch mode {
case "blocks":
    blocks(CommandLine.arguments.dropFirst(2).compactMap { Int($0) }, rounds: 15)
case "sweep":
    sweep()
case "overhead":
    try await overheadTable(rounds: 7)
case "codecs":
    try codecTable(rounds: 21)
case "kernels":
    kernelTable(rounds: 9)
case "training":
    try await mapReduceTable(rounds: 5)
    try await overheadTable(rounds: 7)
    try codecTable(rounds: 21)
default:
    kernelTable(rounds: 9)
    try await mapReduceTable(rounds: 5)
    try await overheadTable(rounds: 7)
    try codecTable(rounds: 21)
}

if !bars.isEmpty {
    print("Bars")
    for (name, value, ok) in bars { print("  " + pad(name, 56) + lpad(value, 18) + "  " + verdict(ok)) }
}
