@testable import Shardwise
import Testing
import _TestSupport

@Suite("Nonzero partitioner")
struct NonzeroPartitionerTests {
    /// The smallest possible largest-shard nonzero count, by trying every cut (small n only).
    func bruteForce(_ counts: [Int], shards: Int) -> Int {
        let n = counts.count
        var best = Int.max
        func go(_ start: Int, _ left: Int, _ worst: Int) {
            if left == 1 {
                best = min(best, max(worst, counts[start...].reduce(0, +)))
                return
            }
            var sum = 0
            // This shard is start..<end; the remaining `left − 1` shards need a row each.
            for end in (start + 1)...(n - left + 1) {
                sum += counts[end - 1]
                go(end, left - 1, max(worst, sum))
            }
        }
        go(0, shards, 0)
        return best
    }

    @Test("the largest shard is the optimum of every contiguous cut", arguments: 0..<40)
    func optimal(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed))
        let n = 1 + Int(rng.next() % 10)
        // Row sizes with zeros and one heavy row now and then, as text data has.
        let counts = (0..<n).map { _ in rng.next() % 4 == 0 ? 0 : rng.next() % 9 == 0 ? 40 : Int(rng.next() % 7) }
        var offsets: [Int64] = [0]
        for c in counts { offsets.append(offsets.last! + Int64(c)) }
        for shards in 1...n {
            let ranges = try NonzeroPartitioner.ranges(rowOffsets: offsets, shards: shards)
            #expect(ranges.count == shards)
            #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == n)
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            #expect(ranges.allSatisfy { !$0.isEmpty })
            let largest = NonzeroPartitioner.nonzeros(rowOffsets: offsets, ranges: ranges).max()!
            #expect(largest == bruteForce(counts, shards: shards), "counts \(counts), \(shards) shards: \(ranges)")
        }
    }

    @Test("balances nonzeros, not rows, and refuses impossible cuts")
    func balancesNonzeros() throws {
        // Ten rows of 1 nonzero, then two rows of 10: two shards by rows would be 10 + 20.
        let offsets: [Int64] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30]
        #expect(try NonzeroPartitioner.ranges(rowOffsets: offsets, shards: 2) == [0..<11, 11..<12])
        #expect(throws: DataError.invalid("cannot cut 3 rows into 4 shards: more shards than rows")) {
            try NonzeroPartitioner.ranges(rowOffsets: [0, 1, 2, 3], shards: 4)
        }
        #expect(throws: DataError.invalid("cannot cut data into 0 shards")) {
            try NonzeroPartitioner.ranges(rowOffsets: [0, 1], shards: 0)
        }
        // All rows empty: still one row or more per shard.
        let empty = try NonzeroPartitioner.ranges(rowOffsets: [0, 0, 0, 0, 0, 0], shards: 3)
        #expect(empty.count == 3 && empty.allSatisfy { !$0.isEmpty } && empty.last?.upperBound == 5)
    }

    @Test("a sparse dataset's shards are views over the partition")
    func shards() throws {
        let x = TestData.csr(rows: 50, columns: 20, density: 0.3, seed: 3, emptyEvery: 4, as: Double.self)
        let data = SparseDataset(x: x, y: TestData.vector(50, seed: 1))
        let shards = try data.shards(3)
        #expect(shards.map(\.range) == (try NonzeroPartitioner.ranges(rowOffsets: x.rowOffsets, shards: 3)))
        #expect(shards.allSatisfy { $0.x.storage === x.storage && Array($0.y) == Array(data.y[$0.range]) })
        #expect(shards.map(\.x.nonzeroCount).reduce(0, +) == x.nonzeroCount)
    }
}

@Suite("Sparse synthetic data")
struct SparseSyntheticTests {
    @Test("deterministic: the same spec gives the same matrix; Float is Double rounded")
    func deterministic() throws {
        let spec = SparseSyntheticSpec(rows: 500, features: 300, nonzerosPerRow: 8, zipf: 1.1, seed: 4)
        let a = try spec.generate(Double.self), b = try spec.generate(Double.self)
        #expect(a.x == b.x && a.y == b.y)
        let f = try spec.generate(Float.self)
        #expect(f.x.values == a.x.values.map { Float($0) } && f.x.columnIndices == a.x.columnIndices)
        var other = spec
        other.seed = 5
        #expect(try other.generate(Double.self).x != a.x)
        #expect(a.source.hasPrefix("synthetic(sparse: n=500,d=300,nnz=8"))
    }

