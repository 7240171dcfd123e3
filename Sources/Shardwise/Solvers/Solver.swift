/// The update rule, apart from who talks to whom.
///
/// A strategy decides how the nodes communicate; a solver decides what to do with the global
/// quantities that communication produces. A solver sees only a `SolverRounds` — the data as a
/// function it may evaluate, each evaluation one communication *round* across all nodes — and
/// never a communicator. So every synchronous strategy (`mapreduce`, `allreduce`, one node) runs
/// every solver, on every backend, unchanged:
///
/// | solver      | a round asks for                         | rounds per iteration            |
/// |-------------|------------------------------------------|---------------------------------|
/// | `gd`        | ∇L(w) (d numbers)                        | 1                               |
/// | `nesterov`  | ∇L(y) at the extrapolated point           | 1                               |
/// | `cg`        | ∇²L·p = (XᵀXp)/n + λp (d numbers)         | 1 (+1 to confirm convergence)   |
/// | `lbfgs`     | L(w) and ∇L(w) (d + 1 numbers)            | one per line-search trial (~1)  |
/// | `newton-cg` | ∇²L(w)·p, then L and ∇L in the line search | inner CG steps + trials         |
///
/// Adding a solver: one file here with its type (conforming to `Solver`) and its small options
/// value, one case in `SolverKind`, and its line in `SolverKind.makeSolver` — nothing else.
public protocol Solver: Sendable {
    /// Whether the solver takes the step 1/L (gd, nesterov): the strategy then resolves the
    /// learning rate before the first round (setup rounds, counted apart).
    var needsStepSize: Bool { get }

    /// Minimises the job's objective from `start`, asking `rounds` for every global quantity.
    /// - Parameters:
    ///   - learningRate: the resolved step (when `needsStepSize`), else nil.
    /// - Throws: `DivergenceError` when the iterates blow up; whatever a round throws.
    func minimize(_ rounds: some SolverRounds, from start: [Double], stopping: StoppingRule,
                  learningRate: Double?) async throws -> SolverResult
}

/// What a solver may ask of the data. Each call is one communication round: every node takes
/// part, and the answer is the same bits on every node that runs the solver (so replicas of an
/// SPMD solver never drift apart and take the same decisions without extra messages).
///
/// Vectors are `Double` whatever the storage precision: the shard kernels convert at the edge.
public protocol SolverRounds: AnyObject {
    /// Entries of w.
    var features: Int { get }
    var objective: Objective { get }
    /// Seconds since the start (virtual in the simulator).
    var now: Double { get }

    /// The finished gradient ∇L(w) (mean over the rows + λw) into `g`, and the mean loss L(w)
    /// when `wantLoss` (it then travels with the gradient sum, in the same round). One round.
    /// Also fixes the point at which `hessianProduct` is taken.
    func gradient(at w: [Double], into g: inout [Double], wantLoss: Bool) async throws -> Double?

    /// ∇²L(w̄)·p into `out`, w̄ the point of the latest `gradient` call: (XᵀXp)/n + λp for least
    /// squares and ridge (which do not depend on w̄), (XᵀD(w̄)Xp)/n + λp for logistic. One round.
    func hessianProduct(_ p: [Double], into out: inout [Double]) async throws

    /// Records iteration k's model (trace and progress; only the monitor node keeps it).
    /// `began` is when the iteration's model was in hand.
    func observe(iteration: Int, model: [Double], gradientNorm: Double?, began: Double)
}

extension SolverRounds {
    /// L(w) and ∇L(w) into `g`: a gradient round that carries the loss. One round.
    func lossAndGradient(at w: [Double], into g: inout [Double]) async throws -> Double {
        guard let loss = try await gradient(at: w, into: &g, wantLoss: true) else {
            preconditionFailure("a gradient round asked for the loss returned none")
        }
        return loss
    }
}

/// What a solver returns.
public struct SolverResult: Sendable {
    public var model: [Double]
    public var iterations: Int
    public var stopReason: StopReason
    /// Anything worth a line in the report (a line search that found no decrease, a restart).
    public var notes: [String]

    public init(model: [Double], iterations: Int, stopReason: StopReason, notes: [String] = []) {
        self.model = model
        self.iterations = iterations
        self.stopReason = stopReason
        self.notes = notes
    }
}

/// The solvers.
public enum SolverKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Gradient descent, step 1/L or fixed, optional heavy-ball momentum and mini-batches.
    case gd
    /// Nesterov's accelerated gradient with adaptive (gradient) restart.
    case nesterov
    /// Conjugate gradient on the normal equations (least squares, ridge).
    case cg
    /// Limited-memory BFGS with a strong-Wolfe line search.
    case lbfgs
    /// Truncated Newton: CG on the Newton system with Hessian-vector rounds, Armijo line search.
    case newtonCG = "newton-cg"

    public var description: String { rawValue }

    /// The solver this kind names, with its options from `optimizer`.
    public func makeSolver(_ optimizer: OptimizerSpec) -> any Solver {
        switch self {
        case .gd: return GradientDescent(momentum: optimizer.momentum)
        case .nesterov: return Nesterov(optimizer.nesterov)
        case .cg: return ConjugateGradient()
        case .lbfgs: return LBFGS(optimizer.lbfgs)
        case .newtonCG: return NewtonCG(optimizer.newtonCG)
        }
    }

    /// Whether the solver uses exact full gradients (so mini-batches and momentum are not its).
    public var needsFullBatch: Bool { self != .gd && self != .nesterov }

    /// Whether it minimises `objective`: `cg` solves the normal equations, which only least
    /// squares and ridge have.
    public func supports(_ objective: Objective) -> Bool {
        self != .cg || objective.link == .identity
    }

    /// The default for an objective: `cg` for least squares and ridge (the normal equations,
    /// exact in ≤ d rounds, one d-vector per round), `lbfgs` for logistic (as scikit-learn's
    /// `LogisticRegression` and Spark MLlib do).
    public static func preferred(for objective: Objective) -> SolverKind {
        objective.link == .identity ? .cg : .lbfgs
    }
}

extension StrategyKind {
    /// Whether the strategy runs the job's solver: the synchronous ones, whose every round is a
    /// global evaluation. The asynchronous strategies apply gradients as they arrive (gd).
    public var runsSolvers: Bool { self == .mapReduce || self == .allReduce }
}

extension Job {
    /// The solver that runs: the one named, else `gd` where the job asks for what only gradient
    /// descent has (a fixed step, momentum, mini-batches) or the strategy runs no solver, else the
    /// objective's preferred one (`cg` for least squares and ridge, `lbfgs` for logistic).
    public var effectiveSolver: SolverKind {
        if let s = optimizer.solver { return s }
        if !strategy.kind.runsSolvers { return .gd }
        if case .fixed = optimizer.learningRate { return .gd }
        if optimizer.momentum > 0 || optimizer.batchSize != nil { return .gd }
        return SolverKind.preferred(for: objective)
    }
}
