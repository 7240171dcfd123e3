import ArgumentParser
import Foundation
import Shardwise
import ShardwiseSimulation

/// `shardwise simulate`: a strong-scaling study on simulated nodes.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run a job on 1, 2, 4, … simulated nodes on a virtual clock: speedup, time split, Amdahl/Gustafson.",
        discussion: """
            The nodes run the real math on the real shards; only time is simulated. A message costs \
            latency + bytes/bandwidth and a node's link carries one message at a time; a gradient costs \
            rows × d × the per-element cost (given, or --calibrate from this machine's kernel). The same \
            job and model always give the same numbers.

            Every flag of `shardwise train` (--strategy, --codec, --synthetic, --iterations, --tolerance, \
            --allreduce, --topology, --staleness, --precision, …) is accepted too.

            Examples:
              shardwise simulate --nodes 1,2,4,8,16,32,64 --strategy allreduce --latency 50us --bandwidth 10Gbit/s
              shardwise simulate --nodes 1..1024 --strategy allreduce --allreduce native --synthetic n=102400,d=100
              shardwise simulate --nodes 1..32 --strategy mapreduce --stragglers 3:10 --csv out.csv --json out.json
              shardwise simulate --nodes 8 --strategy ps --fault 2@5ms+20ms
            """
    )

    @Option(help: ArgumentHelp("Node counts: a list 1,2,4,8 or a doubling range 1..1024 (1 is always added).", valueName: "list"))
    var nodes = "1..64"

    @OptionGroup var simulation: SimulationFlags

    @Option(help: ArgumentHelp("Write the study as CSV (one row per node count).", valueName: "file"))
    var csv: String?

    @Option(help: ArgumentHelp("Write the study as JSON (with loss-vs-time curves).", valueName: "file"))
    var json: String?

    @Flag(help: "No line per node count while the study runs.")
    var quiet = false

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var jobFlags: [String] = []

    func validate() throws {
        // The model's ranges are checked by the core, once, over every world of the study; the
        // calibration (which takes a while) is the one value that cannot be out of range.
        let counts = try wrap("--nodes") { try SimulationUnits.nodeCounts(nodes) }
        try check(try simulation.model(features: 1, rows: 1, measure: false), nodeCounts: counts)
        _ = try jobOptions()
    }

    /// The core's validation of the model over the study's node counts (1 is always run); its
    /// messages name the option.
    private func check(_ model: SimulationModel, nodeCounts: [Int]) throws {
        do { try model.validate(nodeCounts: nodeCounts + [1]) } catch { throw ValidationError(error.description) }
    }

    private func jobOptions() throws -> JobOptions {
        do {
            return try JobOptions.parse(jobFlags)
        } catch {
            throw ValidationError(JobOptions.message(for: error))
        }
    }

    func run() async throws {
        try OutputFile.check(path: csv, option: "--csv")
        try OutputFile.check(path: json, option: "--json")
        let job = try jobOptions().makeJob()
        let counts = try SimulationUnits.nodeCounts(nodes)
        let (rows, features) = try shape(of: job)
        let maxNodes = counts.max() ?? 1
        let model = try simulation.model(features: features, rows: max(1, rows / maxNodes), precision: job.precision)
        try check(model, nodeCounts: counts)
        let backend = SimulationBackend(model: model)
        if job.strategy.kind == .hogwild || job.strategy.kind == .parameterServer, counts.contains(where: { $0 > 1 }) {
            // Nothing to refuse: both run in the simulator. (Kept as a reminder that PS's rank 0 holds no data.)
        }
        print("simulate    \(job.strategy.kind)\(job.strategy.kind == .allReduce ? " (\(job.strategy.allReduce))" : ""), codec \(job.codec), \(job.data)")
        print("network     latency \(formatSeconds(model.network.latency)), bandwidth \(formatRate(model.network.bandwidth))\(model.network.sharedLinks ? ", shared links" : "")")
        print("compute     \(String(format: "%.3g", model.compute.secondsPerElement * 1e9)) ns per element\(model.compute.calibrated ? " (calibrated on this machine)" : "")")
        if !model.stragglers.isEmpty {
            var parts = model.stragglers.slowdowns.map { "rank \($0.rank) ×\(fmt($0.factor))" }
            if let d = model.stragglers.delay { parts.append("delay \(d)") }
            print("stragglers  \(parts.joined(separator: ", "))")
        }
        for f in model.faults { print("fault       rank \(f.rank) down at \(formatSeconds(f.at)) for \(formatSeconds(f.downtime))") }
        print("")
        let quiet = self.quiet
        let study = try await ScalingStudy.run(job: job, nodeCounts: counts, backend: backend) { p in
            if !quiet {
                printError("  \(p.nodes) node\(p.nodes == 1 ? "" : "s"): \(p.iterations) iterations, \(formatSeconds(p.seconds)) virtual, \(String(format: "%.2f", p.wallSeconds)) s wall")
            }
        }
        print(Self.table(study))
        if let csv {
            try writeAtomically(Self.csv(study), to: csv)
            print("csv: \(csv)")
        }
        if let json {
            try writeJSON(study, to: json)
            print("json: \(json)")
        }
    }

    /// Rows and features of the job's data, without loading a file twice for synthetic data.
    private func shape(of job: Job) throws -> (Int, Int) {
        switch job.data {
        case .synthetic(let s): return (s.rows, s.features)
        case .sparseSynthetic(let s): return (s.rows, s.features)
        case .file:
            let d = try DataLoader.load(job.data, as: Double.self)
            return (d.rows, d.features)
        }
    }

    static func table(_ s: ScalingStudy) -> String {
        var t = TextTable(["nodes", "iters", "stop", "time", "per iter", "compute", "comm", "waiting",
                           "speedup", "efficiency", "Karp–Flatt", "scaled (G)", "|w−w*|/|w*|", "wall"])
        for p in s.points {
            t.add(["\(p.nodes)", "\(p.iterations)", p.stopReason.rawValue, formatSeconds(p.timeToTolerance ?? p.seconds),
                   formatSeconds(p.secondsPerIteration), formatSeconds(p.computePerIteration),
                   formatSeconds(p.communicationPerIteration), formatSeconds(p.waitingPerIteration),
                   p.speedup.map { String(format: "%.2f×", $0) } ?? "—",
                   p.efficiency.map { String(format: "%.0f%%", $0 * 100) } ?? "—",
                   p.karpFlatt.map { String(format: "%.4f", $0) } ?? "—",
                   p.gustafsonScaledSpeedup.map { String(format: "%.1f×", $0) } ?? "—",
                   p.relativeDistance.map(fmt) ?? "—", String(format: "%.2f s", p.wallSeconds)])
        }
        var out = t.render() + "\n\n"
        out += "speedup basis: \(s.basis) (virtual); time/compute/comm/waiting are virtual seconds, averaged over nodes per iteration\n"
        if let fit = s.amdahl {
            out += String(format: "Amdahl fit:    p = %.5f (serial fraction), limit 1/p = %@, rms residual %.3f×\n",
                          fit.serialFraction, fit.maximumSpeedup.isFinite ? String(format: "%.1f×", fit.maximumSpeedup) : "∞",
                          fit.rmsResidual)
        }
        if let model = s.scalingModel {
            out += String(format: "cost model:    T(m) = %@ + %@/m + %@·(m−1)%@ per iteration (serial, computation, communication), "
                          + "rms residual %.1f%%\n",
                          formatSeconds(model.serial), formatSeconds(model.parallel), formatSeconds(model.communicationPerNode),
                          model.includesLogTerm ? " + \(formatSeconds(model.communicationPerLevel))·log₂m" : "",
                          100 * model.rmsRelativeResidual)
            if let best = model.fastestNodes {
                out += String(format: "               fastest at m = %d: %@ per iteration, speedup %.2f× (computation %@, communication %@)\n",
                              best, formatSeconds(model.time(nodes: best)), model.speedup(nodes: best),
                              formatSeconds(model.parts(nodes: best).parallel), formatSeconds(model.parts(nodes: best).communication))
            } else {
                out += "               no communication term was found: the time keeps falling with m (Amdahl's regime)\n"
            }
            if let fit = s.amdahl {
                let measured = s.points.compactMap { p in p.speedup.map { (p.nodes, $0) } }
                let rms = { (f: (Int) -> Double) in
                    (measured.reduce(0.0) { $0 + pow(f($1.0) - $1.1, 2) } / Double(max(measured.count, 1))).squareRoot()
                }
                if s.basis == "time per iteration" {
                    out += String(format: "               speedup rms residual: cost model %.3f× against Amdahl's %.3f×\n",
                                  rms { model.speedup(nodes: $0) }, rms { fit.speedup(nodes: $0) })
                }
            }
        }
        if let last = s.points.last, last.nodes > 1, let share = last.serialShare, let scaled = last.gustafsonScaledSpeedup {
            out += String(format: "Gustafson:     at %d nodes %.1f%% of the iteration is not compute → scaled speedup %.1f× (vs %@ measured, fixed size)\n",
                          last.nodes, share * 100, scaled, last.speedup.map { String(format: "%.2f×", $0) } ?? "—")
        }
        if s.points.contains(where: { $0.speedup == nil }) {
            out += "—:             undefined (a time of zero: e.g. no compute cost and no messages on one node)\n"
        }
        for note in s.notes { out += "note:          \(note)\n" }
        return out
    }

    static func csv(_ s: ScalingStudy) -> String {
        func num(_ x: Double?) -> String {
            guard let x else { return "" }
            return x.isFinite ? "\(x)" : ""
        }
        var lines = ["nodes,iterations,stop,seconds,time_to_tolerance,seconds_per_iteration,compute_per_iteration,"
            + "communication_per_iteration,waiting_per_iteration,speedup,efficiency,karp_flatt,serial_share,"
            + "gustafson_scaled_speedup,relative_distance,bytes_sent,messages,wall_seconds"]
        for p in s.points {
            lines.append([
                "\(p.nodes)", "\(p.iterations)", p.stopReason.rawValue, num(p.seconds), num(p.timeToTolerance),
                num(p.secondsPerIteration), num(p.computePerIteration), num(p.communicationPerIteration),
                num(p.waitingPerIteration), num(p.speedup), num(p.efficiency), num(p.karpFlatt), num(p.serialShare),
                num(p.gustafsonScaledSpeedup), num(p.relativeDistance), "\(p.bytesSent)", "\(p.messages)", num(p.wallSeconds),
            ].joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Bytes per second as bits per second, the way links are sold.
func formatRate(_ bytesPerSecond: Double) -> String {
    let bits = bytesPerSecond * 8
    if bits >= 1e9 { return String(format: "%.3g Gbit/s", bits / 1e9) }
    if bits >= 1e6 { return String(format: "%.3g Mbit/s", bits / 1e6) }
    return String(format: "%.3g kbit/s", bits / 1e3)
}

/// Writes text through `OutputFile` (whole or not at all, through symbolic links).
func writeAtomically(_ text: String, to path: String) throws {
    try OutputFile.writeAtomically(text, to: path)
}
