/// Why training stopped.
public enum StopReason: String, Codable, Sendable {
    /// The gradient-norm tolerance was met.
    case converged
    /// The iteration budget ran out.
    case maxIterations = "max-iterations"
    /// The loss became NaN/∞ or grew without bound.
    case diverged
    /// A fixed-round method (`gram`, `one-shot`) did its round: its answer is final, exact (gram)
    /// or not (one-shot), and no tolerance was checked.
    case completed
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
    /// Communication rounds of training and of setup (see `Recorder.rounds`).
    public var rounds: Int
    public var setupRounds: Int
    /// Bytes sent before training began (setup), when the strategy marked it.
    public var setupBytesSent: Int?
    /// CoCoA's duality gap P(w) − D(α) at the start of each round (the monitor rank only): a
    /// certificate, L(w) − L(w*) ≤ gap, at every round.
    public var dualityGaps: [Double]? = nil
    /// The node's timeline events (when the job records one).
    public var timeline: [TimelineEvent]? = nil

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
        self.rounds = recorder.rounds
        self.setupRounds = recorder.setupRounds
        self.setupBytesSent = recorder.setupBytesSent
        self.timeline = recorder.timeline?.finish(role: role)
    }
}

/// The training diverged. Which of three things happened decides whom the message blames:
///
/// - the gradient was NaN/∞ at the first check (iteration 0), before the step size could matter:
///   the data or the starting model is at fault (`PreparedProblem` refuses non-finite data and a
///   non-finite gradient at w = 0 before training, so this is a starting model given to resume);
/// - the gradient became NaN/∞ later, or grew 10⁸-fold: the step is too large for the problem.
///
/// (A negative λ, whose loss has no minimum, never gets here: `Objective.validate()` refuses it.)
public struct DivergenceError: Error, CustomStringConvertible {
    public var iteration: Int
    public var learningRate: Double
    public var gradientNorm: Double

    public init(iteration: Int, learningRate: Double, gradientNorm: Double) {
        self.iteration = iteration
        self.learningRate = learningRate
        self.gradientNorm = gradientNorm
    }

    public enum Cause: Sendable, Equatable {
        /// Not finite where no step has yet been taken: the data or the starting model.
        case notFiniteAtStart
        /// Became NaN/∞ after some steps.
        case notFinite
        /// Grew 10⁸-fold from its first value.
        case growing
    }

    public var cause: Cause {
        if gradientNorm.isFinite { return .growing }
        return iteration == 0 ? .notFiniteAtStart : .notFinite
    }

    public var description: String {
        switch cause {
        case .notFiniteAtStart:
            return "training cannot start: the gradient at the starting model is \(gradientNorm) (iteration 0, before any step): "
                + "the data or the starting model holds values too large (or NaN) — the step size is not the cause"
        case .notFinite:
            return "training diverged at iteration \(iteration): the gradient became \(gradientNorm) with step size \(learningRate): "
                + "the step is too large for this problem — try --lr auto, or a smaller --lr"
        case .growing:
            return "training diverged at iteration \(iteration): the gradient norm grew to \(gradientNorm) with step size \(learningRate): "
                + "the step is too large for this problem — try --lr auto, or a smaller --lr"
        }
    }
}
