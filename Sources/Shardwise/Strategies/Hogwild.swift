import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hogwild! (Niu, Recht, Ré & Wright, 2011): every node updates one shared w in place, without
/// locks. A node reads w (possibly while others write it), computes its gradient, and subtracts
/// its step entry by entry; races may lose or mix updates, which the algorithm tolerates.
///
/// Needs memory shared by all nodes: backends without it (sockets, MPI) refuse it by name.
///
/// With full-shard gradients, plain Hogwild is incremental gradient descent, whose constant step
/// leaves it O(η) away from w* (each node pulls towards its own shard's optimum). So, as in
/// lock-free asynchronous SAGA (Leblond, Pedregosa & Lacoste-Julien, 2017), every node publishes
/// its latest gradient sum in shared memory and each update applies the sum of the latest
/// published gradients: w ← w − (η/m)·(Σ_k g_k/n + λw), written unlocked entry by entry. At a
/// fixed point every published gradient was taken at w*, so the constant step converges exactly,
/// and m updates move w about as far as one synchronous step. An iteration (round) is m updates;
/// the shared version counter counts updates. Rank 0 checks the published sum once per round and
/// raises the shared stop flag when it is small enough or the budget is spent.
///
/// Bounded delay. Hogwild's analysis assumes the delay τ of any gradient is bounded; an operating
/// system does not promise that. With more node threads than cores on a loaded machine, a thread's
/// time slice is dozens of updates made alone, against the others' published gradients from
/// before. Such a sum drives w to where the lone node's gradient cancels them: for shards of equal
/// curvature that is w* − (m−1)(w_old − w*), a reflection amplified m−1 times, and the next lone
/// thread amplifies again — the run diverged (|w − w*|/|w*| ≈ 4000 on 8 threads sharing 2 busy
/// cores, in about one run of three). So a node more than `maxLead` updates ahead of the slowest
/// yields its core, a bounded number of times (a node that is gone cannot stall the others): the
/// threads interleave as the algorithm assumes, and w itself stays lock-free. Where nodes take
/// turns on one thread (the simulator), the virtual clock already interleaves them as modelled,
/// and a simulated straggler's staleness is the experiment, not an accident: no yielding there.
public struct Hogwild: Strategy {
    public var kind: StrategyKind { .hogwild }
    public var requiresSharedMemory: Bool { true }
    public init() {}

