import ArgumentParser
import Foundation
import Shardwise
import ShardwiseSimulation
import ShardwiseSockets
import ShardwiseThreads

/// `shardwise compare`: one problem, a grid of runs (codecs × strategies × solvers × node counts,
/// on threads or on the simulator), one table, one JSON and, with `--plot`, the curves.
struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run a grid of codecs × strategies × solvers × node counts on one problem and compare them.",
        discussion: """
            Every flag of `shardwise train` defines the problem (--synthetic, --data, --objective, --iterations, \
            --tolerance, …); the grid's axes default to that job's own value. Bytes are counted apart for setup \
            (step size, reference) and training, so a codec's ratio is its own. Each codec's encode + decode time, \
            measured here on a vector of the model's length, is charged beside its bytes.

            Examples:
              shardwise compare --codecs float64,float32,float16,int8 --strategies allreduce --nodes-list 4
              shardwise compare --strategies mapreduce,allreduce,gram,local-sgd --solvers gd,cg,lbfgs --json runs.json
              shardwise compare --codecs float64,float32 --backend simulation --latency 50us --bandwidth 1Gbit/s --plot plots
            """
    )

    @Option(help: ArgumentHelp("Codecs to compare, comma-separated (float64, float32, float16, bfloat16, int8[:CHUNK], topk:F).", valueName: "list"))
    var codecs: String?

    @Option(help: ArgumentHelp("Strategies to compare, comma-separated.", valueName: "list"))
    var strategies: String?

    @Option(help: ArgumentHelp("Solvers to compare, comma-separated (the asynchronous strategies run gd only).", valueName: "list"))
    var solvers: String?

    @Option(name: .customLong("nodes-list"), help: ArgumentHelp("Node counts to compare, comma-separated.", valueName: "list"))
    var nodeCounts: String?

    @Option(help: "Where the runs go: threads, or simulation (virtual time on the network the simulation flags describe).")
    var backend: CompareBackend = .threads

    @OptionGroup var simulation: SimulationFlags

    @Option(help: ArgumentHelp("Write the runs as JSON ({\"runs\": […]}).", valueName: "file"))
    var json: String?

    @Option(help: ArgumentHelp("Render loss gap against bytes, time and rounds as PNG files in this directory (python3 with matplotlib).", valueName: "dir"))
    var plot: String?

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var jobFlags: [String] = []

    enum CompareBackend: String, ExpressibleByArgument, CaseIterable { case threads, simulation }

    func validate() throws {
        try OutputFile.check(path: json, option: "--json")
        _ = try grid()
    }

    /// The base job and every run's job, each validated by the core; an error names the run.
    func grid() throws -> (base: Job, runs: [CompareRun], skipped: [String]) {
        let options: JobOptions
        do { options = try JobOptions.parse(jobFlags) } catch { throw ValidationError(JobOptions.message(for: error)) }
        let base = try options.makeJob()
        func list<T>(_ option: String, _ text: String?, _ fallback: T, _ parse: (String) throws -> T) throws -> [T] {
            guard let text else { return [fallback] }
            let items = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !items.isEmpty else { throw ValidationError("\(option): give at least one value") }
            return try items.map { item in try wrap(option) { try parse(item) } }
        }
        let codecAxis = try list("--codecs", codecs, base.codec) { try CodecSpec(parsing: $0) }
        let strategyAxis = try list("--strategies", strategies, base.strategy.kind) { text in
            guard let k = StrategyKind(rawValue: text) else {
                throw ValidationError("'\(text)' is not a strategy (\(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return k
        }
        let solverAxis: [SolverKind?] = try list("--solvers", solvers, base.optimizer.solver) { text in
            guard let s = SolverKind(rawValue: text) else {
                throw ValidationError("'\(text)' is not a solver (\(SolverKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return s
        }
        let nodeAxis = try list("--nodes-list", nodeCounts, base.nodes) { text in
            guard let m = Int(text), m >= 1 else { throw ValidationError("'\(text)' is not a node count") }
            return m
        }
        var runs: [CompareRun] = [], skipped: [String] = []
        for codec in codecAxis {
            for kind in strategyAxis {
                for solver in solverAxis {
                    for m in nodeAxis {
                        var job = base
                        job.codec = codec
                        job.strategy.kind = kind
                        job.nodes = m
                        if let solver {
                            if !kind.runsSolvers && solver != .gd {
                                skipped.append("\(kind) with \(solver): \(kind) applies gradients as they arrive (gd only)")
                                continue
                            }
                            job.optimizer.solver = kind.runsSolvers ? solver : nil
                        }
                        let run = CompareRun(job: job)
                        do { try job.validate() } catch {
                            throw ValidationError("run \(run.label): \(error)")
                        }
                        if !runs.contains(where: { $0.job == job }) { runs.append(run) }
                    }
                }
            }
        }
        guard !runs.isEmpty else { throw ValidationError("the grid has no run that can go: \(skipped.joined(separator: "; "))") }
        return (base, runs, Array(Set(skipped)).sorted())
    }

    func run() async throws {
        var (base, runs, skipped) = try grid()
        let features = try shape(of: base).features
        let model = try simulation.model(features: features, rows: max(1, try shape(of: base).rows / (runs.map(\.job.nodes).max() ?? 1)),
                                         precision: base.precision)
        print("compare     \(runs.count) run\(runs.count == 1 ? "" : "s") on \(base.data), \(backend)"
              + (backend == .simulation ? " (latency \(formatSeconds(model.network.latency)), bandwidth \(formatRate(model.network.bandwidth)))" : ""))
        for note in skipped { print("skipped     \(note)") }
        // Each codec's encode + decode, once, on a vector of the model's length.
        var costs: [CodecSpec: CodecCost] = [:]
        for codec in Set(runs.map(\.job.codec)) { costs[codec] = CodecCost.measure(codec, count: features) }
        for i in runs.indices {
            let job = runs[i].job
            printError("  \(runs[i].label) …")
            let report: TrainingReport
            switch backend {
            case .threads: report = try await ThreadsBackend().run(job)
            case .simulation:
                try model.validate(nodeCounts: [job.nodes])
                report = try await SimulationBackend(model: model).run(job)
            }
            runs[i].record(report, codecCost: costs[job.codec]!)
        }
        print("")
        print(Self.table(runs, backend: backend))
        let summary = Self.codecSummary(runs)
        if !summary.isEmpty { print(""); print(summary) }
        if let json {
            try writeJSON(CompareResult(job: base, backend: backend.rawValue, runs: runs), to: json, option: "--json")
            print("json: \(json)")
        }
        if let plot { try await Self.plot(runs, into: plot, base: base) }
    }

    private func shape(of job: Job) throws -> (rows: Int, features: Int) {
        switch job.data {
        case .synthetic(let s): return (s.rows, s.features)
        case .sparseSynthetic(let s): return (s.rows, s.features)
        case .file:
            let d = try DataLoader.load(job.data, as: Double.self)
            return (d.rows, d.features)
        }
    }

    static func table(_ runs: [CompareRun], backend: CompareBackend) -> String {
        var t = TextTable(["codec", "strategy", "solver", "nodes", "iters", "rounds", "training bytes", "setup bytes",
                           backend == .simulation ? "virtual time" : "time", "codec time", "|w−w*|/|w*|", "L − L*", "stop"])
        for r in runs {
            t.add([r.codec, r.strategy, r.solver ?? "—", "\(r.nodes)", "\(r.iterations ?? 0)", r.rounds.map(String.init) ?? "—",
                   r.trainingBytes.map(formatBytes) ?? formatBytes(r.bytes ?? 0), r.setupBytes.map(formatBytes) ?? "—",
                   formatSeconds(r.seconds ?? 0), formatSeconds(r.codecSeconds ?? 0),
                   r.relativeDistance.map(fmt) ?? "—", r.lossGap.map(fmt) ?? "—", r.stopReason ?? "—"])
        }
        return t.render()
    }

    /// Each lossy codec against float64 on the same strategy, solver and nodes: training bytes per
    /// round (so that a different number of rounds does not hide the codec's own ratio) and the
    /// final accuracy of both.
    static func codecSummary(_ runs: [CompareRun]) -> String {
        var lines: [String] = []
        for r in runs where r.codec != "float64" {
            guard let exact = runs.first(where: { $0.codec == "float64" && $0.strategy == r.strategy && $0.solver == r.solver && $0.nodes == r.nodes }),
                  let a = r.trainingBytesPerRound, let b = exact.trainingBytesPerRound, b > 0 else { continue }
            lines.append(String(format: "%@ vs float64, %@%@ on %d: %.3f× the training bytes per round, |w−w*|/|w*| %@ vs %@",
                                r.codec, r.strategy, r.solver.map { " \($0)" } ?? "", r.nodes, a / b,
                                r.relativeDistance.map(fmt) ?? "—", exact.relativeDistance.map(fmt) ?? "—"))
        }
        return lines.joined(separator: "\n")
    }

    /// Loss gap against training bytes, time and rounds, one PNG each, by python3 + matplotlib.
    static func plot(_ runs: [CompareRun], into directory: String, base: Job) async throws {
        guard let python = executableInPath("python3") else {
            throw CompareError("--plot \(directory): needs python3 with matplotlib on the PATH")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let data = directory + "/compare.json"
        try writeJSON(CompareResult(job: base, backend: "", runs: runs), to: data, option: "--plot")
        let collected = LineCollector()
        let child = try await ChildProcess.start(python, arguments: ["-c", plotScript, data, directory],
                                                 environment: ProcessInfo.processInfo.environment) { _, line in collected.add(line) }
        let status = try await child.wait()
        guard status.succeeded else {
            throw CompareError("--plot \(directory): python3 failed (\(status)): \(collected.text.suffix(500))"
                                  + (collected.text.contains("matplotlib") ? " — install it with: python3 -m pip install matplotlib" : ""))
        }
        print(collected.text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static let plotScript = #"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
runs = json.load(open(sys.argv[1]))["runs"]
out = sys.argv[2]
for key, label, name in [("trainingBytes", "training bytes sent (all nodes)", "gap-vs-bytes"),
                         ("time", "seconds", "gap-vs-time"), ("rounds", "rounds", "gap-vs-rounds")]:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for r in runs:
        pts = [(p[key], p["lossGap"]) for p in r["curve"] if p.get(key) is not None and p.get("lossGap") is not None and p["lossGap"] > 0]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=r["label"])
            drawn += 1
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("L(w) − L(w*)")
    if drawn:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/{name}.png", dpi=120)
    print(f"plot: {out}/{name}.png")
"""#
}

/// A failure after the grid started (the flags were fine): no usage text follows it.
struct CompareError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Lines a child printed, gathered from its handler.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ line: String) { lock.withLock { lines.append(line) } }
    var text: String { lock.withLock { lines.joined(separator: "\n") } }
}

/// The first executable named `name` on the PATH.
func executableInPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// What `compare --json` writes.
struct CompareResult: Codable {
    var job: Job
    var backend: String
    var runs: [CompareRun]
}

/// A codec's measured encode + decode time on a vector, per wire byte.
struct CodecCost {
    var secondsPerWireByte: Double

    /// Median over 5 trials of encode + decode of a `count`-entry float64 vector, each trial long
    /// enough (≥ 2 ms) to be above the clock's resolution.
    static func measure(_ spec: CodecSpec, count: Int) -> CodecCost {
        let codec = spec.makeCodec()
        var input = [Double](repeating: 0, count: max(count, 1))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in input.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            input[i] = Double(Int64(bitPattern: state >> 11)) / Double(1 << 52)
        }
        var output = input
        let stream = CodecStream(tag: Tag(1), peer: 1)
        var wire = 0
        var trials: [Double] = []
        for _ in 0..<5 {
            var repeats = 0
            let start = MonotonicClock.now()
            repeat {
                let bytes = input.withUnsafeBufferPointer { codec.encode($0, stream: stream) }
                wire = bytes.count
                output.withUnsafeMutableBufferPointer { try? codec.decode(bytes, into: $0) }
                repeats += 1
            } while MonotonicClock.now() - start < 2e-3
            trials.append((MonotonicClock.now() - start) / Double(repeats))
        }
        trials.sort()
        return CodecCost(secondsPerWireByte: trials[2] / Double(max(wire, 1)))
    }
}

/// One run of the grid and what it measured.
struct CompareRun: Codable {
    var job: Job
    var label: String
    var codec: String
    var strategy: String
    var solver: String?
    var nodes: Int
    var iterations: Int?
    var rounds: Int?
    /// All bytes sent, and split into setup and training where the strategy marks the boundary.
    var bytes: Int?
    var trainingBytes: Int?
    var setupBytes: Int?
    var seconds: Double?
    /// Training bytes × the codec's measured encode + decode seconds per wire byte.
    var codecSeconds: Double?
    var relativeDistance: Double?
    var lossGap: Double?
    var stopReason: String?
    /// The loss gap as training went: at each trace point its time, rounds and the training bytes
    /// sent by then (rounds × the run's bytes per round: every round of a synchronous strategy
    /// sends the same bytes).
    var curve: [ComparePoint] = []

    init(job: Job) {
        self.job = job
        codec = "\(job.codec)"
        strategy = job.strategy.kind.rawValue
        solver = job.strategy.kind.runsSolvers ? job.effectiveSolver.rawValue : nil
        nodes = job.nodes
        label = "\(codec) \(strategy)\(solver.map { " \($0)" } ?? "") ×\(nodes)"
    }

    var trainingBytesPerRound: Double? {
        guard let t = trainingBytes ?? bytes else { return nil }
        let r = rounds ?? iterations ?? 0
        return r > 0 ? Double(t) / Double(r) : nil
    }

    mutating func record(_ r: TrainingReport, codecCost: CodecCost) {
        iterations = r.iterations
        rounds = r.rounds
        bytes = r.totalBytesSent
        trainingBytes = r.trainingBytesSent
        setupBytes = r.setupBytesSent
        seconds = r.seconds
        codecSeconds = Double(r.trainingBytesSent ?? r.totalBytesSent) * codecCost.secondsPerWireByte
        relativeDistance = r.relativeDistance
        lossGap = r.optimalLoss.map { r.finalLoss - $0 }
        stopReason = r.stopReason.rawValue
        let perRound = trainingBytesPerRound
        curve = r.trace.map { p in
            let done = p.rounds ?? p.iteration
            return ComparePoint(iteration: p.iteration, rounds: done, time: p.time,
                                trainingBytes: perRound.map { $0 * Double(done) }, lossGap: p.lossGap)
        }
    }
}

struct ComparePoint: Codable {
    var iteration: Int
    var rounds: Int
    var time: Double
    var trainingBytes: Double?
    var lossGap: Double?
}
