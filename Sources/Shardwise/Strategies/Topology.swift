/// The communication graph of decentralised (gossip) training, and its mixing matrix.
///
/// Mixing weights are lazy Metropolis–Hastings: W_ij = ½·1/(1 + max(deg i, deg j)) for each edge
/// and W_ii = 1 − Σ_j W_ij. W is symmetric and doubly stochastic for any undirected graph, so the
/// average of the replicas is preserved by every gossip round, and a connected graph drives them
/// to consensus at a rate set by the spectral gap of W. The laziness (the ½, i.e. (I + W_MH)/2)
/// puts W's eigenvalues in [0, 1]: without it, an eigenvalue near −1 (a 2-node or bipartite graph)
/// combined with a step η ≈ 1/L makes the disagreement between replicas grow instead of decay.
public enum TopologySpec: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    case ring
    /// A 2-D torus, rows × columns = nodes; nil picks the most square factorisation.
    case torus(rows: Int?)
    case complete
    /// Rank 0 at the centre.
    case star
    /// A random k-regular graph, drawn from `seed`.
    case randomRegular(degree: Int, seed: UInt64)
    /// No edges: every node trains alone (for showing that gossip needs a connected graph).
    case disconnected
    /// An explicit undirected edge list.
    case edges([[Int]])

    public var description: String {
        switch self {
        case .ring: return "ring"
        case .torus(let r): return r.map { "torus:\($0)" } ?? "torus"
        case .complete: return "complete"
        case .star: return "star"
        case .randomRegular(let k, let s): return "random:\(k):\(s)"
        case .disconnected: return "disconnected"
        case .edges(let e): return "edges:" + e.map { "\($0[0])-\($0[1])" }.joined(separator: ",")
        }
    }

    /// Parses `ring`, `torus`, `torus:ROWS`, `complete`, `star`, `random:K[:SEED]`, `disconnected`,
    /// `edges:0-1,1-2,…`.
    /// - Throws: `JobError.invalid` (the syntax here, the rules in `validate()`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        func int(_ s: String, _ what: String) throws -> Int {
            guard let v = Int(s), v >= 0 else {
                throw JobError.invalid(field: "", message: "\(what) must be a non-negative integer, got '\(s)'")
            }
            return v
        }
        switch parts.first ?? "" {
        case "ring": self = .ring
        case "torus": self = .torus(rows: parts.count > 1 ? try int(parts[1], "the torus's row count") : nil)
        case "complete", "full": self = .complete
        case "star": self = .star
        case "disconnected", "none": self = .disconnected
        case "random", "random-regular":
            guard parts.count > 1 else { throw JobError.invalid(field: "", message: "expected random:K[:SEED], got '\(text)'") }
            let seed: UInt64
            if parts.count > 2 {
                guard let s = UInt64(parts[2]) else {
                    throw JobError.invalid(field: "", message: "the seed must be a non-negative integer, got '\(parts[2])'")
                }
                seed = s
            } else {
                seed = 1
            }
            self = .randomRegular(degree: try int(parts[1], "the degree"), seed: seed)
        case "edges":
            guard parts.count > 1 else { throw JobError.invalid(field: "", message: "expected edges:0-1,1-2,…, got '\(text)'") }
            let body = text.dropFirst("edges:".count)
            self = .edges(try body.split(separator: ",", omittingEmptySubsequences: false).map { pair in
                // Exactly two non-negative integers: "0--1", "-1-2" and "0-" are not edges.
                let ends = pair.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count == 2, let a = Int(ends[0]), let b = Int(ends[1]), a >= 0, b >= 0 else {
                    throw JobError.invalid(field: "", message: "'\(pair)' is not an edge a-b of two ranks")
                }
                return [a, b]
            })
        default:
            throw JobError.invalid(field: "",
                message: "unknown topology '\(text)' (known: ring, torus[:ROWS], complete, star, random:K[:SEED], disconnected, edges:a-b,…)")
        }
        try validate()
    }

    /// The rules that hold on any node count.
    /// - Throws: `JobError.invalid` naming the JSON field (`torus.rows`, `randomRegular.degree`, `edges._0`).
    public func validate() throws {
        switch self {
        case .torus(let rows?) where rows < 1:
            throw JobError.invalid(field: "torus.rows", message: "a torus needs at least 1 row, got \(rows)")
        case .randomRegular(let k, _) where k < 1:
            throw JobError.invalid(field: "randomRegular.degree",
                                   message: "the degree must be at least 1, got \(k) (a 0-regular graph has no edges: say 'disconnected' if that is meant)")
        case .edges(let edges):
            for e in edges {
                guard e.count == 2, e[0] >= 0, e[1] >= 0 else {
                    throw JobError.invalid(field: "edges._0", message: "an edge is two ranks [a, b], got \(e)")
                }
                guard e[0] != e[1] else {
                    throw JobError.invalid(field: "edges._0",
                                           message: "edge \(e[0])-\(e[1]) is a self-loop (a node always keeps its own model)")
                }
            }
        default:
            return
        }
    }

    /// Checks the topology can be built on `nodes` nodes (and its neighbour lists fit in memory).
    /// - Throws: `JobError.invalid`.
    public func validate(nodes: Int) throws {
        try validate()
        do { _ = try Topology(self, nodes: nodes) } catch let error as DataError {
            throw JobError.invalid(field: "", message: "\(error)")
        }
    }

    /// Neighbour-list entries the graph has on `m` nodes (an upper bound for random graphs, whose
    /// drawing also holds k·m stubs), or nil on overflow.
    func neighbourEntries(nodes m: Int) -> Int? {
        switch self {
        case .ring, .torus: return MemoryBudget.product([m, 4])
        case .complete: return MemoryBudget.product([m, max(m - 1, 0)])
        case .star: return MemoryBudget.product([m, 2])
        case .disconnected: return 0
        case .randomRegular(let k, _): return MemoryBudget.product([m, min(max(k, 0), m), 2])   // k ≥ m is refused anyway
        case .edges(let e): return MemoryBudget.product([e.count, 2])
        }
    }
}

