/// Synchronous MapReduce, client-server — the seeds' four steps, once per solver round:
///
/// 1. the server (rank 0) sends the request to every worker: the model w (a gradient round) or a
///    direction p (a Hessian-vector round);
/// 2. map: every node, the server included, computes its shard's part — X_kᵀ(link(X_k w) − y_k)
///    with the loss sum, or X_kᵀD X_k p;
/// 3. reduce: the server receives the sums in rank order and adds them;
/// 4. update: the server finishes the sum (÷ n, + λ) and its solver decides the next request.
///
/// The solver runs on the server alone; workers only serve rounds. An empty request tells a
/// worker to stop. Because the server sums in rank order and divides by the total row count, the
/// result is the same, up to rounding, however the rows were cut.
///
/// The request's wire form: `gd` and `nesterov` ask only for gradients, so their request is the
/// bare encoded model (the seeds' protocol, byte for byte); every other solver's request carries a
/// one-byte operation (`Operation`) before the encoded vector.
public struct MapReduce: Strategy {
    public var kind: StrategyKind { .mapReduce }
    public init() {}

    static let modelTag = Tag(1)
    static let gradientTag = Tag(2)
    static let lossTag = Tag(3)
    static let hessianTag = Tag(4)

    /// What a request asks the workers for.
    enum Operation: UInt8 {
        case gradient = 1
        case gradientWithLoss = 2
        case hessianProduct = 3
    }

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let (solver, learningRate) = try await node.prepareSolver()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        let shard = ShardWork(node: node, local: local)
        let tagged = node.job.effectiveSolver != .gd && node.job.effectiveSolver != .nesterov
        node.recorder.startTraining(bytesSent: node.comm.metrics.snapshot.bytesSent)