    @Test("nonzeros per row average m; frequencies follow the power law")
    func shape() throws {
        let uniform = try SparseSyntheticSpec(rows: 4000, features: 2000, nonzerosPerRow: 10, zipf: 0, seed: 1).generate(Double.self)
        let mean = Double(uniform.x.nonzeroCount) / 4000
        #expect(abs(mean - 10) < 0.3, "mean \(mean)")
        #expect((0..<4000).allSatisfy { let m = uniform.x.view.row($0).columns.count; return m >= 1 && m <= 19 })

        func topShare(_ data: SparseDataset<Double>) -> Double {
            var counts = [Int](repeating: 0, count: data.features)
            for c in data.x.columnIndices { counts[Int(c)] += 1 }
            let top = counts.sorted(by: >).prefix(data.features / 100).reduce(0, +)
            return Double(top) / Double(data.x.nonzeroCount)
        }
        let zipf = try SparseSyntheticSpec(rows: 4000, features: 2000, nonzerosPerRow: 10, zipf: 1.1, seed: 1).generate(Double.self)
        // The top 1% of columns: about 1% of the nonzeros when uniform, near half under s = 1.1.
        #expect(topShare(uniform) < 0.03)
        #expect(topShare(zipf) > 0.3, "top share \(topShare(zipf))")
    }

    @Test("targets come from the planted model")
    func plantedModel() throws {
        let spec = SparseSyntheticSpec(rows: 3000, features: 500, nonzerosPerRow: 12, zipf: 0.8, noise: 0.1, seed: 2)
        let data = try spec.generate(Double.self)
        let z = naiveSparseProduct(x: data.x.view, spec.trueWeights)
        let rms = (zip(data.y, z).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / 3000).squareRoot()
        #expect(rms > 0.08 && rms < 0.12, "residual RMS \(rms) against noise 0.1")

        var logistic = spec
        logistic.classification = true
        let labels = try logistic.generate(Double.self)
        #expect(labels.y.allSatisfy { $0 == 0 || $0 == 1 })
        let ones = labels.y.filter { $0 == 1 }.count
        #expect(ones > 600 && ones < 2400)
        // Label 1 is likelier where the model says so.
        let zl = naiveSparseProduct(x: labels.x.view, logistic.trueWeights)
        let meanPositive = zip(labels.y, zl).filter { $0.0 == 1 }.map(\.1).reduce(0, +) / Double(ones)
        let meanNegative = zip(labels.y, zl).filter { $0.0 == 0 }.map(\.1).reduce(0, +) / Double(3000 - ones)
        #expect(meanPositive > meanNegative + 0.3)
        try labels.validateTargets(for: .logistic(lambda: 0))
    }

    @Test("invalid specs are refused, naming the field")
    func refuses() {
        for (spec, field) in [(SparseSyntheticSpec(rows: 0, features: 3, nonzerosPerRow: 1), "rows"),
                              (SparseSyntheticSpec(rows: 3, features: 0, nonzerosPerRow: 1), "features"),
                              (SparseSyntheticSpec(rows: 3, features: 3, nonzerosPerRow: 0), "nonzerosPerRow"),
                              (SparseSyntheticSpec(rows: 3, features: 3, nonzerosPerRow: 1, zipf: -1), "zipf"),
                              (SparseSyntheticSpec(rows: 3, features: 3, nonzerosPerRow: 1, noise: -1), "noise")] {
            do {
                _ = try spec.generate(Double.self)
                Issue.record("\(spec) was accepted")
            } catch JobError.invalid(let f, _) {
                #expect(f == field)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        #expect(throws: JobError.self) {
            try MemoryBudget.$limit.withValue(1 << 20) {
                try SparseSyntheticSpec(rows: 1_000_000, features: 100, nonzerosPerRow: 20).generate(Double.self)
            }
        }
    }
}
