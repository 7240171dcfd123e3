/// One node's part of every solver round, whatever the strategy: its shard's gradient sum with
/// the loss sum, and its shard's Hessian-vector sum at the point of the latest gradient. The
/// buffers are allocated once; vectors arrive and leave in the node's storage precision.
///
/// For logistic regression the Hessian's row weights D = σ′(X_k w) are computed on the first
/// product after a gradient at a new w (one pass over the shard) and kept for the products that
/// follow — Newton-CG asks for many at one w. Least squares and ridge need no weights.
final class ShardWork<Scalar: BLASScalar>: @unchecked Sendable {
    let local: LocalGradient<Scalar>
    let comm: any Communicator
    let logistic: Bool
    let work: ComputeWork
    /// The gradient sum of the latest `gradientSum`.
    var gradient: [Scalar]
    /// The Hessian-vector sum of the latest `hessianSum`.
    var product: [Scalar]
    private var point: [Scalar]
    private var weights: [Scalar]
    private var weightsValid = false

    init(node: Node<Scalar>, local: LocalGradient<Scalar>) {
        self.local = local
        comm = node.comm
        logistic = node.objective.link == .logistic
        let d = node.features
        work = local.kernel.work(rows: local.rowsPerStep)
        gradient = [Scalar](repeating: 0, count: d)
        product = [Scalar](repeating: 0, count: d)
        point = [Scalar](repeating: 0, count: d)
        weights = [Scalar](repeating: 0, count: logistic ? local.kernel.rows : 0)
    }

    /// X_kᵀ(link(X_k w) − y_k) into `gradient`; returns the loss sum. Fixes the Hessian's point.
    func gradientSum(at w: [Scalar]) async -> Double {
        point = w
        weightsValid = false
        let e = await comm.compute(work) { local.evaluate(w: w, into: &gradient) }
        return e.lossSum
    }

    /// X_kᵀ D X_k p (D = I for least squares) into `product`.
    func hessianSum(_ p: [Scalar]) async {
        let kernel = local.kernel
        guard kernel.rows > 0 else {
            for j in product.indices { product[j] = 0 }
            return
        }
        await comm.compute(kernel.work(rows: kernel.rows)) {
            if logistic && !weightsValid {
                point.withUnsafeBufferPointer { wp in
                    weights.withUnsafeMutableBufferPointer { kernel.curvatureWeights(w: wp.baseAddress!, into: $0.baseAddress!) }
                }
                weightsValid = true
            }
            p.withUnsafeBufferPointer { pp in
                product.withUnsafeMutableBufferPointer { out in
                    weights.withUnsafeBufferPointer { dp in
                        kernel.weightedGramProduct(pp.baseAddress!, weights: logistic ? dp.baseAddress : nil,
                                                   into: out.baseAddress!)
                    }
                }
            }
        }
    }
}

extension Objective {
    /// ∇L from a gradient sum over `rows` rows: g/n + λw, in Double.
    func finishedGradient<Scalar: BLASScalar>(_ sum: [Scalar], w: [Double], rows: Int, into g: inout [Double]) {
        let inv = 1 / Double(max(rows, 1))
        for j in g.indices { g[j] = Double(sum[j]) * inv + lambda * w[j] }
    }

    /// ∇²L·p from a Hessian-vector sum over `rows` rows: h/n + λp, in Double.
    func finishedHessianProduct<Scalar: BLASScalar>(_ sum: [Scalar], p: [Double], rows: Int, into out: inout [Double]) {
        let inv = 1 / Double(max(rows, 1))
        for j in out.indices { out[j] = Double(sum[j]) * inv + lambda * p[j] }
    }

    /// L(w) from a loss sum over `rows` rows: sum/n + λ/2·|w|².
    func finishedLoss(_ lossSum: Double, w: [Double], rows: Int) -> Double {
        lossSum / Double(max(rows, 1)) + (lambda > 0 ? 0.5 * lambda * Vectors.dot(w, w) : 0)
    }
}

extension Node {
    /// The starting model in Double (the checkpoint's, or zeros).
    func startingModelDouble() -> [Double] {
        if let initialModel, initialModel.count == features { return initialModel }
        return [Double](repeating: 0, count: features)
    }

    /// The job's solver, and the step size it needs (resolved here, as setup rounds, when it
    /// needs one). Every rank calls this: the step's Lanczos rounds are collective.
    func prepareSolver() async throws -> (solver: any Solver, learningRate: Double?) {
        let solver = job.effectiveSolver.makeSolver(job.optimizer)
        let eta: Double? = solver.needsStepSize ? try await resolveLearningRate() : nil
        return (solver, eta)
    }
}
