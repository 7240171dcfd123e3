import CShardwiseKernels

/// float16 (IEEE binary16) and bfloat16 (the top half of a Float), both round-to-nearest-even;
/// float16 saturates at ±65504 (not ±∞, so that one large gradient entry does not poison the sum).
/// The loops are `CShardwiseCodecs.h`'s: F16C/AVX2 where the CPU has them, a portable loop with the
/// same bytes elsewhere.
enum HalfCoding {
    static func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, brain: Bool) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 2 * v.count) { buf, initialized in
            if let base = v.baseAddress {
                let out = UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: UInt16.self)
                if Scalar.self == Double.self {
                    base.withMemoryRebound(to: Double.self, capacity: v.count) { p in
                        brain ? shardwise_bf16_encode_f64(p, v.count, out) : shardwise_f16_encode_f64(p, v.count, out)
                    }
                } else {
                    base.withMemoryRebound(to: Float.self, capacity: v.count) { p in
                        brain ? shardwise_bf16_encode_f32(p, v.count, out) : shardwise_f16_encode_f32(p, v.count, out)
                    }
                }
            }
            initialized = 2 * v.count
        }
    }

    static func decode<Scalar: BLASScalar>(_ bytes: [UInt8], brain: Bool, into out: UnsafeMutableBufferPointer<Scalar>) throws {
        guard bytes.count == 2 * out.count else {
            throw CommunicationError.badPayload(
                "\(brain ? "bfloat16" : "float16") payload of \(bytes.count) bytes cannot hold \(out.count) entries")
        }
        guard let base = out.baseAddress else { return }
        bytes.withUnsafeBytes { raw in
            let input = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
            if Scalar.self == Double.self {
                base.withMemoryRebound(to: Double.self, capacity: out.count) { p in
                    brain ? shardwise_bf16_decode_f64(input, out.count, p) : shardwise_f16_decode_f64(input, out.count, p)
                }
            } else {
                base.withMemoryRebound(to: Float.self, capacity: out.count) { p in
                    brain ? shardwise_bf16_decode_f32(input, out.count, p) : shardwise_f16_decode_f32(input, out.count, p)
                }
            }
        }
    }
}

/// Symmetric int8 quantisation with one scale per chunk: for each chunk, a Float scale
/// s = max|vᵢ|/127 followed by the entries round(vᵢ/s) (half away from zero) as signed bytes.
/// Error ≤ s/2 per entry. The loops are `CShardwiseCodecs.h`'s (AVX2, or a portable loop with the
/// same bytes).
enum Int8Coding {
    static func size(count: Int, chunk: Int) -> Int { count + 4 * ((count + chunk - 1) / chunk) }

    static func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, chunk: Int) -> [UInt8] {
        let total = size(count: v.count, chunk: chunk)
        return [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
            if let base = v.baseAddress {
                let out = buf.baseAddress!
                if Scalar.self == Double.self {
                    base.withMemoryRebound(to: Double.self, capacity: v.count) { shardwise_int8_encode_f64($0, v.count, chunk, out) }
                } else {
                    base.withMemoryRebound(to: Float.self, capacity: v.count) { shardwise_int8_encode_f32($0, v.count, chunk, out) }
                }
            }
            initialized = total
        }
    }

    static func decode<Scalar: BLASScalar>(_ bytes: [UInt8], chunk: Int, into out: UnsafeMutableBufferPointer<Scalar>) throws {
        let expected = size(count: out.count, chunk: chunk)
        guard bytes.count == expected else {
            throw CommunicationError.badPayload(
                "int8:\(chunk) payload of \(bytes.count) bytes cannot hold \(out.count) entries (expected \(expected))")
        }
        guard let base = out.baseAddress else { return }
        bytes.withUnsafeBufferPointer { input in
            if Scalar.self == Double.self {
                base.withMemoryRebound(to: Double.self, capacity: out.count) { shardwise_int8_decode_f64(input.baseAddress!, out.count, chunk, $0) }
            } else {
                base.withMemoryRebound(to: Float.self, capacity: out.count) { shardwise_int8_decode_f32(input.baseAddress!, out.count, chunk, $0) }
            }
        }
    }
}

/// Top-k sparsification with error feedback (Stich et al., 2018; Lin et al., "Deep Gradient
/// Compression", 2018): add the residual left by the previous message on the same stream, send
/// the k entries of largest magnitude as (UInt32 index, Float value) pairs after a UInt32 count,
/// and keep what was not sent as the new residual. Nothing is lost, only delayed.
enum TopKCoding {
    static func kept(count: Int, fraction: Double) -> Int {
        count == 0 ? 0 : max(1, min(count, Int((fraction * Double(count)).rounded(.up))))
    }

    /// The selection and the residual's update are `shardwise_topk_encode_*`'s (CShardwiseCodecs.h).
    static func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, fraction: Double, residual: inout [Double]) -> [UInt8] {
        let n = v.count
        if residual.count != n { residual = [Double](repeating: 0, count: n) }
        let k = kept(count: n, fraction: fraction)
        return residual.withUnsafeMutableBufferPointer { e in
            [UInt8](unsafeUninitializedCapacity: 4 + 8 * k) { buf, initialized in
                let out = buf.baseAddress!
                if let base = v.baseAddress {
                    if Scalar.self == Double.self {
                        base.withMemoryRebound(to: Double.self, capacity: n) { shardwise_topk_encode_f64($0, n, k, e.baseAddress!, out) }
                    } else {
                        base.withMemoryRebound(to: Float.self, capacity: n) { shardwise_topk_encode_f32($0, n, k, e.baseAddress!, out) }
                    }
                } else {
                    out.initialize(repeating: 0, count: 4)
                }
                initialized = 4 + 8 * k
            }
        }
    }

    static func decode<Scalar: BLASScalar>(_ bytes: [UInt8], fraction: Double, into out: UnsafeMutableBufferPointer<Scalar>) throws {
        guard bytes.count >= 4 else { throw CommunicationError.badPayload("top-k payload shorter than its count") }
        try bytes.withUnsafeBytes { raw in
            func u32(_ p: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt32.self)) }
            let k = Int(u32(0))
            guard bytes.count == 4 + 8 * k, k <= out.count, k == kept(count: out.count, fraction: fraction) else {
                throw CommunicationError.badPayload(
                    "top-k payload of \(bytes.count) bytes does not hold \(k) entries for a vector of \(out.count)")
            }
            out.update(repeating: 0)
            for e in 0..<k {
                let i = Int(u32(4 + 8 * e))
                guard i < out.count else {
                    throw CommunicationError.badPayload("top-k index \(i) outside a vector of \(out.count)")
                }
                out[i] = Scalar(Float(bitPattern: u32(8 + 8 * e)))
            }
        }
    }
}
