/// A job's data made ready to train: loaded, standardised if asked, cut into shards, with the exact
/// solution beside it. Every backend starts here, so every backend trains on the same bytes.
public struct PreparedProblem<Scalar: BLASScalar>: Sendable {
    public let job: Job
    /// The data as trained (standardised when asked): dense rows or CSR.
    public let data: TrainingData<Scalar>
    public let standardization: Standardization?
    /// w* (on the data as trained, i.e. standardised when asked), if computed: LAPACK for dense
    /// data, `KrylovReference` (CG / Newton-CG on the kernel's products) for sparse data.
    public let reference: [Double]?
    /// How `reference` was computed, for the report's notes.
    public let referenceMethod: String?
    /// L(w*).
    public let optimalLoss: Double?
    /// Shards in order; rank r holds `shards[job.shardIndex(of: r)]`.
    public let shards: [Shard<Scalar>]
    public let setupSeconds: Double
    /// What preparation did that the report should say (labels mapped, scaling without centring,
    /// the reference's method).
    public let notes: [String]

    /// The dense dataset. Dense data only: sparse data has no dense form here (read `data`).
    public var dataset: Dataset<Scalar> {
        guard case .dense(let d) = data else { preconditionFailure("\(data.source) is sparse (CSR): read `data`, not `dataset`") }
        return d
    }

    /// Loads, standardises, shards and solves.
    /// - Throws: `DataError` for data problems, `LinalgError` when LAPACK fails.
    public init(job: Job, dataset loaded: Dataset<Scalar>? = nil) throws {
        try self.init(job: job, data: loaded.map { .dense($0) })
    }

    /// Loads (unless given the data), standardises, shards and solves.
    /// - Throws: `DataError` for data problems, `LinalgError` when the reference fails.
    public init(job: Job, data loaded: TrainingData<Scalar>?) throws {
        try job.validate()
        let start = MonotonicClock.now()
        self.job = job
        var notes: [String] = []
        var data: TrainingData<Scalar>
        if let loaded {
            data = loaded
        } else {
            let labels: LabelMapping = job.objective.link == .logistic ? .signedToBinary : .keep
            let (loadedData, change) = try DataLoader.loadData(job.data, dense: job.dense, labels: labels, as: Scalar.self)
            data = loadedData
            if change != .unchanged { notes.append("\(data.source): \(change) for logistic regression") }
        }
        try data.validateTargets(for: job.objective)
        if job.standardize {
            switch data {
            case .dense(let d):
                let (s, standardised) = Standardization.fit(d, centerTarget: job.objective.link == .identity)
                standardization = s
                data = .dense(standardised)
            case .sparse(let d):
                let (s, scaled) = Standardization.fitScaling(d)
                standardization = s
                data = .sparse(scaled)
                notes.append("standardised without centring: sparse data has each column scaled to unit RMS, not centred "
                             + "(centring would fill every zero); no intercept is added")
            }
        } else {
            standardization = nil
        }
        try data.checkFinite()
        try Self.checkStartingPoint(data, objective: job.objective)
        // Sorted shards are cut from the sorted rows; sorting here, once, lets them be views.
        if job.partitioning == .sorted, case .dense(let d) = data, !d.isSortedByTarget { data = .dense(d.sortedByTarget()) }
        self.data = data
        shards = try data.shards(job.shardCount, partitioning: job.partitioning)
        if job.computeReference {
            let w: [Double]
            switch data {
            case .dense(let d):
                try LeastSquares.checkWorkspace(rows: d.rows, columns: d.features, ridge: job.objective.lambda,
                                                as: Double.self, what: d.source,
                                                advice: "train without it: --no-reference")
                w = try job.objective.exactSolution(d)
                referenceMethod = job.objective.link == .logistic ? "Newton with LAPACK solves (dense)" : "LAPACK least squares (dense)"
            case .sparse(let s):
                // A float64 copy of the values when training in float32 (the indices are shared),
                // and a handful of d- and n-vectors: never n × d.
                try MemoryBudget.check(bytes: (Scalar.self == Double.self ? 0 : s.x.nonzeroCount * 8) + 12 * 8 * (s.features + s.rows),
                                       what: "\(s.source): the sparse reference (CG workspace); train without it: --no-reference")
                let x = s.x.converted(to: Double.self)
                let kernel = SparseGradientKernel(x: x.view, y: s.y.map(Double.init)[...], link: job.objective.link)
                w = try KrylovReference.solve(kernel, objective: job.objective)
                referenceMethod = job.objective.link == .logistic
                    ? "Newton-CG on Hessian-vector products (sparse, |∇L| ≤ 1e-12)"
                    : "conjugate gradients on the normal equations (sparse, relative residual ≤ 1e-13)"
            }
            notes.append("reference w*: \(referenceMethod!)")
            reference = w
            optimalLoss = Self.evaluate(w, on: data, objective: job.objective).loss
        } else {
            reference = nil
            referenceMethod = nil
            optimalLoss = nil
        }
        self.notes = notes
        setupSeconds = MonotonicClock.now() - start
    }