/// A built topology: neighbour lists and mixing weights.
public struct Topology: Sendable, Equatable {
    public let nodes: Int
    /// Sorted neighbour ranks of each node (no self-loops, no duplicates).
    public let neighbours: [[Int]]

    public init(_ spec: TopologySpec, nodes m: Int) throws {
        guard m >= 1 else { throw DataError.invalid("a topology needs at least 1 node, got \(m)") }
        // A set entry and a sorted-array entry per neighbour: about 48 bytes each.
        try MemoryBudget.check(elements: spec.neighbourEntries(nodes: m) ?? -1, bytesPerElement: 48,
                               what: "the \(spec) graph on \(m) nodes")
        nodes = m
        var adj = [Set<Int>](repeating: [], count: m)
        func link(_ a: Int, _ b: Int) {
            guard a != b else { return }
            adj[a].insert(b)
            adj[b].insert(a)
        }
        switch spec {
        case .ring:
            if m > 1 { for r in 0..<m { link(r, (r + 1) % m) } }
        case .torus(let given):
            let rows = try given ?? Topology.squarestFactor(m)
            guard rows > 0, m % rows == 0 else {
                throw DataError.invalid("topology torus:\(rows): \(m) nodes do not form a grid with \(rows) rows")
            }
            let cols = m / rows
            for r in 0..<rows {
                for c in 0..<cols {
                    let me = r * cols + c
                    link(me, r * cols + (c + 1) % cols)
                    link(me, ((r + 1) % rows) * cols + c)
                }
            }
        case .complete:
            for a in 0..<m { for b in (a + 1)..<max(a + 1, m) { link(a, b) } }
        case .star:
            for r in 1..<max(1, m) { link(0, r) }
        case .disconnected:
            break
        case .randomRegular(let k, let seed):
            guard k < m, (k * m) % 2 == 0 else {
                throw DataError.invalid("topology random:\(k): a \(k)-regular graph on \(m) nodes needs k < m and k·m even")
            }
            adj = try Topology.randomRegular(nodes: m, degree: k, seed: seed)
        case .edges(let edges):
            for e in edges {
                guard e.count == 2, e.allSatisfy({ $0 >= 0 && $0 < m }) else {
                    throw DataError.invalid("topology edge \(e) names a rank outside 0..<\(m)")
                }
                link(e[0], e[1])
            }
        }
        neighbours = adj.map { $0.sorted() }
    }

