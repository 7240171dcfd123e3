import Testing
@testable import ShardwiseSockets

/// The wire format on its own: round trips, and every way a frame is refused.
@Suite("Frames")
struct FrameTests {
    static let payloadSizes = [0, 1, 7, 31, 32, 33, 1000, 65_537]

    @Test(arguments: payloadSizes)
    func roundTrip(size: Int) throws {
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        for type in FrameType.allCases {
            let frame = Frame(type: type, tag: 0x8000_0005, payload: payload)
            let bytes = frame.encoded()
            #expect(bytes.count == FrameHeader.size + size)
            #expect(try Frame.decode(bytes) == frame)
        }
    }

    @Test func checksumInPiecesEqualsWhole() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let whole = bytes.withUnsafeBytes { FrameChecksum.compute($0) }
        for cut in [1, 5, 31, 32, 33, 500, 999] {
            var s = FrameChecksum.State()
            bytes.withUnsafeBytes { b in
                s.add(UnsafeRawBufferPointer(rebasing: b[0..<cut]))
                s.add(UnsafeRawBufferPointer(rebasing: b[cut...]))
            }
            #expect(s.value == whole, "cut at \(cut)")
            // The copying variant copies exactly and sums the same.
            var out = [UInt8](repeating: 0, count: bytes.count)
            var c = FrameChecksum.State()
            bytes.withUnsafeBytes { b in
                out.withUnsafeMutableBytes { o in
                    c.copy(from: UnsafeRawBufferPointer(rebasing: b[0..<cut]), to: UnsafeMutableRawBufferPointer(rebasing: o[0..<cut]))
                    c.copy(from: UnsafeRawBufferPointer(rebasing: b[cut...]), to: UnsafeMutableRawBufferPointer(rebasing: o[cut...]))
                }
            }
            #expect(out == bytes)
            #expect(c.value == whole)
        }
    }

    @Test func checksumSeesSmallChanges() {
        let base = [UInt8](repeating: 0, count: 64)
        let zero = base.withUnsafeBytes { FrameChecksum.compute($0) }
        var flipped = base
        flipped[40] = 1
        #expect(flipped.withUnsafeBytes { FrameChecksum.compute($0) } != zero)
        // Trailing zeros change the length, hence the sum.
        #expect((base + [0]).withUnsafeBytes { FrameChecksum.compute($0) } != zero)
        // Swapped words.
        var a = [UInt8](repeating: 0, count: 64), b = a
        a[0] = 1; a[8] = 2
        b[0] = 2; b[8] = 1
        #expect(a.withUnsafeBytes { FrameChecksum.compute($0) } != b.withUnsafeBytes { FrameChecksum.compute($0) })
    }

    @Test func crc32KnownValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func badMagicIsRefused() {
        var bytes = Frame(type: .data, tag: 1, payload: [1, 2, 3]).encoded()
        bytes[0] = 0x47   // "GET " from a web client, say
        #expect(throws: FrameError.badMagic(0x4757_4431)) { try Frame.decode(bytes) }
    }

    @Test func corruptedHeaderIsRefused() {
        var bytes = Frame(type: .data, tag: 1, payload: [1, 2, 3]).encoded()
        bytes[9] ^= 0xFF   // the tag
        #expect { try Frame.decode(bytes) } throws: { e in
            if case FrameError.badHeaderChecksum = e { return true }
            return false
        }
    }

    @Test func corruptedPayloadIsRefused() {
        var bytes = Frame(type: .data, tag: 1, payload: Array(repeating: 9, count: 100)).encoded()
        bytes[FrameHeader.size + 50] ^= 0x10
        #expect { try Frame.decode(bytes) } throws: { e in
            if case FrameError.badPayloadChecksum = e { return true }
            return false
        }
    }

    /// Rewrites header fields and re-seals the header CRC (a well-formed but unacceptable header).
    static func header(version: UInt8 = FrameHeader.currentVersion, type: UInt8 = FrameType.data.rawValue, flags: UInt16 = 0,
                       length: UInt32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: FrameHeader.size)
        h.withUnsafeMutableBytes { b in
            b.storeBytes(of: FrameHeader.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
            b[4] = version
            b[5] = type
            b.storeBytes(of: flags.bigEndian, toByteOffset: 6, as: UInt16.self)
            b.storeBytes(of: length.bigEndian, toByteOffset: 12, as: UInt32.self)
            let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: b[0..<20]))
            b.storeBytes(of: crc.bigEndian, toByteOffset: 20, as: UInt32.self)
        }
        return h
    }

    @Test func wrongVersionIsRefused() {
        #expect(throws: FrameError.unsupportedVersion(1)) { try Frame.decode(Self.header(version: 1, length: 0)) }
    }

    @Test func unknownFlagsAreRefused() {
        #expect(throws: FrameError.unknownFlags(6)) { try Frame.decode(Self.header(flags: 6, length: 0)) }
    }

    @Test("a frame with its checksum after the payload round-trips; a corrupted one is refused", arguments: payloadSizes)
    func trailingChecksum(size: Int) throws {
        let frame = Frame(type: .data, tag: 9, payload: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        var bytes = frame.encoded(trailingChecksum: true)
        #expect(bytes.count == FrameHeader.size + size + FrameHeader.trailerSize)
        #expect(try Frame.decode(bytes) == frame)
        bytes[bytes.count - 1 - (size > 0 ? FrameHeader.trailerSize : 0)] ^= 0x01   // the last payload byte, or the trailer
        #expect { try Frame.decode(bytes) } throws: { e in
            if case FrameError.badPayloadChecksum = e { return true }
            return false
        }
        #expect(throws: FrameError.truncated(received: bytes.count - 1, expected: bytes.count)) { try Frame.decode(Array(bytes.dropLast())) }
    }

    @Test func unknownTypeIsRefused() {
        #expect(throws: FrameError.unknownType(200)) { try Frame.decode(Self.header(type: 200, length: 0)) }
    }

    @Test func oversizedLengthIsRefusedBeforeReadingIt() {
        #expect(throws: FrameError.oversized(length: 0xFFFF_FFF0, maximum: FrameHeader.handshakeMaximum)) {
            try Frame.decode(Self.header(length: 0xFFFF_FFF0), maximumLength: FrameHeader.handshakeMaximum)
        }
    }

    @Test func truncatedFrameIsRefused() {
        let bytes = Frame(type: .data, tag: 1, payload: Array(repeating: 1, count: 100)).encoded()
        #expect(throws: FrameError.truncated(received: 60, expected: 124)) { try Frame.decode(Array(bytes[0..<60])) }
        #expect(throws: FrameError.truncated(received: 10, expected: FrameHeader.size)) { try Frame.decode(Array(bytes[0..<10])) }
    }

    @Test func handshakeMacDependsOnSecretAndNonces() throws {
        let s1 = try SharedSecret("0123456789abcdef0123"), s2 = try SharedSecret("0123456789abcdef0124")
        let hello = Handshake.Hello(rank: 1, size: 2, jobID: "j", purpose: .join, listenPort: 5, nonce: "n", mac: "")
        let m = Handshake.clientMessage(hello, challenge: "c")
        let mac = Handshake.mac(m, secret: s1)
        #expect(Handshake.verify(mac, m, secret: s1))
        #expect(!Handshake.verify(mac, m, secret: s2))
        #expect(!Handshake.verify(mac, Handshake.clientMessage(hello, challenge: "c2"), secret: s1))
        #expect(!Handshake.verify("not base64", m, secret: s1))
        #expect(throws: SocketError.self) { try SharedSecret("short") }
    }
}
