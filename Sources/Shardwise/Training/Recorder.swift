import Synchronization

/// One point of a node's trace: where the model was at an iteration, and what the node knew then.
public struct TracePoint: Codable, Sendable, Equatable {
    public var iteration: Int
    /// Seconds since the start (virtual in the simulator) at which the iteration began, i.e. when
    /// this model was in hand (synchronous strategies; the asynchronous ones stamp when they
    /// observe).
    public var time: Double
    /// The model at this point (before the iteration's update), for exact offline evaluation.
    public var model: [Double]?
    /// What the node measured online, when it could (e.g. the full gradient's norm in synchronous
    /// strategies; an estimate in asynchronous ones).
    public var gradientNorm: Double?
    /// Communication rounds of training the node had taken part in when it had this model in
    /// hand and evaluated (the round that evaluated it included).
    public var rounds: Int?

    public init(iteration: Int, time: Double, model: [Double]? = nil, gradientNorm: Double? = nil, rounds: Int? = nil) {
        self.iteration = iteration
        self.time = time
        self.model = model
        self.gradientNorm = gradientNorm
        self.rounds = rounds
    }
}

/// A line of live progress, as the monitor node sees it.
public struct TrainingProgress: Sendable {
    public var rank: Int
    public var iteration: Int
    public var maxIterations: Int
    public var time: Double
    public var loss: Double?
    public var gradientNorm: Double?
    public var distance: Double?

    public init(rank: Int, iteration: Int, maxIterations: Int, time: Double,
                loss: Double? = nil, gradientNorm: Double? = nil, distance: Double? = nil) {
        self.rank = rank
        self.iteration = iteration
        self.maxIterations = maxIterations
        self.time = time
        self.loss = loss
        self.gradientNorm = gradientNorm
        self.distance = distance
    }
}

/// Collects one node's trace, staleness and progress. A node writes to its own recorder only.
public final class Recorder: @unchecked Sendable {
    public let rank: Int
    public let traceEvery: Int
    public private(set) var points: [TracePoint] = []
    /// Staleness of each applied update → how many updates had it.
    public private(set) var staleness: [Int: Int] = [:]
    /// Communication rounds of training (a solver's evaluations; strategies without a solver
    /// count their iterations' exchanges) and of setup (step size, row counts), counted apart.
    public var rounds = 0
    public var setupRounds = 0
    /// Bytes this node had sent when training began (setup traffic), nil until then.
    public private(set) var setupBytesSent: Int?
    /// Called with progress (the CLI prints it); may be nil.
    public var onProgress: (@Sendable (TrainingProgress) -> Void)?
    /// The node's timeline when the job records one (`Job.timelineEvery`).
    public var timeline: Timeline?

    public init(rank: Int, traceEvery: Int, onProgress: (@Sendable (TrainingProgress) -> Void)? = nil) {
        self.rank = rank
        self.traceEvery = max(1, traceEvery)
        self.onProgress = onProgress
    }

    /// Whether iteration `k` is a trace point.
    public func wants(_ iteration: Int) -> Bool { iteration % traceEvery == 0 }

    public func record(_ point: TracePoint) { points.append(point) }

    public func recordStaleness(_ s: Int) { staleness[s, default: 0] += 1 }

    /// Marks the end of setup: the bytes sent so far were setup traffic.
    public func startTraining(bytesSent: Int) { setupBytesSent = bytesSent }

    public func progress(_ p: TrainingProgress) { onProgress?(p) }
}
