import Shardwise

/// One node count of a scaling study.
public struct ScalingPoint: Codable, Sendable, Equatable {
    public var nodes: Int
    public var iterations: Int
    public var stopReason: StopReason
    /// Virtual seconds of the whole run.
    public var seconds: Double
    /// Virtual seconds until the tolerance was met (nil when it was not).
    public var timeToTolerance: Double?
    /// Virtual seconds per iteration: the slope of the trace, from the first iteration's start to
    /// the last one's end over the iterations between (setup rounds before the first excluded).
    /// The mean of the run's iterations, so it matches the closed forms at any iteration count.
    public var secondsPerIteration: Double
    /// The iteration's time split: each node's compute / communication / waiting over the whole
    /// run, averaged over the nodes, in proportion scaled to `secondsPerIteration` (so setup and
    /// teardown rounds weigh in: the split is exact for a run of equal iterations only).
    public var computePerIteration: Double
    public var communicationPerIteration: Double
    public var waitingPerIteration: Double
    /// T(1) / T(m), on the study's basis (time to tolerance, or time per iteration); nil when it
    /// is undefined: either time is zero (e.g. `--compute-cost 0` on one node, which then takes no
    /// time at all), or there is no 1-node point.
    public var speedup: Double?
    /// speedup / m (nil with the speedup).
    public var efficiency: Double?
    /// Karp–Flatt: the serial fraction this one measurement implies, (1/S − 1/m) / (1 − 1/m); nil
    /// at one node and with no speedup.
    public var karpFlatt: Double?
    /// Share of the iteration not spent computing, (communication + waiting) / total, averaged
    /// over the nodes: the "serial" part of the m-node run in Gustafson's sense (nil when the
    /// iteration takes no time).
    public var serialShare: Double?
    /// Gustafson's scaled speedup m − s·(m − 1), s = `serialShare`: the speedup if the problem grew
    /// with m so that the m-node run keeps this split.
    public var gustafsonScaledSpeedup: Double?
    public var relativeDistance: Double?
    public var finalLossGap: Double?
    public var bytesSent: Int
    public var messages: Int
    public var events: Int
    /// Wall seconds the simulation took on this machine (not part of any determinism claim).
    public var wallSeconds: Double
    /// Loss gap L(w) − L(w*) (or the loss, without a reference) against virtual time.
    public var lossCurve: [CurvePoint]

    // Undefined figures are written as `null`, key present (the synthesized encoding would leave
    // the key out, and a NaN would need a non-standard JSON string): readers see every column.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(nodes, forKey: .nodes)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(stopReason, forKey: .stopReason)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(timeToTolerance, forKey: .timeToTolerance)
        try c.encode(secondsPerIteration, forKey: .secondsPerIteration)
        try c.encode(computePerIteration, forKey: .computePerIteration)
        try c.encode(communicationPerIteration, forKey: .communicationPerIteration)
        try c.encode(waitingPerIteration, forKey: .waitingPerIteration)
        try c.encode(speedup, forKey: .speedup)
        try c.encode(efficiency, forKey: .efficiency)
        try c.encode(karpFlatt, forKey: .karpFlatt)
        try c.encode(serialShare, forKey: .serialShare)
        try c.encode(gustafsonScaledSpeedup, forKey: .gustafsonScaledSpeedup)
        try c.encode(relativeDistance, forKey: .relativeDistance)
        try c.encode(finalLossGap, forKey: .finalLossGap)
        try c.encode(bytesSent, forKey: .bytesSent)
        try c.encode(messages, forKey: .messages)
        try c.encode(events, forKey: .events)
        try c.encode(wallSeconds, forKey: .wallSeconds)
        try c.encode(lossCurve, forKey: .lossCurve)
    }
}

/// A point of a loss-versus-time curve.
public struct CurvePoint: Codable, Sendable, Equatable {
    public var iteration: Int
    public var time: Double
    public var loss: Double
    public var lossGap: Double?
}

/// Amdahl's law S(m) = 1 / (p + (1 − p)/m) fitted to measured speedups by least squares.
public struct AmdahlFit: Codable, Sendable, Equatable {
    /// The serial fraction p in [0, 1].
    public var serialFraction: Double
    /// Root-mean-square residual of the fit, in speedup units.
    public var rmsResidual: Double
    /// The limit 1/p (∞ when p = 0).
    public var maximumSpeedup: Double

    /// The fitted law's speedup at m nodes.
    public func speedup(nodes m: Int) -> Double { 1 / (serialFraction + (1 - serialFraction) / Double(m)) }

