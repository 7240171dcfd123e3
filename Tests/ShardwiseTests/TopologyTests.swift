import Shardwise
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Gossip topologies")
struct TopologyTests {
    static let specs: [TopologySpec] = [.ring, .torus(rows: nil), .complete, .star, .randomRegular(degree: 3, seed: 2), .disconnected,
                                        .edges([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]])]

    @Test("mixing matrices are symmetric and doubly stochastic", arguments: specs)
    func doublyStochastic(spec: TopologySpec) throws {
        let t = try Topology(spec, nodes: spec == .torus(rows: nil) ? 12 : (spec == .randomRegular(degree: 3, seed: 2) ? 10 : 4))
        let w = t.mixingMatrix
        for i in 0..<t.nodes {
            #expect(abs(w[i].reduce(0, +) - 1) < 1e-15)
            for j in 0..<t.nodes {
                #expect(w[i][j] == w[j][i])
                #expect(w[i][j] >= 0)
            }
        }
    }

    @Test("degrees and connectivity")
    func shapes() throws {
        #expect(try Topology(.ring, nodes: 8).neighbours.allSatisfy { $0.count == 2 })
        #expect(try Topology(.complete, nodes: 8).neighbours.allSatisfy { $0.count == 7 })
        #expect(try Topology(.torus(rows: nil), nodes: 16).neighbours.allSatisfy { $0.count == 4 })
        #expect(try Topology(.star, nodes: 8).neighbours[0].count == 7)
        #expect(try Topology(.randomRegular(degree: 4, seed: 1), nodes: 20).neighbours.allSatisfy { $0.count == 4 })
        #expect(try !Topology(.disconnected, nodes: 4).isConnected)
        #expect(try Topology(.ring, nodes: 5).isConnected)
        #expect(try Topology(.ring, nodes: 1).neighbours == [[]])
    }

    @Test("spectral gap against closed forms")
    func spectralGap() throws {
        // Lazy Metropolis on a ring of m (weights 1/6 to each neighbour, 2/3 to itself):
        // λ₂ = 2/3 + (1/3)·cos(2π/m).
        for m in [3, 4, 8, 16] {
            let expected = 1 - (2.0 / 3 + cos(2 * Double.pi / Double(m)) / 3)
            #expect(abs(try Topology(.ring, nodes: m).spectralGap - expected) < 1e-6, "ring \(m)")
        }
        // Complete graph on m: W = (1 − ½)I + ½·(1/m)·11ᵀ·… so λ₂ = ½ − … : every non-constant
        // eigenvalue of W_MH is 0, hence ½ after laziness.
        #expect(abs(try Topology(.complete, nodes: 8).spectralGap - 0.5) < 1e-6)
        #expect(try Topology(.disconnected, nodes: 4).spectralGap < 1e-6)
    }

    @Test("impossible graphs are refused with a reason")
    func refused() {
        #expect(throws: DataError.self) { try Topology(.randomRegular(degree: 3, seed: 1), nodes: 5) }
        #expect(throws: DataError.self) { try Topology(.torus(rows: 3), nodes: 8) }
        #expect(throws: DataError.self) { try Topology(.edges([[0, 9]]), nodes: 4) }
        #expect(throws: JobError.self) { try TopologySpec(parsing: "hypercube") }
    }

    @Test("parsing", arguments: ["ring", "torus", "torus:2", "complete", "star", "random:3:7", "disconnected", "edges:0-1,1-2"])
    func parsing(text: String) throws {
        #expect(try TopologySpec(parsing: text).description == text)
    }
}
