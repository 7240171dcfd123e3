import Foundation
import Shardwise

/// The cost of one parallel iteration on m nodes, fitted to measured times:
///
///     T(m) = a + b/m + c·(m − 1) [+ d·log₂ m]
///
/// - a: serial work that does not shrink with m (the server's update, a replica's own step);
/// - b/m: the computation, cut m ways;
/// - c·(m − 1): communication that grows with every node added (a ring's 2(m−1) latency-bound
///   steps, a server's m gradients arriving on one link);
/// - d·log₂ m: communication in rounds of a tree (binomial, halving-doubling), fitted only when the
///   algorithm has such rounds.
///
/// Amdahl's law is the special case c = d = 0, which is why it cannot bend down: its speedup only
/// rises towards 1/p, while a measured curve falls once communication outgrows the computation
/// saved. This model has a minimum, at m* where b/m² = c + d/(m ln 2).
///
/// The fit is least squares on the *relative* error (|T̂(m) − T(m)|/T(m)), since times across a
/// sweep span orders of magnitude, with every coefficient ≥ 0 (a negative cost has no meaning): the
/// best of the least-squares fits over every subset of the coefficients whose solution is
/// non-negative — exact non-negative least squares for four unknowns.
public struct ScalingModelFit: Codable, Sendable, Equatable {
    /// a, b, c, d in seconds (d is 0 when the log term was not fitted).
    public var serial: Double
    public var parallel: Double
    public var communicationPerNode: Double
    public var communicationPerLevel: Double
    public var includesLogTerm: Bool
    /// Root-mean-square relative residual of the times, |T̂ − T|/T.
    public var rmsRelativeResidual: Double
    /// The node count that minimises T(m) over the integers (nil when T keeps falling: c = d = 0).
    public var fastestNodes: Int?

    /// The fitted T(m).
    public func time(nodes m: Int) -> Double {
        let x = Double(m)
        return serial + parallel / x + communicationPerNode * (x - 1) + communicationPerLevel * log2(x)
    }

    /// The fitted parts at m nodes: serial, parallel (computation) and communication.
    public func parts(nodes m: Int) -> (serial: Double, parallel: Double, communication: Double) {
        let x = Double(m)
        return (serial, parallel / x, communicationPerNode * (x - 1) + communicationPerLevel * log2(x))
    }

    /// The model's speedup T(1)/T(m).
    public func speedup(nodes m: Int) -> Double { time(nodes: 1) / time(nodes: m) }

    /// Fits the model to (nodes, seconds per iteration) pairs; nil with fewer than two usable points.
    public static func fit(nodes: [Int], seconds: [Double], logTerm: Bool = false) -> ScalingModelFit? {
        let pairs = zip(nodes, seconds).filter { $0.0 >= 1 && $0.1.isFinite && $0.1 > 0 }
        guard Set(pairs.map(\.0)).count >= 2 else { return nil }
        let columns = logTerm ? 4 : 3
        func basis(_ m: Int) -> [Double] {
            let x = Double(m)
            return [1, 1 / x, x - 1, log2(x)]
        }
        var best: (sse: Double, theta: [Double])?
        for subset in 1..<(1 << columns) {
            let active = (0..<columns).filter { subset & (1 << $0) != 0 }
            guard active.count <= pairs.count else { continue }
            // Weighted rows: φ(m)/T(m) · θ ≈ 1.
            var x = Matrix<Double>(rows: pairs.count, columns: active.count)
            for (i, pair) in pairs.enumerated() {
                let phi = basis(pair.0)
                for (k, j) in active.enumerated() { x[i, k] = phi[j] / pair.1 }
            }
            let ones = [Double](repeating: 1, count: pairs.count)
            guard let solution = try? LeastSquares.solve(x: x.view, y: ones[...], ridge: 0, method: .svd),
                  solution.rank == active.count, solution.w.allSatisfy({ $0 >= 0 && $0.isFinite }) else { continue }
            var theta = [Double](repeating: 0, count: 4)
            for (k, j) in active.enumerated() { theta[j] = solution.w[k] }
            let sse = pairs.reduce(0.0) { acc, pair in
                let phi = basis(pair.0)
                let e = (zip(phi, theta).reduce(0) { $0 + $1.0 * $1.1 } - pair.1) / pair.1
                return acc + e * e
            }
            if best == nil || sse < best!.sse { best = (sse, theta) }
        }
        guard let best else { return nil }
        var fit = ScalingModelFit(serial: best.theta[0], parallel: best.theta[1], communicationPerNode: best.theta[2],
                                  communicationPerLevel: best.theta[3], includesLogTerm: logTerm,
                                  rmsRelativeResidual: (best.sse / Double(pairs.count)).squareRoot(), fastestNodes: nil)
        fit.fastestNodes = fit.minimiser()
        return fit
    }

    /// The integer m ≥ 1 of least T(m): the root of T′(m) = −b/m² + c + d/(m ln 2) = 0, i.e.
    /// c·m² + (d/ln 2)·m − b = 0, rounded to the better neighbour; nil when T′ < 0 everywhere.
    func minimiser() -> Int? {
        let b = parallel, c = communicationPerNode, e = communicationPerLevel / log(2.0)
        let root: Double
        if c > 0 {
            root = (-e + (e * e + 4 * c * b).squareRoot()) / (2 * c)
        } else if e > 0 {
            root = b / e
        } else {
            return nil
        }
        guard root.isFinite else { return nil }
        let low = max(1, Int(root.rounded(.down)))
        guard low < Int.max / 2 else { return nil }
        return time(nodes: low) <= time(nodes: low + 1) ? low : low + 1
    }
}

extension AllReduceAlgorithm {
    /// Whether the algorithm's steps grow as log₂ m (trees, recursive halving and doubling), so
    /// that a scaling fit needs the d·log₂ m term. The algorithms here have steps linear in m
    /// (the ring's 2(m−1), a root's 2(m−1)) or one step of m − 1 messages (all-to-all).
    public var hasLogarithmicSteps: Bool {
        switch self {
        case .reduceBroadcast, .allToAll, .ring, .native: return false
        }
    }
}
