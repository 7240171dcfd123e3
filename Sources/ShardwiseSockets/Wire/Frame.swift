/// The socket backend's wire format: every message is one frame, a fixed 24-byte header followed
/// by the payload (a codec's bytes, or a small JSON control message).
///
/// ```
/// offset  size  field
///      0     4  magic       "SWD1" (0x53574431), big-endian like every integer below
///      4     1  version     FrameHeader.currentVersion
///      5     1  type        FrameType
///      6     2  flags       bit 0: trailing checksum (below); the other bits are 0
///      8     4  tag         the message tag (data frames), 0 otherwise
///     12     4  length      payload bytes, ≤ the receiver's maximum frame size
///     16     4  checksum    FrameChecksum of the payload (0 with a trailing checksum)
///     20     4  header CRC  CRC-32 (IEEE) of bytes 0..<20
/// ```
///
/// With the trailing-checksum flag the payload's checksum is the 4 bytes right after the payload
/// instead. A sender that streams a large vector from its own memory sets it: it checksums each
/// piece just before the kernel copies it, while it is in cache, instead of reading the whole
/// vector once more before the first byte can leave (version 2 added the flag; version 3 the
/// `progress` frame).
///
/// The header CRC catches a misframed or foreign stream before any payload is read; the payload
/// checksum catches torn or corrupted payloads. Neither is cryptographic: authenticity is settled
/// once per connection by the HMAC handshake (`Handshake`). A receiver that finds a bad magic,
/// an unknown version or type, a bad checksum or an oversized length closes that connection and
/// logs why; it never trusts a length before the header CRC is verified.
public enum FrameType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    // Handshake (before authentication; payloads are small JSON).
    /// Acceptor → connector: a fresh nonce to answer.
    case challenge = 1
    /// Connector → acceptor: who I am, my nonce, and my HMAC over both nonces.
    case hello = 2
    /// Acceptor → connector: accepted, with the acceptor's HMAC (mutual authentication).
    case welcome = 3
    /// Acceptor → connector: refused, with the reason; the connection closes.
    case reject = 4

    // Control (node ↔ coordinator, after authentication).
    /// Coordinator → node: every rank's address.
    case peers = 5
    /// Coordinator → node: a rank is lost.
    case lost = 6
    /// Node → coordinator: my NodeOutcome (JSON) after my strategy finished.
    case outcome = 7
    /// Coordinator → node: the run is over, close everything.
    case done = 8
    /// Either way: this node failed or stopped the run, with the reason.
    case abort = 9
    /// Either way: I am closing this connection on purpose.
    case goodbye = 10
    /// Coordinator → node: the last iteration rank 0 completed (8 bytes, big-endian), a few times
    /// a second, so that a worker's errors name the iteration the run was at.
    case progress = 11

    /// A strategy's message: `tag` and the codec's bytes.
    case data = 16

    public var description: String {
        switch self {
        case .challenge: "challenge"
        case .hello: "hello"
        case .welcome: "welcome"
        case .reject: "reject"
        case .peers: "peers"
        case .lost: "lost"
        case .outcome: "outcome"
        case .done: "done"
        case .abort: "abort"
        case .goodbye: "goodbye"
        case .progress: "progress"
        case .data: "data"
        }
    }
}

/// One decoded frame.
public struct Frame: Sendable, Equatable {
    public var type: FrameType
    public var tag: UInt32
    public var payload: [UInt8]

    public init(type: FrameType, tag: UInt32 = 0, payload: [UInt8] = []) {
        self.type = type
        self.tag = tag
        self.payload = payload
    }
}

/// Why a frame was refused. The connection that carried it is closed.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    /// The first four bytes are not "SWD1": not a Shardwise peer.
    case badMagic(UInt32)
    /// A Shardwise peer speaking another protocol version.
    case unsupportedVersion(UInt8)
    /// A type byte this version does not know.
    case unknownType(UInt8)
    /// The header's own CRC does not match: garbage or a misframed stream. `expected` is the CRC
    /// the header carries, `actual` the CRC of the header bytes that arrived.
    case badHeaderChecksum(expected: UInt32, actual: UInt32)
    /// The payload's checksum does not match: corrupted in transit. `expected` is the checksum
    /// the sender wrote (in the header or the trailer), `actual` that of the payload that arrived.
    case badPayloadChecksum(expected: UInt32, actual: UInt32)
    /// Flag bits this version does not know.
    case unknownFlags(UInt16)
    /// The announced payload is larger than this connection accepts.
    case oversized(length: Int, maximum: Int)
    /// The connection closed in the middle of a frame.
    case truncated(received: Int, expected: Int)

    public var description: String {
        switch self {
        case .badMagic(let m): return "bad magic 0x\(String(m, radix: 16)) (not a Shardwise peer)"
        case .unsupportedVersion(let v): return "unsupported protocol version \(v) (this node speaks \(FrameHeader.currentVersion))"
        case .unknownType(let t): return "unknown frame type \(t)"
        case .unknownFlags(let f): return "unknown frame flags 0x\(String(f, radix: 16))"
        // Which value is "expected" depends on the reader's point of view, so the message says
        // which number came from where instead.
        case .badHeaderChecksum(let e, let a):
            return "bad header checksum: the header carries CRC 0x\(hex(e)), its bytes as received have CRC 0x\(hex(a))"
        case .badPayloadChecksum(let e, let a):
            return "bad payload checksum: the sender's checksum is 0x\(hex(e)), the payload received has 0x\(hex(a)) (corrupted in transit)"
        case .oversized(let n, let max): return "frame of \(n) bytes exceeds the maximum of \(max)"
        case .truncated(let got, let want): return "connection closed inside a frame (\(got) of \(want) bytes)"
        }
    }

    private func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// The fixed-size header, and its (de)serialisation.
