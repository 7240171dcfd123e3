import Shardwise
import ShardwiseThreads

/// A MapReduce problem on the threads backend, prepared once (data, shards; no LAPACK reference),
/// run with 1 and with K iterations: the difference is K − 1 iterations and nothing else — thread
/// start-up, the first broadcast's setup and the report are the same in both runs.
///
/// What one "iteration" is: the server broadcasts w to the workers, every node computes its shard's
/// gradient sum (in parallel), the server receives and adds the sums and takes the step.
public final class MapReduceFixture: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let nodes: Int
    public let iterations: Int
    let single: PreparedProblem<Double>
    let many: PreparedProblem<Double>
    /// Bytes of X (all shards): what one iteration must read.
    public var bytes: Int { rows * columns * 8 }

    public init(rows: Int, columns: Int, nodes: Int = 2, iterations: Int, seed: UInt64 = 7) throws {
        self.rows = rows
        self.columns = columns
        self.nodes = nodes
        self.iterations = iterations
        var x = Matrix<Double>(rows: rows, columns: columns)
        x.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, count: $0.count, seed: seed) }
        var y = [Double](repeating: 0, count: rows)
        y.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, count: rows, seed: seed + 1) }
        let data = Dataset(x: x, y: y, source: "benchmark")
        single = try PreparedProblem(job: Self.job(rows: rows, columns: columns, nodes: nodes, iterations: 1), dataset: data)
        many = try PreparedProblem(job: Self.job(rows: rows, columns: columns, nodes: nodes, iterations: iterations), dataset: data)
    }

    static func job(rows: Int, columns: Int, nodes: Int, iterations: Int) -> Job {
        var job = Job(data: .synthetic(SyntheticSpec(rows: rows, features: columns)))
        job.nodes = nodes
        job.strategy = StrategySpec(kind: .mapReduce)
        // A fixed, tiny step: no power iteration, no divergence, and every iteration runs.
        job.optimizer = OptimizerSpec(learningRate: .fixed(1e-9))
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: 0)
        job.traceEvery = iterations + 1
        job.computeReference = false
        job.codec = .float64
        return job
    }

    /// One sample: training seconds (the report's, which exclude the report itself) with 1 and
    /// with K iterations, and the per-iteration figures derived from them.
    public struct Sample: Sendable {
        public var singleSeconds: Double
        public var manySeconds: Double
        public var iterations: Int
        /// (t(K) − t(1)) / (K − 1).
        public var secondsPerIteration: Double { (manySeconds - singleSeconds) / Double(iterations - 1) }
        /// Per node, compute seconds per iteration in the K-iteration run (the kernel, as the
        /// backend's `compute` wrapper timed it).
        public var computeSecondsPerIteration: [Double]
    }

    public func sample() async throws -> Sample {
        let backend = ThreadsBackend()
        let one = try await backend.run(problem: single)
        let k = try await backend.run(problem: many)
        precondition(k.iterations == iterations, "expected \(iterations) iterations, ran \(k.iterations)")
        return Sample(singleSeconds: one.seconds, manySeconds: k.seconds, iterations: iterations,
                      computeSecondsPerIteration: k.perNode.map { $0.computeSeconds / Double(max(1, $0.iterations)) })
    }

    /// The probe over all of X with `nodes` threads, each over one node's share of the rows.
    public func probe() {
        single.dataset.x.withUnsafeBufferPointer {
            consume(ReadProbe.sum($0.baseAddress!, count: $0.count, threads: nodes))
        }
    }

    /// The byte probe over all of X with `nodes` threads.
    public func probeBytes() {
        single.dataset.x.withUnsafeBufferPointer {
            consume(ReadProbe.sumBytes(UnsafeRawPointer($0.baseAddress!), bytes: $0.count * 8, threads: nodes))
        }
    }

    /// The `nodes`-thread read ceiling now: the faster of the two probes (wall seconds of one pass).
    public func ceilingSeconds() -> Double {
        min(seconds { probe() }, seconds { probeBytes() })
    }

    /// Seconds of one gradient of the largest shard, measured alone (median of `repeats`).
    public func shardKernelSeconds(repeats: Int) -> Double {
        let shard = single.shards.max { $0.rows < $1.rows }!
        let kernel = GradientKernel(x: shard.x, y: shard.y)
        var w = [Double](repeating: 0.01, count: columns), g = w
        _ = kernel.gradientSum(w: w, into: &g)
        let inner = max(1, 20_000 / max(1, shard.rows))
        var ts: [Double] = []
        for _ in 0..<repeats {
            ts.append(seconds { for _ in 0..<inner { consume(kernel.gradientSum(w: w, into: &g)) } } / Double(inner))
            w[0] += 1e-6
        }
        return median(ts)
    }
}

/// One codec's encode + decode of a vector, with the codec's own state (top-k's error feedback).
public final class CodecFixture: @unchecked Sendable {
    public let spec: CodecSpec
    let codec: VectorCodec
    let input: [Double]
    var output: [Double]
    public private(set) var wireBytes = 0
    /// Bytes of the Double vector: what "GB/s" is counted in.
    public var bytes: Int { input.count * 8 }

    public init(spec: CodecSpec, count: Int = 1_000_000, seed: UInt64 = 3) {
        self.spec = spec
        codec = spec.makeCodec()
        var v = [Double](repeating: 0, count: count)
        v.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, count: count, seed: seed) }
        input = v
        output = v
    }

    /// Encode then decode once; returns (encode seconds, decode seconds).
    @discardableResult
    public func roundTrip() throws -> (encode: Double, decode: Double) {
        var bytes: [UInt8] = []
        let stream = CodecStream(tag: Tag(1), peer: 1)
        let e = seconds { bytes = input.withUnsafeBufferPointer { codec.encode($0, stream: stream) } }
        wireBytes = bytes.count
        let d = try seconds { try output.withUnsafeMutableBufferPointer { try codec.decode(bytes, into: $0) } }
        return (e, d)
    }

    public static let all: [CodecSpec] = [.float64, .float32, .float16, .bfloat16, .int8(chunk: CodecSpec.defaultInt8Chunk),
                                          .topK(fraction: 0.01)]
}