    /// How many updates a node may run ahead of the slowest before it yields its core.
    public static let maxLead = 2
    /// How many times it yields before it goes on regardless.
    static let maxYields = 1000

    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func run<Scalar: BLASScalar>(_ node: Node<Scalar>) async throws -> NodeOutcome {
        let comm = node.comm
        guard let memory = comm.sharedMemory else {
            throw CommunicationError.unsupported(
                backend: comm.backendName, operation: "hogwild",
                reason: "Hogwild updates one model in shared memory, and this backend's nodes share none")
        }
        let learningRate = try await node.resolveLearningRate()
        let local = LocalGradient(kernel: node.kernel, batchSize: node.job.optimizer.batchSize,
                                  seed: node.job.seed, rank: node.rank)
        let rowsPerStep = try await totalRowsPerStep(node, local: local)
        let d = node.features, m = node.size
        let shared = memory.vector(named: "hogwild.w", count: d, of: Scalar.self)
        // Every node's latest gradient sum, published for the convergence check (m × d).
        let published = memory.vector(named: "hogwild.g", count: m * d, of: Scalar.self)
        let progress = memory.vector(named: "hogwild.updates", count: m, of: Double.self)
        if node.rank == 0, let start = node.initialModel {
            for j in 0..<d { shared.base[j] = Scalar(start[j]) }
        }
        try await comm.barrier()

        let invRows = Scalar(1 / Double(max(rowsPerStep, 1)))
        let lambda = Scalar(node.objective.lambda)
        let step = Scalar(learningRate / Double(m))
        let budget = node.job.stopping.maxIterations * m
        var monitor = ConvergenceMonitor(node.job.stopping)
        var stop: StopReason?
        var w = [Scalar](repeating: 0, count: d)
        var g = [Scalar](repeating: 0, count: d)
        var full = [Scalar](repeating: 0, count: d)
        var updates = 0
        /// Updates after which this node gave its core away (noted in the report).
        var yielded = 0
        var lastRound = -1
        var convergedRounds = 0
        while !shared.stop.load(ordering: .relaxed) {
            // Rule 1: not too far ahead of the slowest node.
            progress.base[node.rank] = Double(updates)
            var yields = 0
            while memory.nodesRunInParallel && yields < Self.maxYields && !shared.stop.load(ordering: .relaxed) {
                var slowest = Double.infinity
                for r in 0..<m { slowest = min(slowest, progress.base[r]) }
                if Double(updates) - slowest <= Double(Self.maxLead) { break }
                await Task.yield()
                sched_yield()
                yields += 1
            }
            if yields > 0 { yielded += 1 }
            // Read w as it is (other nodes may be writing it).
            for j in 0..<d { w[j] = shared.base[j] }
            _ = try await comm.compute(local.kernel.work(rows: local.rowsPerStep)) { local.evaluate(w: w, into: &g) }
            // Publish my gradient, then write the step along the sum of the latest published
            // gradients into the shared w, entry by entry, unlocked.
            let mine = published.base + node.rank * d
            for j in 0..<d { mine[j] = g[j] }
            for j in 0..<d {
                var sum: Scalar = 0
                for r in 0..<m { sum += published.base[r * d + j] }
                shared.base[j] -= step * (sum * invRows + lambda * shared.base[j])
            }
            updates += 1
            let version = shared.version.add(1, ordering: .relaxed).newValue
            if version >= budget { shared.stop.store(true, ordering: .relaxed) }

            // Rank 0 checks once per round: the sum of the latest published gradients at the
            // current w is the (slightly stale) full gradient.
            let round = version / m
            if node.rank == 0 && round > lastRound {
                lastRound = round
                for j in 0..<d { w[j] = shared.base[j]; full[j] = 0 }
                for r in 0..<m { for j in 0..<d { full[j] += published.base[r * d + j] } }
                w.withUnsafeBufferPointer { wp in
                    full.withUnsafeMutableBufferPointer { fp in
                        node.objective.finishGradient(fp.baseAddress!, w: wp.baseAddress!, count: d, rows: max(rowsPerStep, 1))
                    }
                }
                let norm = euclideanNorm(full)
                // The estimate is only meaningful once every node has published.
                let ready = version >= m
                node.observe(iteration: round, model: w, gradientNorm: ready ? norm : nil)
                // The published gradients may be stale: convergence must hold for two rounds in a
                // row before it counts (a single stale snapshot can look better than w is).
                let decision = ready ? monitor.check(gradientNorm: norm) : nil
                convergedRounds = decision == .converged ? convergedRounds + 1 : 0
                if decision == .diverged || convergedRounds >= 2 {
                    stop = decision
                    shared.stop.store(true, ordering: .relaxed)
                    if decision == .diverged {
                        throw node.divergence(iteration: round, learningRate: learningRate, gradientNorm: norm)
                    }
                }
            }
            // Let other nodes on the same executor run between updates.
            await Task.yield()
        }
        try await comm.barrier()
        let final = shared.snapshot()
        let rounds = shared.version.load(ordering: .relaxed) / m
        if node.rank == 0 {
            node.observe(iteration: rounds, model: final, gradientNorm: nil, force: true)
        }
        return NodeOutcome(rank: node.rank, role: "worker", model: node.rank == 0 ? final.map(Double.init) : nil,
                           iterations: node.rank == 0 ? rounds : updates,
                           stopReason: node.rank == 0 ? (stop ?? .maxIterations) : nil,
                           learningRate: learningRate, recorder: node.recorder, rows: node.shard.rows,
                           notes: yielded > 0
                               ? ["hogwild rank \(node.rank): yielded its core before \(yielded) of \(updates) updates, being more than \(Self.maxLead) ahead of the slowest node (bounded delay)"]
                               : [])
    }
}
