/// Which strategy runs, and each strategy's own options.
///
/// Every strategy that has settings owns a small `ComponentOptions` value in its own file
/// (`ParameterServerOptions` beside `ParameterServer`, `GossipOptions` beside `Gossip`, …); the
/// spec holds one of each, and `registry` lists them. In a job file each sits under its key:
/// `{"kind": "ps", "parameterServer": {"staleness": 2}}`. The all-reduce algorithm is not one
/// strategy's: `allreduce` uses it for its gradients, and every strategy for its collective setup
/// steps (the step size, the reference), so it stays a field of the spec itself.
public struct StrategySpec: Sendable, Equatable {
    public var kind: StrategyKind = .mapReduce
    /// All-reduce algorithm (AllReduceSGD, and the collective setup steps of every strategy).
    public var allReduce: AllReduceAlgorithm = .ring
    public var parameterServer = ParameterServerOptions()
    public var gossip = GossipOptions()
    public var gram = GramOptions()
    public var oneShot = OneShotOptions()
    public var localSGD = LocalSGDOptions()
    public var cocoa = CoCoAOptions()

    public init(kind: StrategyKind = .mapReduce, allReduce: AllReduceAlgorithm = .ring) {
        self.kind = kind
        self.allReduce = allReduce
    }

    /// The registration of every strategy's options: its key in the job file, the strategy that
    /// reads it, and where it is kept.
    static var registry: [OptionsEntry<StrategySpec, StrategyKind>] {
        [OptionsEntry("parameterServer", for: .parameterServer, \.parameterServer),
         OptionsEntry("gossip", for: .gossip, \.gossip),
         OptionsEntry("gram", for: .gram, \.gram),
         OptionsEntry("oneShot", for: .oneShot, \.oneShot),
         OptionsEntry("localSGD", for: .localSGD, \.localSGD),
         OptionsEntry("cocoa", for: .cocoa, \.cocoa)]
    }

    /// Fields that once sat flat in the spec and where they are now, for the message that meets an
    /// old job file.
    static let movedFields = [
        "staleness": "parameterServer.staleness", "topology": "gossip.topology",
        "asynchronous": "gossip.asynchronous", "gradientTracking": "gossip.gradientTracking",
    ]

    /// Each registered options value's own rules (the topology's fit to the node count is the job's).
    public func validate() throws {
        try Self.registry.validate(self)
    }

    /// Options set away from their defaults for a strategy that does not run.
    var ignoredOptionWarnings: [JobWarning] {
        Self.registry.ignoredWarnings(self, active: kind, prefix: "strategy")
    }
}

extension StrategySpec: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: OptionsCodingKey.self)
        self.init(kind: try c.decodeIfPresent(StrategyKind.self, forKey: OptionsCodingKey("kind")) ?? .mapReduce,
                  allReduce: try c.decodeIfPresent(AllReduceAlgorithm.self, forKey: OptionsCodingKey("allReduce")) ?? .ring)
        try Self.registry.decode(into: &self, from: c)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: OptionsCodingKey.self)
        try c.encode(kind, forKey: OptionsCodingKey("kind"))
        try c.encode(allReduce, forKey: OptionsCodingKey("allReduce"))
        try Self.registry.encode(self, into: &c)
    }
}

/// The strategies.
public enum StrategyKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case mapReduce = "mapreduce"
    case allReduce = "allreduce"
    case parameterServer = "ps"
    case hogwild
    case gossip
    /// Communication-efficient: one round of the normal equations (`NormalEquations`).
    case gram
    /// Communication-efficient: one average of the shards' exact solutions (`OneShotAveraging`).
    case oneShot = "one-shot"
    /// Communication-efficient: H local steps between model averages (`LocalSGD`).
    case localSGD = "local-sgd"
    /// Communication-efficient: CoCoA+ local dual coordinate ascent (`CoCoA`).
    case cocoa

    public var description: String { rawValue }

    /// Whether every iteration is a global synchronisation (the result is then independent of
    /// timing and of how the rows were cut).
    public var isSynchronous: Bool { self == .mapReduce || self == .allReduce }
}

