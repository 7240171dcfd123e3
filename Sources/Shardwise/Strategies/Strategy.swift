/// The per-node program of one training algorithm (SPMD: every rank runs the same strategy and
/// takes its role — server, worker, peer — from its rank and the world size).
///
/// A strategy sees only its `Node`: the communicator's point-to-point operations and collectives,
/// its shard and kernel, the job. It never imports a backend, so it runs unchanged on threads,
/// sockets, the simulator and MPI.
public protocol Strategy: Sendable {
    var kind: StrategyKind { get }
    /// Whether the strategy needs memory shared by all nodes (Hogwild). Backends without it refuse
    /// the strategy by name before starting.
    var requiresSharedMemory: Bool { get }
    /// Runs this node's part of the training.
    func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome
}

extension Strategy {
    public var requiresSharedMemory: Bool { false }
}

extension StrategyKind {
    /// The strategy that implements this kind.
    public func makeStrategy() -> any Strategy {
        switch self {
        case .mapReduce: return MapReduce()
        case .allReduce: return AllReduceSGD()
        case .parameterServer: return ParameterServer()
        case .hogwild: return Hogwild()
        case .gossip: return Gossip()
        case .gram: return NormalEquations()
        case .oneShot: return OneShotAveraging()
        case .localSGD: return LocalSGD()
        case .cocoa: return CoCoA()
        }
    }

    /// Ranks that hold data in a world of `size`: all of them, except the parameter server's rank
    /// 0 (which only serves) when there are workers.
    public func dataRanks(worldSize size: Int) -> Range<Int> {
        self == .parameterServer && size > 1 ? 1..<size : 0..<size
    }
}

extension Job {
    /// The shard index rank `r` holds, or nil when it holds none.
    public func shardIndex(of rank: Int) -> Int? {
        let ranks = strategy.kind.dataRanks(worldSize: nodes)
        return ranks.contains(rank) ? rank - ranks.lowerBound : nil
    }

    /// How many shards the data is cut into.
    public var shardCount: Int { strategy.kind.dataRanks(worldSize: nodes).count }
}
