import CShardwiseKernels
import Foundation
@testable import Shardwise
import Testing
import _TestSupport

/// The lossy codecs' C loops against a plain Swift statement of each rule (Swift's own Float16,
/// the bfloat16 rounding formula, int8 with `rounded()`), on the vector path and the portable path,
/// for double and float vectors, including NaN, ±∞, the float16 limits, subnormals and ties.
@Suite("Codec kernels", .serialized) struct CodecKernelTests {
    static func values(count: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        var v = (0..<count).map { _ in Double.random(in: -1...1, using: &rng) * pow(10, Double.random(in: -9...6, using: &rng)) }
        let special: [Double] = [0, -0.0, .nan, -.nan, .infinity, -.infinity, 65504, -65504, 65519.99, 65520, 1e6, -1e9,
                                 0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 6.103515625e-05, 1.00048828125, 1.0009765625,
                                 1.000732421875, 2.5, -2.5, 3.4028234663852886e38, 1e-300, .leastNonzeroMagnitude]
        for (i, s) in special.enumerated() where i * 7 < v.count { v[i * 7] = s }
        return v
    }

    // The rules, plainly.
    static func f16(_ x: Double) -> UInt16 {
        let f = Float(x)
        if f.isNaN { return 0x7E00 }
        return Float16(max(-65504, min(65504, f))).bitPattern
    }
    static func bf16(_ x: Double) -> UInt16 {
        let f = Float(x)
        if f.isNaN { return 0x7FC0 }
        let b = f.bitPattern
        return UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }
    static func int8(_ v: [Double], chunk: Int) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        while start < v.count {
            let end = min(v.count, start + chunk)
            var m: Float = 0
            for i in start..<end { m = max(m, abs(Float(v[i]))) }
            let scale: Float = m > 0 && m.isFinite ? m / 127 : 0
            let inverse: Float = scale > 0 ? 1 / scale : 0
            withUnsafeBytes(of: scale.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            for i in start..<end {
                let q = (Float(v[i]) * inverse).rounded()
                out.append(UInt8(bitPattern: Int8(max(-127, min(127, q)))))
            }
            start = end
        }
        return out
    }

    static func bits(_ bytes: [UInt8]) -> [UInt16] {
        stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8 }
    }

    @Test("float16, bfloat16 and int8 give the rule's bytes on both paths, from double and float",
          arguments: [false, true], [0, 1, 7, 8, 9, 255, 1000, 4099])
    func encodeMatchesTheRule(portable: Bool, count: Int) throws {
        shardwise_codecs_force_portable(portable ? 1 : 0)
        defer { shardwise_codecs_force_portable(0) }
        let v = Self.values(count: count, seed: UInt64(count) + 11)
        let f = v.map(Float.init), fromFloat = f.map(Double.init)
        for (spec, rule) in [(CodecSpec.float16, { (x: [Double]) in x.map(Self.f16) }), (.bfloat16, { $0.map(Self.bf16) })] {
            let codec = spec.makeCodec()
            let stream = CodecStream(tag: Tag(1), peer: 0)
            #expect(Self.bits(codec.encode(v, stream: stream)) == rule(v), "\(spec) from double, \(count)")
            #expect(Self.bits(codec.encode(f, stream: stream)) == rule(fromFloat), "\(spec) from float, \(count)")
            // Decoding is exact: the decoded value re-encodes to the same bits.
            let bytes = codec.encode(v, stream: stream)
            let back: [Double] = try codec.decode(bytes, count: count)
            let backF: [Float] = try codec.decode(bytes, count: count)
            for i in 0..<count {
                let expected: Float = spec == .float16 ? Float(Float16(bitPattern: rule(v)[i])) : Float(bitPattern: UInt32(rule(v)[i]) << 16)
                #expect(back[i].bitPattern == Double(expected).bitPattern || (back[i].isNaN && expected.isNaN), "\(spec) decode \(i)")
                #expect(backF[i].bitPattern == expected.bitPattern || (backF[i].isNaN && expected.isNaN))
            }
        }
        for chunk in [1, 5, 8, 256] {
            let codec = CodecSpec.int8(chunk: chunk).makeCodec()
            let stream = CodecStream(tag: Tag(1), peer: 0)
            let rule = Self.int8(v, chunk: chunk)
            #expect(codec.encode(v, stream: stream) == rule, "int8:\(chunk) from double, \(count)")
            #expect(codec.encode(f, stream: stream) == Self.int8(fromFloat, chunk: chunk), "int8:\(chunk) from float")
            let back: [Double] = try codec.decode(rule, count: count)
            var p = 0, start = 0
            while start < count {
                let end = min(count, start + chunk)
                let scale = rule.withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: p, as: UInt32.self))) }
                p += 4
                for i in start..<end {
                    #expect(back[i] == Double(Float(Int8(bitPattern: rule[p])) * scale), "int8:\(chunk) decode \(i)")
                    p += 1
                }
                start = end
            }
        }
    }

    /// The last case defeats the encoder's sampled guess of the threshold: its sample (every other
    /// entry) sees only the large even entries, so fewer than k reach the guess and the encoder
    /// must take its second pass.
    @Test("top-k sends the k largest magnitudes (ties to the lower index), in index order", arguments: [1, 10, 997, 5000, -20000])
    func topK(size: Int) throws {
        let count = abs(size)
        var rng = SplitMix64(seed: UInt64(count))
        // Few distinct magnitudes, so that ties are common.
        var v: [Double] = []
        for i in 0..<count {
            if size < 0 {
                v.append(i.isMultiple(of: 2) ? 1000 + Double(i) : Double(i) / 1e6)
            } else {
                v.append(Double(Int.random(in: -20...20, using: &rng)) / 4)
            }
        }
        let codec = CodecSpec.topK(fraction: 0.1).makeCodec()
        let bytes = codec.encode(v, stream: CodecStream(tag: Tag(1), peer: 0))
        let k = TopKCoding.kept(count: count, fraction: 0.1)
        let magnitudes = v.map { abs($0) }
        let order = v.indices.sorted { (a: Int, b: Int) -> Bool in
            magnitudes[a] > magnitudes[b] || (magnitudes[a] == magnitudes[b] && a < b)
        }
        let expected = Array(order.prefix(k)).sorted()
        let sent = (0..<k).map { e -> Int in
            bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4 + 8 * e, as: UInt32.self))) }
        }
        #expect(sent == expected)
        #expect(bytes.count == 4 + 8 * k)
        // A NaN is the largest magnitude: sent, never an encoder crash.
        var withNaN = v
        withNaN[count / 2] = .nan
        let nanBytes = CodecSpec.topK(fraction: 0.1).makeCodec().encode(withNaN, stream: CodecStream(tag: Tag(1), peer: 0))
        let decoded: [Double] = try CodecSpec.topK(fraction: 0.1).makeCodec().decode(nanBytes, count: count)
        #expect(decoded[count / 2].isNaN)
    }
}
