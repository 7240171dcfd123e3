/// One row of a report's trace, evaluated exactly on the full data after the run (so every
/// strategy's numbers mean the same thing).
public struct IterationRecord: Codable, Sendable, Equatable {
    public var iteration: Int
    /// Seconds since the start (virtual in the simulator).
    public var time: Double
    /// L(w) on the full data; for gossip, at the average of the replicas.
    public var loss: Double
    /// |∇L(w)|.
    public var gradientNorm: Double
    /// |w − w*| / |w*|, when the exact solution is known.
    public var relativeDistance: Double?
    /// L(w) − L(w*), when known.
    public var lossGap: Double?
    /// Gossip: √(1/m·Σ|xᵢ − x̄|²), the spread of the replicas.
    public var consensusDistance: Double?
    /// Rounds of training taken when this model was in hand (strategies that count rounds).
    public var rounds: Int? = nil
}

/// One node's share of the work.
public struct NodeReport: Codable, Sendable, Equatable {
    public var rank: Int
    public var role: String
    public var rows: Int
    public var iterations: Int
    public var computeSeconds: Double
    public var communicationSeconds: Double
    public var waitingSeconds: Double
    public var bytesSent: Int
    public var bytesReceived: Int
    public var messagesSent: Int
    public var messagesReceived: Int
    public var gradients: Int
    /// Bytes this node sent to each rank.
    public var bytesSentTo: [Int]
    public var notes: [String]
}

/// Everything a run produced: the job that produced it, the trace, the cost, the answer.
public struct TrainingReport: Codable, Sendable {
    public var job: Job
    public var backend: String
    public var nodes: Int
    public var precision: String
    public var stopReason: StopReason
    public var iterations: Int
    public var learningRate: Double
    /// Seconds the training took (wall, or virtual in the simulator), setup excluded.
    public var seconds: Double
    /// Seconds of setup (data, reference solution), wall time.
    public var setupSeconds: Double
    /// The final model (for gossip, the average of the replicas), on the scale trained on.
    public var model: [Double]
    /// The model mapped back to the original feature scale when `--standardize` was used.
    public var originalScaleModel: [Double]?
    /// The exact solution w* (LAPACK), when computed.
    public var reference: [Double]?
    public var finalLoss: Double
    public var optimalLoss: Double?
    public var finalGradientNorm: Double
    public var relativeDistance: Double?
    public var consensusDistance: Double?
    public var trace: [IterationRecord]
    public var perNode: [NodeReport]
    /// Staleness of applied updates (parameter server): staleness → count.
    public var staleness: [Int: Int]
    public var totalBytesSent: Int
    public var totalMessages: Int
    /// Filled when a one-node run of the same job was measured: its time / this time.
    public var speedup: Double?
    public var notes: [String]
    /// The simulator's models and counts (simulation backend only; nil elsewhere).
    public var simulation: SimulationInfo? = nil
    /// The solver that ran (synchronous strategies), e.g. "lbfgs".
    public var solver: String? = nil
    /// Communication rounds of training (the monitor's count), and of setup apart (step size,
    /// row counts): each round is one global exchange every node takes part in.
    public var rounds: Int? = nil
    public var setupRounds: Int? = nil
    /// Bytes all nodes sent during setup, and during training (so a codec's ratio is its own,
    /// not diluted by exact setup traffic); nil where a strategy does not mark the boundary.
    public var setupBytesSent: Int? = nil
    public var trainingBytesSent: Int? = nil
    /// CoCoA's duality gap P(w) − D(α) at each round: a certificate, L(w) − L(w*) ≤ gap.
    public var dualityGaps: [Double]? = nil
    /// One name per entry of `model` (the CSV header, or x0, x1, …); `originalScaleModel` has
    /// them too, then "(intercept)" when it carries one.
    public var featureNames: [String]? = nil
    /// Every node's timeline events, when the job recorded them (`--timeline` writes them as a
    /// Chrome trace and leaves them out of `--report`).
    public var timeline: [TimelineEvent]? = nil

    public var converged: Bool { stopReason == .converged }
}