        if node.rank != 0 {
            let served = try await serve(node, shard: shard, tagged: tagged)
            return NodeOutcome(rank: node.rank, role: "worker", model: nil, iterations: served, stopReason: nil,
                               learningRate: learningRate ?? 0, recorder: node.recorder, rows: node.shard.rows)
        }
        let rounds = ServerRounds(node: node, shard: shard, rowsPerStep: rowsPerStep, tagged: tagged)
        let result: SolverResult
        do {
            result = try await solver.minimize(rounds, from: node.startingModelDouble(), stopping: node.job.stopping,
                                               learningRate: learningRate)
        } catch {
            try? await stopWorkers(node.comm)
            throw error
        }
        try await stopWorkers(node.comm)
        return NodeOutcome(rank: 0, role: node.size > 1 ? "server" : "single", model: result.model,
                           iterations: result.iterations, stopReason: result.stopReason,
                           learningRate: learningRate ?? 0, recorder: node.recorder, rows: node.shard.rows,
                           notes: result.notes)
    }

    /// Worker: receive a request, map it over the shard, send the sum back; an empty request
    /// means stop. Returns the rounds served.
    private func serve<Scalar: BLASScalar>(_ node: Node<Scalar>, shard: ShardWork<Scalar>, tagged: Bool) async throws -> Int {
        let comm = node.comm, codec = node.codec, d = node.features
        var v = [Scalar](repeating: 0, count: d)
        var served = 0
        while true {
            let message = try await comm.receive(from: .rank(0), tag: Self.modelTag)
            if message.payload.isEmpty { break }
            var operation = Operation.gradient
            var body = message
            if tagged {
                guard let op = Operation(rawValue: message.payload[0]) else {
                    throw CommunicationError.badPayload("rank \(comm.rank): unknown MapReduce request \(message.payload[0]) from rank 0")
                }
                operation = op
                body.payload = Array(message.payload.dropFirst())
            }
            try comm.decode(body, codec: codec, into: &v)
            switch operation {
            case .gradient, .gradientWithLoss:
                let loss = await shard.gradientSum(at: v)
                try await comm.sendVector(shard.gradient, to: 0, tag: Self.gradientTag, codec: codec)
                if operation == .gradientWithLoss { try await comm.send(Scalars.bytes([loss]), to: 0, tag: Self.lossTag) }
            case .hessianProduct:
                await shard.hessianSum(v)
                try await comm.sendVector(shard.product, to: 0, tag: Self.hessianTag, codec: codec)
            }
            served += 1
        }
        return served
    }

    private func stopWorkers(_ comm: any Communicator) async throws {
        for r in 1..<max(1, comm.size) { try await comm.send([], to: r, tag: Self.modelTag) }
    }

    /// The server's side of every round: request, map its own shard, reduce in rank order, finish.
    final class ServerRounds<Scalar: BLASScalar>: SolverRounds {
        let node: Node<Scalar>
        let shard: ShardWork<Scalar>
        let rowsPerStep: Int
        let tagged: Bool
        private var incoming: [Scalar]

        init(node: Node<Scalar>, shard: ShardWork<Scalar>, rowsPerStep: Int, tagged: Bool) {
            self.node = node
            self.shard = shard
            self.rowsPerStep = rowsPerStep
            self.tagged = tagged
            incoming = [Scalar](repeating: 0, count: node.features)
        }

        var features: Int { node.features }
        var objective: Objective { node.objective }
        var now: Double { node.comm.now }

        /// Sends `v` (encoded once) with the operation to every worker; returns v in the storage type.
        private func request(_ operation: Operation, _ v: [Double], stream: Tag) async throws -> [Scalar] {
            let comm = node.comm
            let vs = v.map { Scalar($0) }
            if comm.size > 1 {
                var bytes = comm.encode(vs, codec: node.codec, stream: CodecStream(tag: stream, peer: -1))
                if tagged { bytes.insert(operation.rawValue, at: 0) }
                for r in 1..<comm.size { try await comm.send(bytes, to: r, tag: MapReduce.modelTag) }
            }
            return vs
        }

        func gradient(at w: [Double], into g: inout [Double], wantLoss: Bool) async throws -> Double? {
            node.recorder.rounds += 1
            let comm = node.comm
            let ws = try await request(wantLoss ? .gradientWithLoss : .gradient, w, stream: MapReduce.modelTag)
            var loss = await shard.gradientSum(at: ws)
            var sum = shard.gradient
            for r in 1..<max(1, comm.size) {
                try await comm.receiveVector(from: .rank(r), tag: MapReduce.gradientTag, codec: node.codec, into: &incoming)
                for j in sum.indices { sum[j] += incoming[j] }
                if wantLoss {
                    let m = try await comm.receive(from: .rank(r), tag: MapReduce.lossTag)
                    loss += try Scalars.values(m.payload, count: 1, from: r)[0]
                }
            }
            objective.finishedGradient(sum, w: w, rows: rowsPerStep, into: &g)
            return wantLoss ? objective.finishedLoss(loss, w: w, rows: rowsPerStep) : nil
        }

        func hessianProduct(_ p: [Double], into out: inout [Double]) async throws {
            node.recorder.rounds += 1
            let comm = node.comm
            let ps = try await request(.hessianProduct, p, stream: MapReduce.hessianTag)
            await shard.hessianSum(ps)
            var sum = shard.product
            for r in 1..<max(1, comm.size) {
                try await comm.receiveVector(from: .rank(r), tag: MapReduce.hessianTag, codec: node.codec, into: &incoming)
                for j in sum.indices { sum[j] += incoming[j] }
            }
            objective.finishedHessianProduct(sum, p: p, rows: node.totalRows, into: &out)
        }

        func observe(iteration: Int, model: [Double], gradientNorm: Double?, began: Double) {
            node.observe(iteration: iteration, model: model, gradientNorm: gradientNorm, began: began)
        }
    }
}

/// Σ over nodes of the rows one gradient evaluation covers (the total row count for full batch).
func totalRowsPerStep<Scalar: BLASScalar>(_ node: Node<Scalar>, local: LocalGradient<Scalar>) async throws -> Int {
    guard node.job.optimizer.batchSize != nil else { return node.totalRows }
    node.recorder.setupRounds += 1
    var v = [Double(local.rowsPerStep)]
    try await node.comm.allReduce(&v, algorithm: .reduceBroadcast, codec: setupCodec.makeCodec())
    return Int(v[0])
}

/// A few exact scalars as bytes (little-endian Double), for the loss that travels beside a sum.
enum Scalars {
    static func bytes(_ values: [Double]) -> [UInt8] {
        var out = [UInt8](); out.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    static func values(_ bytes: [UInt8], count: Int, from rank: Int) throws -> [Double] {
        guard bytes.count == count * 8 else {
            throw CommunicationError.badPayload("expected \(count) scalar(s) (\(count * 8) bytes) from rank \(rank), got \(bytes.count) bytes")
        }
        return (0..<count).map { i in
            var bits: UInt64 = 0
            for b in 0..<8 { bits |= UInt64(bytes[i * 8 + b]) << (8 * UInt64(b)) }
            return Double(bitPattern: bits)
        }
    }
}
