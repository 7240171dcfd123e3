/// float16 (IEEE binary16) and bfloat16 (the top half of a Float), both round-to-nearest-even.
enum HalfCoding {
    static func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, brain: Bool) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 2 * v.count) { buf, initialized in
            let out = UnsafeMutableRawPointer(buf.baseAddress!)
            for i in 0..<v.count {
                let bits = brain ? bfloat16Bits(Float(v[i])) : float16Bits(Float(v[i]))
                out.storeBytes(of: bits.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
            initialized = 2 * v.count
        }
    }

    static func decode<Scalar: BLASScalar>(_ bytes: [UInt8], brain: Bool, into out: UnsafeMutableBufferPointer<Scalar>) throws {
        guard bytes.count == 2 * out.count else {
            throw CommunicationError.badPayload(
                "\(brain ? "bfloat16" : "float16") payload of \(bytes.count) bytes cannot hold \(out.count) entries")
        }
        for i in 0..<out.count {
            let bits = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
            out[i] = Scalar(brain ? Float(bitPattern: UInt32(bits) << 16) : float16Value(bits))
        }
    }

    /// Float → binary16 bits, round to nearest even; overflow saturates to ±65504 (not ±∞, so one
    /// large gradient entry does not poison the sum).
    static func float16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7E00 }
        let clamped = max(-65504, min(65504, f))
        #if arch(x86_64) || arch(arm64)
        return Float16(clamped).bitPattern
        #else
        return softFloat16Bits(clamped)
        #endif
    }

    static func float16Value(_ bits: UInt16) -> Float {
        #if arch(x86_64) || arch(arm64)
        return Float(Float16(bitPattern: bits))
        #else
        return softFloat16Value(bits)
        #endif
    }

    /// Float → bfloat16 bits: the upper half of the Float, rounded to nearest even.
    static func bfloat16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let bits = f.bitPattern
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        let (sum, overflow) = bits.addingReportingOverflow(rounding)
        return overflow ? UInt16(bits >> 16) : UInt16(sum >> 16)
    }

    static func softFloat16Bits(_ f: Float) -> UInt16 { Float16(f).bitPattern }
    static func softFloat16Value(_ b: UInt16) -> Float { Float(Float16(bitPattern: b)) }
}

/// Symmetric int8 quantisation with one scale per chunk: for each chunk, a Float scale
/// s = max|vᵢ|/127 followed by the entries round(vᵢ/s) as signed bytes. Error ≤ s/2 per entry.
enum Int8Coding {
    static func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, chunk: Int) -> [UInt8] {
        let total = v.count + 4 * ((v.count + chunk - 1) / chunk)
        return [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
            let out = UnsafeMutableRawPointer(buf.baseAddress!)
            var p = 0
            var start = 0
            while start < v.count {
                let end = min(v.count, start + chunk)
                var m: Float = 0
                for i in start..<end { m = max(m, abs(Float(v[i]))) }
                let scale: Float = m > 0 && m.isFinite ? m / 127 : 0
                let inverse: Float = scale > 0 ? 1 / scale : 0
                out.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: p, as: UInt32.self)
                p += 4
                for i in start..<end {
                    let q = (Float(v[i]) * inverse).rounded()
                    out.storeBytes(of: Int8(max(-127, min(127, q))), toByteOffset: p, as: Int8.self)
                    p += 1
                }
                start = end
            }
            initialized = total
        }
    }

    static func decode<Scalar: BLASScalar>(_ bytes: [UInt8], chunk: Int, into out: UnsafeMutableBufferPointer<Scalar>) throws {
        let expected = out.count + 4 * ((out.count + chunk - 1) / chunk)
        guard bytes.count == expected else {
            throw CommunicationError.badPayload(
                "int8:\(chunk) payload of \(bytes.count) bytes cannot hold \(out.count) entries (expected \(expected))")
        }
        var p = 0
        var start = 0
        while start < out.count {
            let end = min(out.count, start + chunk)
            let bits = UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24
            let scale = Float(bitPattern: bits)
            p += 4
            for i in start..<end {
                out[i] = Scalar(Float(Int8(bitPattern: bytes[p])) * scale)
                p += 1
            }
            start = end
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

    static func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, fraction: Double, residual: inout [Double]) -> [UInt8] {
        let n = v.count
        if residual.count != n { residual = [Double](repeating: 0, count: n) }
        for i in 0..<n { residual[i] += Double(v[i]) }   // residual now holds v + e
        let k = kept(count: n, fraction: fraction)
        let chosen = largestMagnitudes(residual, k: k)
        var out = [UInt8]()
        out.reserveCapacity(4 + 8 * k)
        withUnsafeBytes(of: UInt32(k).littleEndian) { out.append(contentsOf: $0) }
        for i in chosen {
            let value = Float(residual[i])
            withUnsafeBytes(of: UInt32(i).littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: value.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            residual[i] -= Double(value)
        }
        return out
    }

    static func decode<Scalar: BLASScalar>(_ bytes: [UInt8], fraction: Double, into out: UnsafeMutableBufferPointer<Scalar>) throws {
        guard bytes.count >= 4 else { throw CommunicationError.badPayload("top-k payload shorter than its count") }
        func u32(_ p: Int) -> UInt32 {
            UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24
        }
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

    /// Indices of the k entries of largest |v|, ascending by index (ties broken by lower index).
    static func largestMagnitudes(_ v: [Double], k: Int) -> [Int] {
        if k >= v.count { return Array(v.indices) }
        // Select the threshold with a partial sort of magnitudes, then collect in index order.
        var mags = v.map { abs($0) }
        let threshold = quickselect(&mags, k: v.count - k)
        var above: [Int] = [], equal: [Int] = []
        for i in v.indices {
            let m = abs(v[i])
            if m > threshold { above.append(i) } else if m == threshold { equal.append(i) }
        }
        let chosen = above + equal.prefix(k - above.count)
        return chosen.sorted()
    }

    /// The element that would be at index `k` if `a` were sorted ascending (Hoare's selection).
    static func quickselect(_ a: inout [Double], k: Int) -> Double {
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let pivot = a[(lo + hi) / 2]
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
        }
        return a[k]
    }
}
