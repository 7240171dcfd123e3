/// Synchronous MapReduce gradient descent, client-server — the seeds' four steps:
///
/// 1. the server (rank 0) sends the model w to every worker;
/// 2. map: every node, the server included, computes its shard's gradient sum X_kᵀ(X_k w − y_k);
/// 3. reduce: the server receives the sums in rank order and adds them;
/// 4. update: the server divides by n, adds λw, and takes the step.
///
/// An empty model message tells a worker to stop. Because the server sums in rank order and divides
/// by the total row count, the result is the same, up to rounding, however the rows were cut.
public struct MapReduce: Strategy {
    public var kind: StrategyKind { .mapReduce }
    public init() {}

    static let modelTag = Tag(1)
    static let gradientTag = Tag(2)

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        let learningRate = try await node.resolveLearningRate()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        let d = node.features
        var g = [Scalar](repeating: 0, count: d)
        let work = ComputeWork(rows: local.rowsPerStep, features: d)

        if node.rank != 0 {
            // Worker: receive w, map, send the sum back; an empty message means stop.
            var w = [Scalar](repeating: 0, count: d)
            var iterations = 0
            while true {
                let message = try await comm.receive(from: .rank(0), tag: Self.modelTag)
                if message.payload.isEmpty { break }
                try comm.decode(message, codec: node.codec, into: &w)
                _ = try await comm.compute(work) { local.evaluate(w: w, into: &g) }
                try await comm.sendVector(g, to: 0, tag: Self.gradientTag, codec: node.codec)
                iterations += 1
            }
            return NodeOutcome(rank: node.rank, role: "worker", model: nil, iterations: iterations, stopReason: nil,
                               learningRate: learningRate, recorder: node.recorder, rows: node.shard.rows)
        }

        // Server.
        var w = node.startingModel()
        var step = DescentStep<Scalar>(learningRate: learningRate, momentum: node.job.optimizer.momentum, features: d)
        var monitor = ConvergenceMonitor(node.job.stopping)
        var incoming = [Scalar](repeating: 0, count: d)
        var stop: StopReason = .maxIterations
        var iteration = 0
        let codec = node.codec
        while iteration < node.job.stopping.maxIterations {
            let began = comm.now
            // 1. Broadcast w (encoded once).
            if comm.size > 1 {
                let bytes = comm.encode(w, codec: codec, stream: CodecStream(tag: Self.modelTag, peer: -1))
                for r in 1..<comm.size { try await comm.send(bytes, to: r, tag: Self.modelTag) }
            }
            // 2. Map my own shard.
            _ = try await comm.compute(work) { local.evaluate(w: w, into: &g) }
            // 3. Reduce in rank order.
            for r in 1..<max(1, comm.size) {
                try await comm.receiveVector(from: .rank(r), tag: Self.gradientTag, codec: codec, into: &incoming)
                for j in 0..<d { g[j] += incoming[j] }
            }
            // 4. Finish the gradient, check, step.
            w.withUnsafeBufferPointer { wp in
                g.withUnsafeMutableBufferPointer { gp in
                    node.objective.finishGradient(gp.baseAddress!, w: wp.baseAddress!, count: d, rows: rowsPerStep)
                }
            }
            let norm = euclideanNorm(g)
            node.observe(iteration: iteration, model: w, gradientNorm: norm, began: began)
            if let reason = monitor.check(gradientNorm: norm) {
                stop = reason
                if reason == .diverged {
                    try await stopWorkers(comm)
                    throw node.divergence(iteration: iteration, learningRate: learningRate, gradientNorm: norm)
                }
                break
            }
            step.apply(g, to: &w)
            iteration += 1
        }
        if stop == .maxIterations { node.observe(iteration: iteration, model: w, gradientNorm: nil, force: true) }
        try await stopWorkers(comm)
        return NodeOutcome(rank: 0, role: comm.size > 1 ? "server" : "single", model: w.map(Double.init),
                           iterations: iteration, stopReason: stop, learningRate: learningRate,
                           recorder: node.recorder, rows: node.shard.rows)
    }

    private func stopWorkers(_ comm: any Communicator) async throws {
        for r in 1..<max(1, comm.size) { try await comm.send([], to: r, tag: Self.modelTag) }
    }
}

/// Σ over nodes of the rows one gradient evaluation covers (the total row count for full batch).
func totalRowsPerStep<Scalar: BLASScalar>(_ node: Node<Scalar>, local: LocalGradient<Scalar>) async throws -> Int {
    guard node.job.optimizer.batchSize != nil else { return node.totalRows }
    var v = [Double(local.rowsPerStep)]
    try await node.comm.allReduce(&v, algorithm: .reduceBroadcast, codec: setupCodec.makeCodec())
    return Int(v[0])
}
