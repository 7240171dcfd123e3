/// Pieces every strategy shares: step-size resolution, the local gradient (full or mini-batch),
/// the update rule, and divergence detection.

/// A setup codec: setup collectives (row counts, Lanczos) are exact whatever the job's
/// codec, because they are not what the experiment is about.
let setupCodec = CodecSpec.float64

extension Node {
    /// Step size: the job's fixed value, or 1/L with L = λ_max(XᵀX)/n (+λ) from a few Lanczos steps
    /// over all shards (every rank calls this; the all-reduce makes it data-parallel).
    public func resolveLearningRate() async throws -> Double {
        switch job.optimizer.learningRate {
        case .fixed(let v): return v
        case .auto:
            let codec = setupCodec.makeCodec()
            var vs = [Scalar](repeating: 0, count: features)
            var out = [Scalar](repeating: 0, count: features)
            let lambdaMax = try await Lanczos.largestEigenvalue(dimension: features) { v in
                recorder.setupRounds += 1
                for j in 0..<v.count { vs[j] = Scalar(v[j]) }
                if shard.rows > 0 {
                    try await comm.compute(kernel.work(rows: shard.rows)) {
                        vs.withUnsafeBufferPointer { vp in
                            out.withUnsafeMutableBufferPointer { kernel.gramProduct(vp.baseAddress!, into: $0.baseAddress!) }
                        }
                    }
                } else {
                    for j in out.indices { out[j] = 0 }
                }
                var sum = out.map(Double.init)
                try await comm.allReduce(&sum, algorithm: .reduceBroadcast, codec: codec)
                return sum
            }
            let l = objective.smoothness(gramEigenvalue: lambdaMax, rows: totalRows)
            return l > 0 ? 1 / l : 1
        }
    }
}

/// A node's source of gradient sums: the whole shard (full batch), or seeded mini-batches drawn
/// without replacement within an epoch of the shard. The batch buffer and its kernel are
/// allocated once.
public final class LocalGradient<Scalar: BLASScalar>: @unchecked Sendable {
    public let kernel: any ShardKernel<Scalar>
    public let batchSize: Int?
    /// Rows each evaluation covers.
    public let rowsPerStep: Int
    private var rng: Xoshiro256
    private var order: [Int]
    private var cursor = 0
    private var chosen: [Int]

    public init(kernel: any ShardKernel<Scalar>, batchSize: Int?, seed: UInt64, rank: Int) {
        self.kernel = kernel
        let n = kernel.rows
        let b = batchSize.flatMap { $0 < n ? $0 : nil }
        self.batchSize = b
        rowsPerStep = b ?? n
        rng = Xoshiro256(seed: seed, stream: 1000 + UInt64(rank))
        order = Array(0..<n)
        chosen = [Int](repeating: 0, count: b ?? 0)
    }

    /// The gradient sum at w over this step's rows, into g; returns the loss sum and row count.
    public func evaluate(w: [Scalar], into g: inout [Scalar]) -> ShardEvaluation {
        guard let b = batchSize else { return kernel.gradientSum(w: w, into: &g) }
        // The next b rows of a seeded permutation (reshuffled each epoch).
        for i in 0..<b {
            if cursor == 0 { shuffle() }
            chosen[i] = order[cursor]
            cursor = (cursor + 1) % order.count
        }
        return w.withUnsafeBufferPointer { wp in
            g.withUnsafeMutableBufferPointer { kernel.gradientSum(ofRows: chosen, w: wp.baseAddress!, into: $0.baseAddress!) }
        }
    }

    private func shuffle() {
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
    }
}

/// Gradient descent with optional heavy-ball momentum: v ← βv + g; w ← w − ηv.
public struct DescentStep<Scalar: BLASScalar>: Sendable {
    public let learningRate: Double
    public let momentum: Double
    private var velocity: [Scalar]

    public init(learningRate: Double, momentum: Double, features: Int) {
        self.learningRate = learningRate
        self.momentum = momentum
        velocity = momentum > 0 ? [Scalar](repeating: 0, count: features) : []
    }

    /// w ← w − scale·η·(momentum-filtered g).
    public mutating func apply(_ g: [Scalar], to w: inout [Scalar], scale: Double = 1) {
        let eta = Scalar(learningRate * scale)
        if momentum > 0 {
            let beta = Scalar(momentum)
            for j in w.indices {
                velocity[j] = beta * velocity[j] + g[j]
                w[j] -= eta * velocity[j]
            }
        } else {
            for j in w.indices { w[j] -= eta * g[j] }
        }
    }
}

/// Watches the gradient norm: converged, diverged, or go on.
public struct ConvergenceMonitor: Sendable {
    public let tolerance: Double
    public let maxIterations: Int
    public private(set) var initialNorm: Double?

    public init(_ rule: StoppingRule) {
        tolerance = rule.tolerance
        maxIterations = rule.maxIterations
    }

    /// The decision after seeing the gradient norm at iteration k (before its update):
    /// `.converged`, `.diverged`, or nil to go on (`.maxIterations` is the loop's own business).
    public mutating func check(gradientNorm: Double) -> StopReason? {
        guard gradientNorm.isFinite else { return .diverged }
        if initialNorm == nil { initialNorm = gradientNorm }
        let g0 = initialNorm!
        if gradientNorm > 1e8 * max(g0, 1e-300) { return .diverged }
        if gradientNorm == 0 || gradientNorm <= tolerance * g0 { return .converged }
        return nil
    }
}

extension Node {
    /// Records a trace point and reports progress (the monitor node calls this each iteration).
    /// `began` is when the iteration began — when its model `w` was in hand — and is the trace
    /// point's time: so point k is at setup + k·T and the final point (the model after the last
    /// step, observed at once) at setup + N·T, and the trace's slope is the iteration time T at
    /// any iteration count. Stamping "now", after the iteration's rounds, would put every point
    /// but the final one an iteration late. nil means now (the final point).
    func observe<S: BLASScalar>(iteration: Int, model w: [S], gradientNorm: Double?, loss: Double? = nil, force: Bool = false,
                                began: Double? = nil) {
        if force || recorder.wants(iteration) {
            recorder.record(TracePoint(iteration: iteration, time: began ?? comm.now, model: w.map(Double.init),
                                       gradientNorm: gradientNorm, rounds: recorder.rounds > 0 ? recorder.rounds : nil))
        }
        // Nobody listening (benchmarks, library use): skip the O(d) distance on the per-iteration path.
        guard recorder.onProgress != nil else { return }
        recorder.progress(TrainingProgress(rank: rank, iteration: iteration, maxIterations: job.stopping.maxIterations,
                                   time: comm.now, loss: loss, gradientNorm: gradientNorm,
                                   distance: reference.map { relativeDistanceToReference(w.map(Double.init), $0) }))
    }

    /// A divergence error naming the step size.
    func divergence(iteration: Int, learningRate: Double, gradientNorm: Double) -> DivergenceError {
        DivergenceError(iteration: iteration, learningRate: learningRate, gradientNorm: gradientNorm)
    }
}
