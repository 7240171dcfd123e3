import Shardwise

/// Native all-reduce against the generic algorithms, on any communicator: the self-test behind
/// `shardwise mpi selftest` (run under mpirun by `ShardwiseMPITests`) and the timing behind
/// `shardwise mpi bench`. Written on the `Communicator` surface only, so it compiles without MPI
/// and can be tried on the threads backend too.
public enum AllReduceCheck {
    /// One comparison: `algorithm` on `count` entries of `precision`.
    public struct Finding: Sendable, CustomStringConvertible {
        public var precision: String
        public var count: Int
        public var algorithm: AllReduceAlgorithm
        /// Integer-valued inputs, whose sum is exact in any order: the result must equal the
        /// reference bit for bit.
        public var exactMatches: Bool
        /// Real inputs: max |result − reference| / Σ|inputs| over the entries.
        public var relativeError: Double
        /// Real inputs: the result equals the ring's bit for bit.
        public var equalsRing: Bool
        public var tolerance: Double
        /// `digest` of the real-input result: equal on every rank when every rank holds the same bits.
        public var digest: UInt64
        public var passed: Bool { exactMatches && relativeError <= tolerance }

        public var description: String {
            let verdict = passed ? "ok  " : "FAIL"
            return "\(verdict) \(precision) n=\(count) \(algorithm): exact=\(exactMatches) rel.err=\(relativeError) (tol \(tolerance))"
                + (equalsRing ? " bitwise=ring" : "")
        }
    }

    /// Rank r's input vector: seeded by (seed, r), integer-valued in −1000…1000 or real in (−1, 1).
    public static func input<Scalar: BLASScalar>(rank: Int, count: Int, integer: Bool, seed: UInt64, as: Scalar.Type) -> [Scalar] {
        var state = seed &+ UInt64(rank) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(count)
        func next() -> UInt64 {   // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return (0..<count).map { _ in
            integer ? Scalar(Int(next() % 2001) - 1000) : Scalar(Double(next() >> 11) * 0x1p-53 * 2 - 1)
        }
    }

    /// Runs every algorithm on every count, for Float and Double, and returns this rank's findings.
    /// Every rank computes the reference itself (it can generate everyone's inputs).
    public static func run(on comm: any Communicator, counts: [Int], seed: UInt64 = 1) async throws -> [Finding] {
        var findings: [Finding] = []
        for count in counts {
            findings += try await check(Double.self, comm: comm, count: count, seed: seed, tolerance: 1e-12)
            findings += try await check(Float.self, comm: comm, count: count, seed: seed, tolerance: 1e-5)
        }
        return findings
    }

    private static func check<Scalar: BLASScalar>(
        _: Scalar.Type, comm: any Communicator, count: Int, seed: UInt64, tolerance: Double
    ) async throws -> [Finding] {
        let m = comm.size
        var exactSum = [Scalar](repeating: 0, count: count)
        var realSum = [Double](repeating: 0, count: count)
        var magnitude = [Double](repeating: 0, count: count)
        for r in 0..<m {
            let a = input(rank: r, count: count, integer: true, seed: seed, as: Scalar.self)
            let b = input(rank: r, count: count, integer: false, seed: seed, as: Scalar.self)
            for j in 0..<count {
                exactSum[j] += a[j]
                realSum[j] += Double(b[j])
                magnitude[j] += abs(Double(b[j]))
            }
        }
        let codec = VectorCodec(spec: .float64)
        var ring = input(rank: comm.rank, count: count, integer: false, seed: seed, as: Scalar.self)
        try await comm.allReduce(&ring, algorithm: .ring, codec: codec)
        var findings: [Finding] = []
        for algorithm in AllReduceAlgorithm.allCases {
            var exact = input(rank: comm.rank, count: count, integer: true, seed: seed, as: Scalar.self)
            try await comm.allReduce(&exact, algorithm: algorithm, codec: codec)
            var real = input(rank: comm.rank, count: count, integer: false, seed: seed, as: Scalar.self)
            try await comm.allReduce(&real, algorithm: algorithm, codec: codec)
            var error = 0.0
            for j in 0..<count where magnitude[j] > 0 {
                error = max(error, abs(Double(real[j]) - realSum[j]) / magnitude[j])
            }
            findings.append(Finding(
                precision: Scalar.precisionName, count: count, algorithm: algorithm,
                exactMatches: exact == exactSum, relativeError: error, equalsRing: real == ring, tolerance: tolerance,
                digest: digest(real)))
        }
        return findings
    }

    /// A digest of a vector's bits (FNV-1a), to check that every rank holds the same result.
    public static func digest<Scalar: BLASScalar>(_ v: [Scalar]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        v.withUnsafeBytes { for b in $0 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 } }
        return h
    }

    // MARK: - Timing

    /// Seconds per all-reduce of `count` doubles with `algorithm`: the median of `repetitions`
    /// calls after one warm-up, each timed from a barrier to a closing barrier, so the slowest
    /// rank's end is what counts (the generic barrier adds ⌈log₂ m⌉ empty-message latencies).
    public static func time(on comm: any Communicator, count: Int, algorithm: AllReduceAlgorithm,
                            repetitions: Int) async throws -> Double {
        let codec = VectorCodec(spec: .float64)
        var v = input(rank: comm.rank, count: count, integer: false, seed: 7, as: Double.self)
        try await comm.allReduce(&v, algorithm: algorithm, codec: codec)
        var samples: [Double] = []
        for _ in 0..<max(1, repetitions) {
            v = input(rank: comm.rank, count: count, integer: false, seed: 7, as: Double.self)
            try await comm.barrier()
            let t0 = comm.now
            try await comm.allReduce(&v, algorithm: algorithm, codec: codec)
            try await comm.barrier()
            samples.append(comm.now - t0)
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}
