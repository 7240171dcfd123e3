/// Why training stopped.
public enum StopReason: String, Codable, Sendable {
    /// The gradient-norm tolerance was met.
    case converged
    /// The iteration budget ran out.
    case maxIterations = "max-iterations"
    /// The loss became NaN/∞ or grew without bound.
    case diverged
}

/// What one node returns when its strategy finishes.
public struct NodeOutcome: Codable, Sendable {
    public var rank: Int
    /// "server", "worker", "peer", "single".
    public var role: String
    /// The model this node holds at the end (nil for nodes that hold none, e.g. PS workers).
    public var model: [Double]?
    /// Iterations (rounds) this node completed.
    public var iterations: Int
    /// Set by the node that decided to stop (the monitor).
    public var stopReason: StopReason?
    /// Step size the node used.
    public var learningRate: Double
    public var trace: [TracePoint]
    /// Staleness histogram of the updates this node applied.
    public var staleness: [Int: Int]
    /// Rows this node trained on.
    public var rows: Int
    /// Filled by the backend.
    public var metrics: NodeMetrics.Snapshot
    /// Anything noteworthy (a lost peer, a skipped shard).
    public var notes: [String]

    public init(rank: Int, role: String, model: [Double]?, iterations: Int, stopReason: StopReason?,
                learningRate: Double, recorder: Recorder, rows: Int, notes: [String] = []) {
        self.rank = rank
        self.role = role
        self.model = model
        self.iterations = iterations
        self.stopReason = stopReason
        self.learningRate = learningRate
        self.trace = recorder.points
        self.staleness = recorder.staleness
        self.rows = rows
        self.metrics = NodeMetrics.Snapshot()
        self.notes = notes
    }
}

/// The training diverged: the loss became NaN/∞ or grew. Names the step size.
public struct DivergenceError: Error, CustomStringConvertible {
    public var iteration: Int
    public var learningRate: Double
    public var gradientNorm: Double
    public var description: String {
        "training diverged at iteration \(iteration) (gradient norm \(gradientNorm)) with step size \(learningRate): "
            + "the step is too large for this problem — try --lr auto, or a smaller --lr"
    }
}
