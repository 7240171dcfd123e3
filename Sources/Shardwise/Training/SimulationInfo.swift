/// The models a simulated run used, stored in its report (`TrainingReport.simulation`) so that every
/// simulated result says exactly which network, compute, straggler and fault assumptions produced
/// it. The simulator lives in `ShardwiseSimulation`; these are plain data so the core can carry them.
public struct SimulationModel: Codable, Sendable, Equatable {
    public var network: NetworkModel
    public var compute: ComputeModel
    public var stragglers: StragglerModel
    /// Crash-and-restart events.
    public var faults: [FaultSpec]

    public init(network: NetworkModel = NetworkModel(), compute: ComputeModel = ComputeModel(),
                stragglers: StragglerModel = StragglerModel(), faults: [FaultSpec] = []) {
        self.network = network
        self.compute = compute
        self.stragglers = stragglers
        self.faults = faults
    }
}

/// Each message costs `latency + bytes / bandwidth` (the seeds' formula). With `sharedLinks`, a
/// node has one uplink and one downlink, each carrying one message at a time: a message occupies
/// its sender's uplink and its receiver's downlink for its whole cost, so a server receiving m
/// gradients takes m·(α + b/β).
public struct NetworkModel: Codable, Sendable, Equatable {
    /// α, seconds per message.
    public var latency: Double
    /// β, bytes per second.
    public var bandwidth: Double
    /// Whether messages through one node's link are serialised (contention); false gives every
    /// message its own wire.
    public var sharedLinks: Bool

    public init(latency: Double = 50e-6, bandwidth: Double = 1.25e9, sharedLinks: Bool = true) {
        self.latency = latency
        self.bandwidth = bandwidth
        self.sharedLinks = sharedLinks
    }

    /// α + bytes/β.
    public func cost(bytes: Int) -> Double { latency + Double(bytes) / bandwidth }
}

/// A gradient over `rows × features` matrix elements costs `rows · features · secondsPerElement`.
public struct ComputeModel: Codable, Sendable, Equatable {
    public var secondsPerElement: Double
    /// Whether `secondsPerElement` was measured on this machine's kernel (`--calibrate`).
    public var calibrated: Bool

    public init(secondsPerElement: Double = 1e-9, calibrated: Bool = false) {
        self.secondsPerElement = secondsPerElement
        self.calibrated = calibrated
    }
}

/// Slow nodes: fixed slowdown factors for chosen ranks, and/or a random extra delay drawn (seeded)
/// for every computation of the affected ranks.
public struct StragglerModel: Codable, Sendable, Equatable {
    public struct Slowdown: Codable, Sendable, Equatable {
        public var rank: Int
        /// Compute takes `factor` times as long (10 = ten times slower).
        public var factor: Double
        public init(rank: Int, factor: Double) { self.rank = rank; self.factor = factor }
    }

    public var slowdowns: [Slowdown]
    /// A random delay added to every computation (nil: none).
    public var delay: DelayDistribution?
    /// The ranks the random delay applies to (nil: all).
    public var delayRanks: [Int]?
    /// Seeds the delays (one stream per rank).
    public var seed: UInt64

    public init(slowdowns: [Slowdown] = [], delay: DelayDistribution? = nil, delayRanks: [Int]? = nil, seed: UInt64 = 1) {
        self.slowdowns = slowdowns
        self.delay = delay
        self.delayRanks = delayRanks
        self.seed = seed
    }

    /// The slowdown of `rank` (1 when it is not a straggler).
    public func factor(of rank: Int) -> Double {
        slowdowns.last { $0.rank == rank }?.factor ?? 1
    }

    public var isEmpty: Bool { slowdowns.isEmpty && delay == nil }
}

/// Distributions of a random extra delay, in seconds.
public enum DelayDistribution: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Exponential with the given mean.
    case exponential(mean: Double)
    /// exp(N(mu, sigma²)).
    case logNormal(mu: Double, sigma: Double)

    public var description: String {
        switch self {
        case .exponential(let m): return "exponential(mean \(m) s)"
        case .logNormal(let mu, let s): return "log-normal(μ \(mu), σ \(s))"
        }
    }

    /// The mean delay.
    public var mean: Double {
        switch self {
        case .exponential(let m): return m
        case .logNormal(let mu, let s): return exp(mu + s * s / 2)
        }
    }
}

/// Node `rank` crashes at virtual time `at` and is back `downtime` seconds later, its state intact
/// (crash-recovery, as from a checkpoint): while it is down it computes nothing, sends nothing and
/// reads nothing; messages sent to it wait in its mailbox.
public struct FaultSpec: Codable, Sendable, Equatable {
    public var rank: Int
    public var at: Double
    public var downtime: Double
    public init(rank: Int, at: Double, downtime: Double) {
        self.rank = rank
        self.at = at
        self.downtime = downtime
    }
}

/// What a simulated run reports beyond the common report: the models, and the size of the
/// simulation. Everything here is deterministic (no wall time), so equal jobs give equal reports.
public struct SimulationInfo: Codable, Sendable, Equatable {
    public var model: SimulationModel
    /// Events the simulator processed (message deliveries, wake-ups, timeouts).
    public var events: Int
    /// Point-to-point messages simulated.
    public var messages: Int
    /// Virtual seconds at which the last node finished (= the report's `seconds`).
    public var virtualSeconds: Double

    public init(model: SimulationModel, events: Int, messages: Int, virtualSeconds: Double) {
        self.model = model
        self.events = events
        self.messages = messages
        self.virtualSeconds = virtualSeconds
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