    /// Least squares over p ∈ [0, 1]: a grid, then golden-section refinement around the best cell.
    public static func fit(nodes: [Int], speedups: [Double]) -> AmdahlFit? {
        let pairs = zip(nodes, speedups).filter { $0.1.isFinite && $0.1 > 0 }
        guard pairs.contains(where: { $0.0 > 1 }) else { return nil }
        func sse(_ p: Double) -> Double {
            pairs.reduce(0.0) { acc, pair in
                let e = pair.1 - 1 / (p + (1 - p) / Double(pair.0))
                return acc + e * e
            }
        }
        let grid = 2000
        var best = 0
        var bestValue = Double.infinity
        for i in 0...grid {
            let v = sse(Double(i) / Double(grid))
            if v < bestValue { bestValue = v; best = i }
        }
        var lo = Double(max(best - 1, 0)) / Double(grid), hi = Double(min(best + 1, grid)) / Double(grid)
        let ratio = (5.0.squareRoot() - 1) / 2
        for _ in 0..<100 {
            let a = hi - ratio * (hi - lo), b = lo + ratio * (hi - lo)
            if sse(a) <= sse(b) { hi = b } else { lo = a }
        }
        let p = (lo + hi) / 2
        let residual = (sse(p) / Double(pairs.count)).squareRoot()
        return AmdahlFit(serialFraction: p, rmsResidual: residual, maximumSpeedup: p > 0 ? 1 / p : .infinity)
    }
}

/// A strong-scaling study: the same job on 1, 2, 4, … nodes under one simulation model.
public struct ScalingStudy: Codable, Sendable {
    public var job: Job
    public var model: SimulationModel
    /// "time to tolerance" when every run converged, else "time per iteration".
    public var basis: String
    public var points: [ScalingPoint]
    public var amdahl: AmdahlFit?
    /// T(m) = a + b/m + c·(m − 1) [+ d·log₂ m] fitted to the seconds per iteration: the serial,
    /// parallel and communication parts, and the node count that minimises the time.
    public var scalingModel: ScalingModelFit? = nil
    /// What applies to only some of the node counts, e.g. "straggler rank 3 ×10 applies to m ≥ 4"
    /// (see `SimulationModel.restricted(toNodes:)`).
    public var notes: [String] = []

    /// Runs `job` at each node count (1 is added when missing: speedups are against one node).
    /// A straggler, delayed rank or fault applies to the node counts that have its rank; the model
    /// must name only ranks that the largest count has. `onPoint` is told about each point as it
    /// is measured.
    public static func run(
        job: Job, nodeCounts: [Int], backend: SimulationBackend,
        onPoint: (@Sendable (ScalingPoint) -> Void)? = nil
    ) async throws -> ScalingStudy {
        switch job.precision {
        case .float64: return try await run(Double.self, job: job, nodeCounts: nodeCounts, backend: backend, onPoint: onPoint)
        case .float32: return try await run(Float.self, job: job, nodeCounts: nodeCounts, backend: backend, onPoint: onPoint)
        }
    }

    static func run<Scalar: BLASScalar>(
        _: Scalar.Type, job: Job, nodeCounts: [Int], backend: SimulationBackend,
        onPoint: (@Sendable (ScalingPoint) -> Void)?
    ) async throws -> ScalingStudy {
        // One BLAS thread, held for the reference solutions too: reproducible studies.
        try await BLASThreading.withOneThread {
            try await study(Scalar.self, job: job, nodeCounts: nodeCounts, backend: backend, onPoint: onPoint)
        }
    }

    private static func study<Scalar: BLASScalar>(
        _: Scalar.Type, job: Job, nodeCounts: [Int], backend: SimulationBackend,
        onPoint: (@Sendable (ScalingPoint) -> Void)?
    ) async throws -> ScalingStudy {
        let counts = Array(Set(nodeCounts + [1])).sorted()
        try backend.model.validate(nodeCounts: counts)
        let dataset = try DataLoader.load(job.data, as: Scalar.self)
        var points: [ScalingPoint] = []
        for m in counts {
            var j = job
            j.nodes = m
            let problem = try PreparedProblem<Scalar>(job: j, dataset: dataset)
            let wall0 = MonotonicClock.now()
            let report = try await SimulationBackend(model: backend.model.restricted(toNodes: m)).run(problem: problem)
            let wall = MonotonicClock.now() - wall0
            let point = Self.point(report, wallSeconds: wall)
            onPoint?(point)
            points.append(point)
        }
        return finish(job: job, model: backend.model, points: points)
    }

