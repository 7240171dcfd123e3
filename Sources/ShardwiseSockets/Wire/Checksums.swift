/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), byte at a time. Used for the 20-byte
/// frame header only, where its speed does not matter.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}

/// The payload checksum: a Fletcher-style sum over 64-bit words in four independent lanes
/// (aᵢ += word, bᵢ += aᵢ, with wrap-around), folded to 32 bits.
///
/// Why not CRC-32 for payloads too: a table CRC runs at about 1 GB/s, so checksumming the 8 MB of
/// a 1e6-entry float64 vector would cost more than sending it over loopback (~2–3 ms). This sum
/// runs near memory speed, and `copy(from:to:)` computes it while copying the payload out of (or
/// into) the network buffer, so it costs almost nothing. Like Fletcher's, it catches flipped,
/// dropped, zeroed and reordered words; it is no defence against an adversary (HMAC is).
public enum FrameChecksum {
    @inline(__always)
    static func finish(_ a0: UInt64, _ a1: UInt64, _ a2: UInt64, _ a3: UInt64,
                       _ b0: UInt64, _ b1: UInt64, _ b2: UInt64, _ b3: UInt64, count: Int) -> UInt32 {
        // Mix the lanes with distinct odd multipliers so swapping lanes changes the result.
        var h = UInt64(count) &* 0x9E37_79B9_7F4A_7C15
        h ^= a0 &* 0xBF58_476D_1CE4_E5B9; h = (h << 27) | (h >> 37)
        h ^= a1 &* 0x94D0_49BB_1331_11EB; h = (h << 27) | (h >> 37)
        h ^= a2 &* 0xD6E8_FEB8_6659_FD93; h = (h << 27) | (h >> 37)
        h ^= a3 &* 0xA076_1D64_78BD_642F; h = (h << 27) | (h >> 37)
        h ^= b0 &* 0xE703_7ED1_A0B4_28DB; h = (h << 27) | (h >> 37)
        h ^= b1 &* 0x8EBC_6AF0_9C88_C6E3; h = (h << 27) | (h >> 37)
        h ^= b2 &* 0x5899_65CC_7537_4CC3; h = (h << 27) | (h >> 37)
        h ^= b3 &* 0x1D8E_4E27_C47D_124F
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    /// The checksum of `bytes`.
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var s = State()
        s.add(bytes)
        return s.value
    }

    /// Copies `source` to `destination` (same count) and returns the checksum of the bytes, in one pass.
    public static func copy(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer) -> UInt32 {
        var s = State()
        s.copy(from: source, to: destination)
        return s.value
    }

    /// A running checksum over bytes that arrive in pieces (a payload split across reads).
    /// Pieces may have any length; the result equals `compute` over their concatenation.
    public struct State: Sendable {
        var a0: UInt64 = 0, a1: UInt64 = 0, a2: UInt64 = 0, a3: UInt64 = 0
        var b0: UInt64 = 0, b1: UInt64 = 0, b2: UInt64 = 0, b3: UInt64 = 0
        /// Bytes not yet forming a whole 32-byte block (at most 31).
        var pending: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var pendingCount = 0
        var count = 0

        public init() {}

        public var value: UInt32 {
            var s = self
            if s.pendingCount > 0 {
                // Zero-padded last block; `count` in `finish` tells padding from real zeros.
                s.block(s.pending.0, s.pending.1, s.pending.2, s.pending.3)
            }
            return FrameChecksum.finish(s.a0, s.a1, s.a2, s.a3, s.b0, s.b1, s.b2, s.b3, count: count)
        }

        @inline(__always)
        mutating func block(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64) {
            a0 &+= w0; b0 &+= a0
            a1 &+= w1; b1 &+= a1
            a2 &+= w2; b2 &+= a2
            a3 &+= w3; b3 &+= a3
        }

        /// Feeds bytes one at a time into the pending block (the unaligned edges of a piece).
        mutating func addSlow(_ bytes: UnsafeRawBufferPointer) {
            for b in bytes {
                withUnsafeMutableBytes(of: &pending) { $0[pendingCount] = b }
                pendingCount += 1
                if pendingCount == 32 {
                    block(UInt64(littleEndian: pending.0), UInt64(littleEndian: pending.1),
                          UInt64(littleEndian: pending.2), UInt64(littleEndian: pending.3))
                    pending = (0, 0, 0, 0)
                    pendingCount = 0
                }
            }
        }

        public mutating func add(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            count += bytes.count
            var offset = 0
            if pendingCount > 0 {
                let k = min(32 - pendingCount, bytes.count)
                addSlow(UnsafeRawBufferPointer(start: base, count: k))
                offset = k
            }
            var (x0, x1, x2, x3, y0, y1, y2, y3) = (a0, a1, a2, a3, b0, b1, b2, b3)
            while offset + 32 <= bytes.count {
                let p = base + offset
                x0 &+= UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)); y0 &+= x0
                x1 &+= UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)); y1 &+= x1
                x2 &+= UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)); y2 &+= x2
                x3 &+= UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self)); y3 &+= x3
                offset += 32
            }
            (a0, a1, a2, a3, b0, b1, b2, b3) = (x0, x1, x2, x3, y0, y1, y2, y3)
            if offset < bytes.count { addSlow(UnsafeRawBufferPointer(start: base + offset, count: bytes.count - offset)) }
        }

        /// Copies `source` into `destination` and adds the bytes, in one pass.
        public mutating func copy(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer) {
            precondition(destination.count >= source.count)
            guard let src = source.baseAddress, let dst = destination.baseAddress, source.count > 0 else { return }
            count += source.count
            var offset = 0
            if pendingCount > 0 {
                let k = min(32 - pendingCount, source.count)
                dst.copyMemory(from: src, byteCount: k)
                addSlow(UnsafeRawBufferPointer(start: src, count: k))
                offset = k
            }
            var (x0, x1, x2, x3, y0, y1, y2, y3) = (a0, a1, a2, a3, b0, b1, b2, b3)
            while offset + 32 <= source.count {
                let p = src + offset, q = dst + offset
                let w0 = p.loadUnaligned(as: UInt64.self)
                let w1 = p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                let w2 = p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
                let w3 = p.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
                q.storeBytes(of: w0, as: UInt64.self)
                q.storeBytes(of: w1, toByteOffset: 8, as: UInt64.self)
                q.storeBytes(of: w2, toByteOffset: 16, as: UInt64.self)
                q.storeBytes(of: w3, toByteOffset: 24, as: UInt64.self)
                x0 &+= UInt64(littleEndian: w0); y0 &+= x0
                x1 &+= UInt64(littleEndian: w1); y1 &+= x1
                x2 &+= UInt64(littleEndian: w2); y2 &+= x2
                x3 &+= UInt64(littleEndian: w3); y3 &+= x3
                offset += 32
            }
            (a0, a1, a2, a3, b0, b1, b2, b3) = (x0, x1, x2, x3, y0, y1, y2, y3)
            if offset < source.count {
                let k = source.count - offset
                (dst + offset).copyMemory(from: src + offset, byteCount: k)
                addSlow(UnsafeRawBufferPointer(start: src + offset, count: k))
            }
        }
    }
}
