/// SplitMix64: a tiny, fast, seedable generator; used to expand one seed into many streams.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman & Vigna): the generator behind every random number Shardwise draws.
///
/// Integer arithmetic only, so the same seed yields the same stream on every machine; the
/// floating-point values derived from it (`unit`, `approximateNormal`) use only exact IEEE
/// operations, so datasets are bit-identical everywhere.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    public var s: (UInt64, UInt64, UInt64, UInt64)

    /// Seeds the four words from SplitMix64, as the authors recommend. `stream` selects an
    /// independent stream for the same seed (e.g. one per node).
    public init(seed: UInt64, stream: UInt64 = 0) {
        var sm = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        s = (sm.next(), sm.next(), sm.next(), sm.next())
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    @inlinable
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 53 random bits.
    @inlinable
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A unit-variance, zero-mean draw shaped like a normal: the centred sum of four uniforms
    /// (Irwin–Hall, n = 4), scaled by √3. Arithmetic only, so bit-identical across machines;
    /// its tails stop at ±2√3, which is harmless for synthetic regression data.
    @inlinable
    public mutating func approximateNormal() -> Double {
        let a = next(), b = next()
        let scale = 0x1.0p-32
        let u0 = Double(a & 0xFFFF_FFFF) * scale, u1 = Double(a >> 32) * scale
        let u2 = Double(b & 0xFFFF_FFFF) * scale, u3 = Double(b >> 32) * scale
        return (u0 + u1 + u2 + u3 - 2) * 1.7320508075688772
    }
}