    /// Fills in the speedups, efficiencies and fits once every point is measured.
    public static func finish(job: Job, model: SimulationModel, points raw: [ScalingPoint]) -> ScalingStudy {
        var points = raw.sorted { $0.nodes < $1.nodes }
        let allConverged = points.allSatisfy { $0.timeToTolerance != nil }
        let basis = allConverged ? "time to tolerance" : "time per iteration"
        func time(_ p: ScalingPoint) -> Double { allConverged ? p.timeToTolerance! : p.secondsPerIteration }
        if let one = points.first(where: { $0.nodes == 1 }) {
            let t1 = time(one)
            for i in points.indices {
                let m = Double(points[i].nodes)
                let tm = time(points[i])
                // A zero time on either side (no compute, no messages) has no ratio.
                guard t1 > 0, tm > 0, t1.isFinite, tm.isFinite else {
                    points[i].speedup = nil
                    points[i].efficiency = nil
                    points[i].karpFlatt = nil
                    continue
                }
                let s = t1 / tm
                points[i].speedup = s
                points[i].efficiency = s / m
                points[i].karpFlatt = m > 1 ? (1 / s - 1 / m) / (1 - 1 / m) : nil
            }
        }
        let measured = points.compactMap { p in p.speedup.map { (p.nodes, $0) } }
        let fit = AmdahlFit.fit(nodes: measured.map(\.0), speedups: measured.map(\.1))
        var study = ScalingStudy(job: job, model: model, basis: basis, points: points, amdahl: fit,
                                 notes: model.partialApplication(nodeCounts: points.map(\.nodes)))
        // The per-iteration cost model; a log₂ m term where the all-reduce has tree-like rounds.
        let logTerm = job.strategy.kind == .allReduce && job.strategy.allReduce.hasLogarithmicSteps
        study.scalingModel = ScalingModelFit.fit(nodes: points.map(\.nodes), seconds: points.map(\.secondsPerIteration),
                                                 logTerm: logTerm)
        return study
    }

    /// The measurements of one report (speedups are filled in by `finish`).
    public static func point(_ r: TrainingReport, wallSeconds: Double) -> ScalingPoint {
        let iterations = max(r.iterations, 1)
        // Time per iteration: the slope of the trace, so that setup (the power iteration of --lr
        // auto, row counts) does not count; the whole run when there is no slope. Every point is
        // stamped when its iteration began and the final one when the last iteration ended (see
        // `Node.observe`), so N iterations span exactly N intervals.
        var perIteration = r.seconds / Double(iterations)
        if let first = r.trace.first, let last = r.trace.last, last.iteration > first.iteration {
            perIteration = (last.time - first.time) / Double(last.iteration - first.iteration)
        }
        // The split of the whole run, averaged over nodes, scaled to the steady iteration.
        let n = Double(max(r.perNode.count, 1))
        let totals = (r.perNode.reduce(0.0) { $0 + $1.computeSeconds } / n,
                      r.perNode.reduce(0.0) { $0 + $1.communicationSeconds } / n,
                      r.perNode.reduce(0.0) { $0 + $1.waitingSeconds } / n)
        let sum = totals.0 + totals.1 + totals.2
        let scale = sum > 0 ? perIteration / sum : 0
        let compute = totals.0 * scale, communication = totals.1 * scale, waiting = totals.2 * scale
        let busy = compute + communication + waiting
        let serial: Double? = busy > 0 ? (communication + waiting) / busy : nil
        let m = Double(r.nodes)
        // At most 300 points of the loss curve.
        let stride = max(1, (r.trace.count + 299) / 300)
        var curve: [CurvePoint] = []
        for (i, t) in r.trace.enumerated() where i % stride == 0 || i == r.trace.count - 1 {
            curve.append(CurvePoint(iteration: t.iteration, time: t.time, loss: t.loss, lossGap: t.lossGap))
        }
        return ScalingPoint(
            nodes: r.nodes, iterations: r.iterations, stopReason: r.stopReason, seconds: r.seconds,
            timeToTolerance: r.stopReason == .converged ? r.seconds : nil,
            secondsPerIteration: perIteration,
            computePerIteration: compute, communicationPerIteration: communication, waitingPerIteration: waiting,
            speedup: nil, efficiency: nil, karpFlatt: nil, serialShare: serial,
            gustafsonScaledSpeedup: serial.map { m - $0 * (m - 1) },
            relativeDistance: r.relativeDistance, finalLossGap: r.optimalLoss.map { r.finalLoss - $0 },
            bytesSent: r.totalBytesSent, messages: r.simulation?.messages ?? r.totalMessages,
            events: r.simulation?.events ?? 0, wallSeconds: wallSeconds, lossCurve: curve)
    }
}
