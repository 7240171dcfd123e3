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

/// Why a simulation model cannot run. Each field of the model is set by one option of
/// `shardwise simulate`, so the message names that option (`--latency`, `--stragglers`, …): the
/// CLI shows it as is, and a library caller still learns which field is wrong.
public enum SimulationModelError: Error, CustomStringConvertible, Equatable {
    /// The value of `option`'s field is out of range, for `reason`.
    case invalid(option: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let option, let reason): return "\(option): \(reason)"
        }
    }
}

extension SimulationModel {
    /// Checks the model for one run on `nodes` nodes: every value in range, every straggler, delayed
    /// rank and fault on a rank of that world.
    public func validate(nodes: Int) throws(SimulationModelError) {
        try validate(nodeCounts: [nodes])
    }

    /// Checks the model for a study over `nodeCounts`: every value in range, and every straggler,
    /// delayed rank and fault on a rank that at least one of the worlds has (the study applies each
    /// to the node counts that have its rank, see `restricted(toNodes:)`). Validation lives here,
    /// once: the backend and the CLI both call it.
    public func validate(nodeCounts: [Int]) throws(SimulationModelError) {
        func fail(_ option: String, _ reason: String) -> SimulationModelError { .invalid(option: option, reason: reason) }
        let largest = nodeCounts.max() ?? 1
        let world = nodeCounts.count == 1 ? "0..<\(largest) (\(largest) node\(largest == 1 ? "" : "s"))"
                                         : "0..<\(largest), the largest world of the study"
        guard network.latency.isFinite, network.latency >= 0 else {
            throw fail("--latency", "the latency must be a finite number of seconds ≥ 0, got \(network.latency)")
        }
        // An infinite bandwidth is a question worth asking (messages cost only their latency).
        guard network.bandwidth > 0, !network.bandwidth.isNaN else {
            throw fail("--bandwidth", "the bandwidth must be positive, got \(network.bandwidth) bytes/s")
        }
        guard compute.secondsPerElement.isFinite, compute.secondsPerElement >= 0 else {
            throw fail(compute.calibrated ? "--calibrate" : "--compute-cost",
                       "the compute cost must be a finite number of seconds per element ≥ 0, got \(compute.secondsPerElement)")
        }
        var slowRanks = Set<Int>()
        for s in stragglers.slowdowns {
            guard s.rank >= 0, s.rank < largest else {
                throw fail("--stragglers", "rank \(s.rank) is not in \(world)")
            }
            guard slowRanks.insert(s.rank).inserted else {
                throw fail("--stragglers", "rank \(s.rank) is given twice")
            }
            // A factor in (0, 1) would be a speed-up, which is no straggler; ≤ 0 or NaN is no time at all.
            guard s.factor.isFinite, s.factor >= 1 else {
                throw fail("--stragglers", "the factor of rank \(s.rank) must be ≥ 1 (a straggler is slower: 10 = ten times slower), got \(s.factor)")
            }
        }
        switch stragglers.delay {
        case .exponential(let mean)?:
            guard mean.isFinite, mean >= 0 else { throw fail("--delay", "the mean delay must be a finite number of seconds ≥ 0, got \(mean)") }
        case .logNormal(let mu, let sigma)?:
            guard mu.isFinite else { throw fail("--delay", "the log-normal median must be positive and finite (μ = \(mu))") }
            guard sigma.isFinite, sigma >= 0 else { throw fail("--delay", "the log-normal σ must be finite and ≥ 0, got \(sigma)") }
        case nil:
            break
        }
        if let ranks = stragglers.delayRanks {
            guard stragglers.delay != nil else { throw fail("--delay-ranks", "needs a delay to apply (--delay)") }
            guard !ranks.isEmpty else { throw fail("--delay-ranks", "the list of ranks is empty") }
            for r in ranks where r < 0 || r >= largest {
                throw fail("--delay-ranks", "rank \(r) is not in \(world)")
            }
        }
        for f in faults {
            guard f.rank >= 0, f.rank < largest else { throw fail("--fault", "rank \(f.rank) is not in \(world)") }
            guard f.at.isFinite, f.at >= 0 else { throw fail("--fault", "the crash time of rank \(f.rank) must be a finite time ≥ 0, got \(f.at)") }
            guard f.downtime.isFinite, f.downtime >= 0 else {
                throw fail("--fault", "the downtime of rank \(f.rank) must be a finite time ≥ 0, got \(f.downtime)")
            }
        }
    }

    /// The model as it applies to a world of `nodes`: stragglers, delayed ranks and faults on ranks
    /// that world does not have are dropped. A study runs each node count under this, so that
    /// `--stragglers 3:10` slows rank 3 where there is one (m ≥ 4) and leaves the smaller worlds,
    /// the 1-node baseline among them, as they are.
    public func restricted(toNodes nodes: Int) -> SimulationModel {
        var m = self
        m.stragglers.slowdowns.removeAll { $0.rank >= nodes }
        // An empty list (not nil, which means every rank): the delay applies to none of this world.
        m.stragglers.delayRanks = stragglers.delayRanks.map { $0.filter { $0 < nodes } }
        m.faults.removeAll { $0.rank >= nodes }
        return m
    }

    /// One line per straggler, delayed-rank list or fault that only part of a study's worlds has:
    /// "straggler rank 3 ×10 applies to m ≥ 4". Empty when everything applies everywhere.
    public func partialApplication(nodeCounts: [Int]) -> [String] {
        let smallest = nodeCounts.min() ?? 1
        func factor(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
        var lines: [String] = []
        for s in stragglers.slowdowns where s.rank >= smallest {
            lines.append("straggler rank \(s.rank) ×\(factor(s.factor)) applies to m ≥ \(s.rank + 1)")
        }
        if let ranks = stragglers.delayRanks, stragglers.delay != nil {
            for r in ranks where r >= smallest { lines.append("delay on rank \(r) applies to m ≥ \(r + 1)") }
        }
        for f in faults where f.rank >= smallest {
            lines.append("fault of rank \(f.rank) applies to m ≥ \(f.rank + 1)")
        }
        return lines
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