    /// Lazy Metropolis–Hastings weight of edge (i, j).
    public func weight(_ i: Int, _ j: Int) -> Double {
        0.5 / Double(1 + max(neighbours[i].count, neighbours[j].count))
    }

    /// The weight node i keeps for itself.
    public func selfWeight(_ i: Int) -> Double {
        1 - neighbours[i].reduce(0.0) { $0 + weight(i, $1) }
    }

    /// The full mixing matrix (row-major, m × m), for analysis and tests.
    public var mixingMatrix: [[Double]] {
        (0..<nodes).map { i in
            (0..<nodes).map { j in i == j ? selfWeight(i) : (neighbours[i].contains(j) ? weight(i, j) : 0) }
        }
    }

    /// The spectral gap 1 − λ₂ of the mixing matrix, λ₂ its second-largest eigenvalue (all of
    /// them lie in [0, 1] with lazy weights): how fast gossip averages, per round. 0 for a
    /// disconnected graph, 1 − ½·(m−2)/(m−1)… for the complete one.
    ///
    /// By power iteration on W restricted to the vectors orthogonal to 1 (deflating the
    /// eigenvalue 1), O(edges) per step, so it is cheap for a thousand nodes.
    public var spectralGap: Double {
        guard nodes > 1 else { return 1 }
        var v = (0..<nodes).map { Double(($0 * 7919) % 101) - 50 }
        func deflate(_ v: inout [Double]) {
            let mean = v.reduce(0, +) / Double(nodes)
            for i in v.indices { v[i] -= mean }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 0 { for i in v.indices { v[i] /= norm } }
        }
        deflate(&v)
        var lambda = 0.0
        for _ in 0..<2000 {
            var w = [Double](repeating: 0, count: nodes)
            for i in 0..<nodes {
                w[i] = selfWeight(i) * v[i]
                for j in neighbours[i] { w[i] += weight(i, j) * v[j] }
            }
            let rayleigh = zip(v, w).reduce(0) { $0 + $1.0 * $1.1 }
            deflate(&w)
            v = w
            if abs(rayleigh - lambda) < 1e-10 { lambda = rayleigh; break }
            lambda = rayleigh
        }
        return max(0, min(1, 1 - lambda))
    }

    /// Whether every node can reach every other.
    public var isConnected: Bool {
        guard nodes > 0 else { return true }
        var seen: Set<Int> = [0], stack = [0]
        while let v = stack.popLast() { for u in neighbours[v] where seen.insert(u).inserted { stack.append(u) } }
        return seen.count == nodes
    }

    /// How many connected parts the graph has (1 when connected).
    public var components: Int {
        var seen = [Bool](repeating: false, count: nodes), count = 0
        for start in 0..<nodes where !seen[start] {
            count += 1
            seen[start] = true
            var stack = [start]
            while let v = stack.popLast() { for u in neighbours[v] where !seen[u] { seen[u] = true; stack.append(u) } }
        }
        return count
    }

    static func squarestFactor(_ m: Int) throws -> Int {
        var best = 1
        var r = 1
        while r * r <= m { if m % r == 0 { best = r }; r += 1 }
        return best
    }

    /// The pairing (configuration) model with restarts: deterministic for a seed.
    static func randomRegular(nodes m: Int, degree k: Int, seed: UInt64) throws -> [Set<Int>] {
        var rng = Xoshiro256(seed: seed, stream: 77)
        for _ in 0..<1000 {
            var stubs = (0..<m).flatMap { Array(repeating: $0, count: k) }
            var adj = [Set<Int>](repeating: [], count: m)
            var ok = true
            // Fisher–Yates, then pair consecutive stubs.
            for i in stride(from: stubs.count - 1, to: 0, by: -1) {
                stubs.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            var i = 0
            while i < stubs.count {
                let a = stubs[i], b = stubs[i + 1]
                if a == b || adj[a].contains(b) { ok = false; break }
                adj[a].insert(b)
                adj[b].insert(a)
                i += 2
            }
            if ok { return adj }
        }
        throw DataError.invalid("could not draw a simple \(k)-regular graph on \(m) nodes (seed \(seed))")
    }
}
