import Foundation
import Shardwise
import Synchronization

/// Writes to standard error without buffering surprises.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// The live progress of a run: on a terminal one line rewritten in place (at most ten times a
/// second); otherwise a plain line every few seconds, so logs stay readable.
final class ProgressPrinter: Sendable {
    private struct State {
        var lastPrint = 0.0
        var started = MonotonicClock.now()
        var wroteLine = false
    }
    private let state = Mutex(State())
    let isTerminal: Bool
    let quiet: Bool

    init(quiet: Bool = false) {
        isTerminal = isatty(STDERR_FILENO) != 0
        self.quiet = quiet
    }

    func callback() -> (@Sendable (TrainingProgress) -> Void)? {
        quiet ? nil : { @Sendable [self] p in self.show(p) }
    }

    private func show(_ p: TrainingProgress) {
        let now = MonotonicClock.now()
        let line: String? = state.withLock { s in
            let interval = isTerminal ? 0.1 : 2.0
            guard now - s.lastPrint >= interval || p.iteration + 1 >= p.maxIterations else { return nil }
            s.lastPrint = now
            s.wroteLine = true
            let elapsed = now - s.started
            // A solver's last report may count one past the budget (its final confirming round):
            // the fraction is capped at 1, so the estimate never goes below zero.
            let fraction = min(1, Double(p.iteration + 1) / Double(max(p.maxIterations, 1)))
            let eta = fraction > 0 ? elapsed * (1 / fraction - 1) : 0
            var parts = ["iter \(p.iteration)/\(p.maxIterations)"]
            if let l = p.loss { parts.append("loss \(fmt(l))") }
            if let g = p.gradientNorm { parts.append("|∇L| \(fmt(g))") }
            if let d = p.distance { parts.append("|w−w*|/|w*| \(fmt(d))") }
            if p.iteration > 0 { parts.append("ETA ≤ \(formatSeconds(eta))") }
            return parts.joined(separator: "  ")
        }
        guard let line else { return }
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
        } else {
            printError(line)
        }
    }

    /// Ends the in-place line.
    func finish() {
        let wrote = state.withLock { $0.wroteLine }
        if isTerminal && wrote { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

func fmt(_ x: Double) -> String {
    if x == 0 { return "0" }
    if !x.isFinite { return "\(x)" }
    let a = abs(x)
    if a >= 1e-3 && a < 1e5 { return String(format: "%.6g", x) }
    return String(format: "%.3e", x)
}

func formatSeconds(_ s: Double) -> String {
    if s < 1e-3 { return String(format: "%.1f µs", s * 1e6) }
    if s < 1 { return String(format: "%.2f ms", s * 1e3) }
    return String(format: "%.2f s", s)
}

func formatBytes(_ b: Int) -> String {
    let x = Double(b)
    if x < 1024 { return "\(b) B" }
    if x < 1024 * 1024 { return String(format: "%.1f KiB", x / 1024) }
    if x < 1024 * 1024 * 1024 { return String(format: "%.1f MiB", x / 1024 / 1024) }
    return String(format: "%.2f GiB", x / 1024 / 1024 / 1024)
}

/// A plain text table with aligned columns.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }

    /// Columns after the first are right-aligned (numbers) unless `leftAligned`.
    var leftAligned = false

    func render() -> String {
        let all = [header] + rows
        let widths = (0..<header.count).map { c in all.map { $0.count > c ? $0[c].count : 0 }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { c, cell in
                c == 0 || leftAligned ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// The end-of-run summary.
func summary(_ r: TrainingReport) -> String {
    var out = ""
    let s = r.job.strategy
    var strategy = r.job.strategy.kind.rawValue
    switch s.kind {
    case .allReduce: strategy += " (\(s.allReduce))"
    case .gossip: strategy += " (\(s.gossip.topology)\(s.gossip.asynchronous ? ", async" : ""))"
    case .parameterServer:
        strategy += " (staleness \(s.parameterServer.staleness.map(String.init) ?? "∞")\(s.parameterServer.update == .each ? ", update each" : ""))"
    case .oneShot: strategy += " (weighted by \(s.oneShot.weighting))"
    case .localSGD: strategy += " (\(s.localSGD.localSteps) local steps per round)"
    case .cocoa: strategy += " (\(s.cocoa.aggregation), \(s.cocoa.localPasses) local pass\(s.cocoa.localPasses == 1 ? "" : "es") per round)"
    default: break
    }
    var t = TextTable(["", ""])
    t.leftAligned = true
    t.add(["data", r.job.data.description])
    t.add(["objective", r.job.objective.description])
    t.add(["backend", "\(r.backend), \(r.nodes) node\(r.nodes == 1 ? "" : "s"), \(r.precision), codec \(r.job.codec)"])
    t.add(["strategy", strategy])
    if let solver = r.solver { t.add(["solver", solver]) }
    if r.learningRate > 0 { t.add(["step size", fmt(r.learningRate)]) }
    t.add(["stopped", "\(r.stopReason.rawValue) after \(r.iterations) iterations"])
    if let rounds = r.rounds, rounds > 0 || (r.setupRounds ?? 0) > 0 {
        t.add(["rounds", "\(rounds) of training, \(r.setupRounds ?? 0) of setup"])
    }
    t.add(["time", "\(formatSeconds(r.seconds)) (\(formatSeconds(r.seconds / Double(max(r.iterations, 1))))/iteration), setup \(formatSeconds(r.setupSeconds))"])
    t.add(["loss", fmt(r.finalLoss)])
    if let opt = r.optimalLoss {
        // The reference's method is in the notes (LAPACK for dense data, Krylov for sparse).
        let sparse = r.notes.contains { $0.hasPrefix("reference w*:") && $0.contains("sparse") }
        t.add([sparse ? "L(w*) (Krylov)" : "L(w*) (LAPACK)", fmt(opt)]); t.add(["L(w) − L(w*)", fmt(r.finalLoss - opt)]) }
    if let d = r.relativeDistance { t.add(["|w − w*| / |w*|", fmt(d)]) }
    t.add(["|∇L(w)|", fmt(r.finalGradientNorm)])
    if let c = r.consensusDistance { t.add(["consensus distance", fmt(c)]) }
    t.add(["bytes sent", "\(formatBytes(r.totalBytesSent)) in \(r.totalMessages) messages"
               + (r.setupBytesSent.map { r.nodes > 1 ? " (\(formatBytes($0)) of them in setup)" : "" } ?? "")])
    if let sp = r.speedup { t.add(["speedup vs 1 node", String(format: "%.2f×", sp)]) }
    if !r.staleness.isEmpty {
        let total = r.staleness.values.reduce(0, +)
        let mean = Double(r.staleness.reduce(0) { $0 + $1.key * $1.value }) / Double(max(total, 1))
        t.add(["staleness", String(format: "mean %.2f, max %d over %d updates", mean, r.staleness.keys.max() ?? 0, total)])
    }
    out += t.render().split(separator: "\n").dropFirst(2).joined(separator: "\n") + "\n"
    if r.perNode.count > 1 {
        var n = TextTable(["rank", "role", "rows", "compute", "comm", "waiting", "sent", "received", "msgs"])
        for p in r.perNode {
            n.add(["\(p.rank)", p.role, "\(p.rows)", formatSeconds(p.computeSeconds), formatSeconds(p.communicationSeconds),
                   formatSeconds(p.waitingSeconds), formatBytes(p.bytesSent), formatBytes(p.bytesReceived), "\(p.messagesSent)"])
        }
        out += "\n" + n.render() + "\n"
    }
    for note in r.notes { out += "note: \(note)\n" }
    return out
}
