/// Everything one node of an SPMD program has: how to talk, its data, what to train.
///
/// A backend builds one `Node` per rank and hands it to the same `Strategy` on every rank.
public struct Node<Scalar: BLASScalar>: Sendable {
    /// How this node talks to the others.
    public let comm: any Communicator
    /// This node's rows (empty for a node that holds no data, such as a parameter server).
    public let shard: Shard<Scalar>
    /// The kernel over `shard` (dense or CSR, the same surface), with its workspace.
    public let kernel: any ShardKernel<Scalar>
    public let job: Job
    /// Rows of the whole dataset (the divisor of every gradient sum).
    public let totalRows: Int
    /// Columns of X.
    public let features: Int
    /// This node's codec instance (codecs with error feedback keep per-node state).
    public let codec: VectorCodec
    /// Where this node records its trace.
    public let recorder: Recorder
    /// The exact solution, when known, for the distance to w* in progress lines and traces.
    public let reference: [Double]?
    /// A model to start from instead of zeros (resume from a checkpoint).
    public let initialModel: [Double]?

    public init(comm: any Communicator, shard: Shard<Scalar>, job: Job, totalRows: Int,
                reference: [Double]? = nil, initialModel: [Double]? = nil, recorder: Recorder? = nil) {
        self.comm = comm
        self.shard = shard
        self.kernel = shard.makeKernel(link: job.objective.link)
        self.job = job
        self.totalRows = totalRows
        self.features = shard.features
        self.codec = job.codec.makeCodec()
        self.recorder = recorder ?? Recorder(rank: comm.rank, traceEvery: job.effectiveTraceEvery)
        self.reference = reference
        self.initialModel = initialModel
    }

    public var rank: Int { comm.rank }
    public var size: Int { comm.size }
    public var objective: Objective { job.objective }

    /// The starting model: the checkpoint's, or zeros.
    public func startingModel() -> [Scalar] {
        if let initialModel, initialModel.count == features { return initialModel.map { Scalar($0) } }
        return [Scalar](repeating: 0, count: features)
    }

    /// |w − w*| / |w*| (or |w − w*| when w* = 0); nil without a reference.
    public func relativeDistance(_ w: [Scalar]) -> Double? {
        reference.map { relativeDistanceToReference(w.map(Double.init), $0) }
    }
}

/// |w − w*| / |w*|, or the absolute distance when |w*| = 0.
public func relativeDistanceToReference(_ w: [Double], _ reference: [Double]) -> Double {
    var diff = 0.0, norm = 0.0
    for j in 0..<min(w.count, reference.count) {
        let e = w[j] - reference[j]
        diff += e * e
        norm += reference[j] * reference[j]
    }
    return norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
}

/// Euclidean norm, accumulated in Double.
public func euclideanNorm<Scalar: BLASScalar>(_ v: some Collection<Scalar>) -> Double {
    v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
}