    /// The shard rank `r` trains on (empty for a rank that holds none).
    public func shard(for rank: Int) -> Shard<Scalar> {
        if let k = job.shardIndex(of: rank) { return shards[k] }
        return Shard.empty(index: -1, features: data.features)
    }

    /// The node for rank `comm.rank`.
    public func node(comm: any Communicator, options: RunOptions = RunOptions()) -> Node<Scalar> {
        let recorder = Recorder(rank: comm.rank, traceEvery: job.effectiveTraceEvery,
                                onProgress: options.onProgress)
        if job.timelineEvery > 0 {
            // The clock is the communicator's (virtual in the simulator); `Timeline.finish`, when
            // the outcome is made, lets go of it.
            let timeline = Timeline(rank: comm.rank, every: job.timelineEvery, clock: { [comm] in comm.now })
            comm.metrics.timeline = timeline
            recorder.timeline = timeline
        }
        return Node(comm: comm, shard: shard(for: comm.rank), job: job, totalRows: data.rows,
                    reference: reference, initialModel: options.initialModel, recorder: recorder)
    }

    /// L(w) and ∇L(w) on the full data.
    static func evaluate(_ w: [Double], on data: TrainingData<Scalar>, objective: Objective,
                         kernel: (any ShardKernel<Scalar>)? = nil) -> (loss: Double, gradientNorm: Double) {
        let k = kernel ?? data.makeKernel(link: objective.link)
        let ws = w.map { Scalar($0) }
        var g = [Scalar](repeating: 0, count: ws.count)
        let e = k.gradientSum(w: ws, into: &g)
        ws.withUnsafeBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { gp in
                objective.finishGradient(gp.baseAddress!, w: wp.baseAddress!, count: ws.count, rows: data.rows)
            }
        }
        return (objective.finishLoss(e.lossSum, rows: data.rows, w: ws), euclideanNorm(g))
    }

    static func loss(of w: [Double], on data: Dataset<Scalar>, objective: Objective) -> Double {
        evaluate(w, on: .dense(data), objective: objective).loss
    }

    /// Builds the report from every node's outcome (metrics filled in by the backend).
    public func report(outcomes: [NodeOutcome], backend: String, seconds: Double) -> TrainingReport {
        let sorted = outcomes.sorted { $0.rank < $1.rank }
        let kernel = data.makeKernel(link: job.objective.link)
        // The trace: group every node's recorded models by iteration; several models at one
        // iteration (gossip replicas) are averaged and their spread is the consensus distance.
        var byIteration: [Int: [(time: Double, model: [Double])]] = [:]
        var roundsAt: [Int: Int] = [:]
        for o in sorted {
            for p in o.trace {
                if let m = p.model { byIteration[p.iteration, default: []].append((p.time, m)) }
                if let r = p.rounds { roundsAt[p.iteration] = max(roundsAt[p.iteration] ?? 0, r) }
            }
        }
        var trace: [IterationRecord] = []
        for iteration in byIteration.keys.sorted() {
            let entries = byIteration[iteration]!
            let (mean, consensus) = Self.average(entries.map(\.model))
            let (loss, norm) = Self.evaluate(mean, on: data, objective: job.objective, kernel: kernel)
            trace.append(IterationRecord(
                iteration: iteration, time: entries.map(\.time).max() ?? 0, loss: loss, gradientNorm: norm,
                relativeDistance: reference.map { relativeDistanceToReference(mean, $0) },
                lossGap: optimalLoss.map { loss - $0 }, consensusDistance: entries.count > 1 ? consensus : nil,
                rounds: roundsAt[iteration]))
        }
        // The final model: the average of every node's model for gossip, else the monitor's.
        let monitor = sorted.first { $0.stopReason != nil } ?? sorted[0]
        let finalModels = job.strategy.kind == .gossip ? sorted.compactMap(\.model) : [monitor.model ?? []]
        let (model, consensus) = Self.average(finalModels)
        let (loss, norm) = Self.evaluate(model, on: data, objective: job.objective, kernel: kernel)
        var staleness: [Int: Int] = [:]
        for o in sorted { for (s, c) in o.staleness { staleness[s, default: 0] += c } }
        let perNode = sorted.map { o in
            NodeReport(rank: o.rank, role: o.role, rows: o.rows, iterations: o.iterations,
                       computeSeconds: o.metrics.computeSeconds, communicationSeconds: o.metrics.communicationSeconds,
                       waitingSeconds: o.metrics.waitingSeconds, bytesSent: o.metrics.bytesSent,
                       bytesReceived: o.metrics.bytesReceived, messagesSent: o.metrics.messagesSent,
                       messagesReceived: o.metrics.messagesReceived, gradients: o.metrics.gradients,
                       bytesSentTo: o.metrics.bytesSentTo, notes: o.notes)
        }
        var originalScale: [Double]?
        if let s = standardization {
            originalScale = s.originalCoefficients(model)
            if s.constantColumns.isEmpty && !data.isSparse { originalScale!.append(s.originalIntercept(model)) }
        }
        var report = TrainingReport(
            job: job, backend: backend, nodes: job.nodes, precision: Scalar.precisionName,
            stopReason: monitor.stopReason ?? .maxIterations, iterations: monitor.iterations,
            learningRate: monitor.learningRate, seconds: seconds, setupSeconds: setupSeconds,
            model: model, originalScaleModel: originalScale, reference: reference,
            finalLoss: loss, optimalLoss: optimalLoss, finalGradientNorm: norm,
            relativeDistance: reference.map { relativeDistanceToReference(model, $0) },
            consensusDistance: finalModels.count > 1 ? consensus : nil,
            trace: trace, perNode: perNode, staleness: staleness,
            totalBytesSent: perNode.reduce(0) { $0 + $1.bytesSent },
            totalMessages: perNode.reduce(0) { $0 + $1.messagesSent },
            speedup: nil, notes: job.warnings.map(\.description) + notes + sorted.flatMap(\.notes))
        if job.strategy.kind.runsSolvers { report.solver = job.effectiveSolver.rawValue }
        report.rounds = monitor.rounds
        report.setupRounds = monitor.setupRounds
        report.dualityGaps = monitor.dualityGaps
        report.featureNames = data.featureNames ?? (0..<data.features).map { "x\($0)" }
        let events = sorted.compactMap(\.timeline)
        // One process (threads) and one virtual clock (the simulator) share a clock; socket and
        // MPI ranks are processes whose clocks started apart.
        if !events.isEmpty { report.timeline = alignedTracks(events, shared: backend == "threads" || backend == "simulation") }
        if sorted.allSatisfy({ $0.setupBytesSent != nil }) {
            let setup = sorted.reduce(0) { $0 + ($1.setupBytesSent ?? 0) }
            report.setupBytesSent = setup
            report.trainingBytesSent = report.totalBytesSent - setup
        }
        return report
    }

    /// Mean of models and √(1/m·Σ|xᵢ − x̄|²).
    static func average(_ models: [[Double]]) -> (mean: [Double], spread: Double) {
        guard let first = models.first else { return ([], 0) }
        var mean = [Double](repeating: 0, count: first.count)
        for m in models { for j in mean.indices { mean[j] += m[j] } }
        for j in mean.indices { mean[j] /= Double(models.count) }
        var spread = 0.0
        for m in models { for j in mean.indices { let e = m[j] - mean[j]; spread += e * e } }
        return (mean, (spread / Double(models.count)).squareRoot())
    }
}

/// Monotonic seconds, for wall-clock measurements.
public enum MonotonicClock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
