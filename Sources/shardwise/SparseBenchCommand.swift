import ArgumentParser
import Dispatch
import Foundation
import Shardwise

/// Hidden: `shardwise sparse-bench --libsvm FILE`, the Shardwise side of
/// `Benchmarks/scripts/sparse.py`. In one process, on one core:
///
/// - the LIBSVM parse into CSR (`LIBSVMReader.readSparse`), timed `--repeats` times, in MB/s of file;
/// - the fused sparse gradient Xᵀ(Xw − y) (`SparseGradientKernel`, identity link) on the parsed
///   matrix, float64 and float32, in CSR bytes per second (values + indices + offsets per call);
/// - the read ceiling over the same bytes: a pass that only sums them (four SIMD accumulators),
///   the fastest of its runs, so the kernel's ratio to it is what a read of X allows.
///
/// Each is timed by the wall clock and by this thread's CPU time (both reported).
///
/// w is wⱼ = ((7919·j) mod 1000)/1000 − ½, which the script computes too, and the gradient's
/// norm is printed so that the script can check both sides computed the same thing. One JSON
/// object on stdout.
struct SparseBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparse-bench", abstract: "Time the sparse LIBSVM parse and gradient kernel (for Benchmarks/scripts/sparse.py).",
        shouldDisplay: false)

    @Option(help: "The LIBSVM file to parse and compute on.")
    var libsvm: String

    @Option(help: "Parses timed.")
    var parseRepeats = 5

    @Option(help: "Gradient evaluations timed (per precision).")
    var repeats = 30

    func run() throws {
        guard parseRepeats >= 1, repeats >= 1 else { throw ValidationError("--parse-repeats and --repeats must be at least 1") }
        var parseTimes: [Double] = [], parseCPU: [Double] = []
        var parsed: SparseDataset<Double>?
        for _ in 0..<parseRepeats {
            parsed = nil   // the previous copy is freed before the next parse, as a fresh process would
            let t = try seconds(cpu: &parseCPU) { parsed = try LIBSVMReader.readSparse(path: libsvm).data }
            parseTimes.append(t)
        }
        let data = parsed!
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: libsvm)[.size] as? NSNumber)?.intValue ?? 0
        var fields: [String] = [
            "\"file_bytes\": \(fileBytes)", "\"rows\": \(data.rows)", "\"features\": \(data.features)",
            "\"nonzeros\": \(data.x.nonzeroCount)", "\"parse_seconds\": \(list(parseTimes))",
            "\"parse_cpu_seconds\": \(list(parseCPU))",
        ]
        fields += measure(data, label: "f64")
        fields += measure(data.converted(to: Float.self), label: "f32")
        print("{" + fields.joined(separator: ", ") + "}")
    }

    private func measure<Scalar: BLASScalar>(_ data: SparseDataset<Scalar>, label: String) -> [String] {
        let x = data.x.view
        let kernel = SparseGradientKernel(x: x, y: data.y[...])
        let w = (0..<data.features).map { j in Scalar(Double((7919 * j) % 1000) / 1000 - 0.5) }
        var g = [Scalar](repeating: 0, count: data.features)
        _ = kernel.gradientSum(w: w, into: &g)   // warm: w, g and the page tables
        var times: [Double] = [], cpu: [Double] = []
        for _ in 0..<repeats { times.append(seconds(cpu: &cpu) { _ = kernel.gradientSum(w: w, into: &g) }) }
        let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        var probeTimes: [Double] = [], probeCPU: [Double] = []
        var sink: UInt64 = 0
        for _ in 0..<repeats {
            probeTimes.append(seconds(cpu: &probeCPU) {
                data.x.values.withUnsafeBytes { sink &+= ReadCeiling.sum($0) }
                data.x.columnIndices.withUnsafeBytes { sink &+= ReadCeiling.sum($0) }
                data.x.rowOffsets.withUnsafeBytes { sink &+= ReadCeiling.sum($0) }
            })
        }
        return [
            "\"csr_bytes_\(label)\": \(x.bytes)", "\"gradient_seconds_\(label)\": \(list(times))",
            "\"gradient_cpu_seconds_\(label)\": \(list(cpu))",
            "\"probe_seconds_\(label)\": \(list(probeTimes))", "\"probe_cpu_seconds_\(label)\": \(list(probeCPU))", "\"gradient_norm_\(label)\": \(norm)",
            "\"probe_checksum_\(label)\": \(sink % 1000)",
        ]
    }

    /// Wall-clock seconds of `body`; its CPU seconds (this thread's, `CLOCK_THREAD_CPUTIME_ID`) are
    /// appended to `cpu`: on a shared machine the wall clock also counts the time a neighbour held the core.
    private func seconds(cpu: inout [Double], _ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = threadCPUSeconds()
        try body()
        cpu.append(threadCPUSeconds() - cpuStart)
        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    private func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    private func list(_ values: [Double]) -> String { "[" + values.map { String($0) }.joined(separator: ", ") + "]" }
}

/// The read ceiling: Σ of a buffer's 64-bit words with four `SIMD8<UInt64>` accumulators (256
/// bytes in flight per step), so neither add latency nor instruction count limits it, even for
/// baseline x86-64: what is left is the memory system. (The benchmarks package's `ReadProbe`, for bytes.)
enum ReadCeiling {
    @inline(never)
    static func sum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        typealias V = SIMD8<UInt64>
        guard let base = bytes.baseAddress else { return 0 }
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        var i = 0
        let n = bytes.count
        while i + 256 <= n {
            a0 &+= (base + i).loadUnaligned(as: V.self)
            a1 &+= (base + i + 64).loadUnaligned(as: V.self)
            a2 &+= (base + i + 128).loadUnaligned(as: V.self)
            a3 &+= (base + i + 192).loadUnaligned(as: V.self)
            i += 256
        }
        var s = ((a0 &+ a1) &+ (a2 &+ a3)).wrappedSum()
        while i < n { s &+= UInt64(bytes[i]); i += 1 }
        return s
    }
}