public struct FrameHeader: Sendable, Equatable {
    public static let magic: UInt32 = 0x5357_4431   // "SWD1"
    public static let currentVersion: UInt8 = 3
    public static let size = 24
    /// Bytes of a trailing checksum.
    public static let trailerSize = 4
    static let trailingChecksumFlag: UInt16 = 1
    /// Frames before authentication are small: a stranger cannot make a node allocate much.
    public static let handshakeMaximum = 4096
    /// Default maximum payload after authentication (1e7 float64 entries are 80 MB).
    public static let defaultMaximum = 512 << 20

    public var type: FrameType
    public var tag: UInt32
    public var length: Int
    public var checksum: UInt32
    /// The payload's checksum follows the payload (`checksum` is then 0).
    public var trailingChecksum: Bool

    public init(type: FrameType, tag: UInt32, length: Int, checksum: UInt32, trailingChecksum: Bool = false) {
        self.type = type
        self.tag = tag
        self.length = length
        self.checksum = trailingChecksum ? 0 : checksum
        self.trailingChecksum = trailingChecksum
    }

    /// Bytes of the whole frame on the wire: header, payload and trailing checksum.
    public var wireSize: Int { Self.size + length + (trailingChecksum ? Self.trailerSize : 0) }

    /// Writes the 24 header bytes at `out`.
    public func write(to out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.size)
        out.storeBytes(of: Self.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
        out[4] = Self.currentVersion
        out[5] = type.rawValue
        out.storeBytes(of: (trailingChecksum ? Self.trailingChecksumFlag : 0).bigEndian, toByteOffset: 6, as: UInt16.self)
        out.storeBytes(of: tag.bigEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: UInt32(length).bigEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: checksum.bigEndian, toByteOffset: 16, as: UInt32.self)
        let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: out[0..<20]))
        out.storeBytes(of: crc.bigEndian, toByteOffset: 20, as: UInt32.self)
    }

    /// Parses and checks 24 header bytes: magic, then the header CRC (so a garbage length is never
    /// believed), then version, type and the size limit.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maximumLength: Int) throws(FrameError) -> FrameHeader {
        precondition(bytes.count >= size)
        func u32(_ offset: Int) -> UInt32 { UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        let magic = u32(0)
        guard magic == Self.magic else { throw .badMagic(magic) }
        let expected = u32(20)
        let actual = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<20]))
        guard expected == actual else { throw .badHeaderChecksum(expected: expected, actual: actual) }
        guard bytes[4] == currentVersion else { throw .unsupportedVersion(bytes[4]) }
        guard let type = FrameType(rawValue: bytes[5]) else { throw .unknownType(bytes[5]) }
        let flags = UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard flags & ~trailingChecksumFlag == 0 else { throw .unknownFlags(flags) }
        let length = Int(u32(12))
        guard length <= maximumLength else { throw .oversized(length: length, maximum: maximumLength) }
        return FrameHeader(type: type, tag: u32(8), length: length, checksum: u32(16), trailingChecksum: flags & trailingChecksumFlag != 0)
    }
}

extension Frame {
    /// Header and payload (and the trailing checksum, if asked) as one contiguous byte array
    /// (tests, and the raw clients of the tests).
    public func encoded(trailingChecksum: Bool = false) -> [UInt8] {
        let trailer = trailingChecksum ? FrameHeader.trailerSize : 0
        var out = [UInt8](repeating: 0, count: FrameHeader.size + payload.count + trailer)
        let sum = payload.withUnsafeBytes { FrameChecksum.compute($0) }
        out.withUnsafeMutableBytes { buf in
            FrameHeader(type: type, tag: tag, length: payload.count, checksum: sum, trailingChecksum: trailingChecksum).write(to: buf)
            if !payload.isEmpty {
                payload.withUnsafeBytes { p in
                    UnsafeMutableRawBufferPointer(rebasing: buf[FrameHeader.size...]).copyMemory(from: p)
                }
            }
            if trailingChecksum { buf.storeBytes(of: sum.bigEndian, toByteOffset: FrameHeader.size + payload.count, as: UInt32.self) }
        }
        return out
    }

    /// Decodes one whole frame from `bytes` (which must hold exactly one frame).
    public static func decode(_ bytes: [UInt8], maximumLength: Int = FrameHeader.defaultMaximum) throws(FrameError) -> Frame {
        guard bytes.count >= FrameHeader.size else { throw .truncated(received: bytes.count, expected: FrameHeader.size) }
        let header = try bytes.withUnsafeBytes { buf in
            Result { () throws(FrameError) in try FrameHeader.parse(buf, maximumLength: maximumLength) }
        }.get()
        let end = FrameHeader.size + header.length
        let total = end + (header.trailingChecksum ? FrameHeader.trailerSize : 0)
        guard bytes.count >= total else { throw .truncated(received: bytes.count, expected: total) }
        let payload = Array(bytes[FrameHeader.size..<end])
        let sum = payload.withUnsafeBytes { FrameChecksum.compute($0) }
        let expected = header.trailingChecksum
            ? bytes.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: end, as: UInt32.self)) }
            : header.checksum
        guard sum == expected else { throw .badPayloadChecksum(expected: expected, actual: sum) }
        return Frame(type: header.type, tag: header.tag, payload: payload)
    }
}
