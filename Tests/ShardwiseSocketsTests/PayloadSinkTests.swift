import Foundation
import NIOCore
import NIOEmbedded
import Shardwise
import Testing
@testable import ShardwiseSockets

/// In-place receives at the frame level (`FrameDecoder` with a `PayloadSink`), on NIO's embedded
/// channel: the stream is fed in pieces of every size, through the pipeline and through the
/// progress engine's direct reads alternately, with the sink posted before the frame, in its
/// middle, or withdrawn before its end. The reference is the plain arithmetic on the vectors and
/// the byte-for-byte rest of the frame.
@Suite("Payload sinks")
struct PayloadSinkTests {
    static let tag: UInt32 = 5

    /// A deterministic vector whose entries use every byte (a full mantissa), so that a byte
    /// lost, zeroed or misplaced anywhere inside an entry shows.
    static func vector(_ n: Int, seed: Double) -> [Double] {
        (0..<n).map { sin(Double($0) + seed) * 1e3 + seed }
    }

    static func bytes(_ v: [Double]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

    /// The stream: a frame with another tag, the vector's frame, then a second frame with the
    /// sink's tag (which must reach the mailbox untouched, after the rest of the first).
    /// With `trailing`, the vector's frame carries its checksum after the payload, as the
    /// progress engine sends vectors (the other two frames have it in the header).
    static func stream(_ payload: [UInt8], trailing: Bool = false) -> [UInt8] {
        Frame(type: .data, tag: 4, payload: [UInt8](repeating: 3, count: 37)).encoded()
            + Frame(type: .data, tag: tag, payload: payload).encoded(trailingChecksum: trailing)
            + Frame(type: .data, tag: tag, payload: [9, 8, 7]).encoded()
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var entries: Int
        var piece: Int
        /// Stream bytes fed before the sink is posted.
        var attachAt: Int
        /// Stream bytes fed before it is withdrawn (nil: at the end).
        var detachAt: Int?
        var combine: InPlaceCombine
        var trailing = false
        var testDescription: String {
            "\(entries) entries, pieces of \(piece), posted at \(attachAt), withdrawn at \(detachAt.map(String.init) ?? "end"), \(combine)\(trailing ? ", trailing checksum" : "")"
        }
    }

    static let firstPayload = 2 * FrameHeader.size + 37   // where the vector's payload starts in the stream

    static let cases: [Case] = {
        var c = [Case]()
        for combine in [InPlaceCombine.replace, .add] {
            for (entries, piece) in [(1, 1), (1000, 7), (1000, 4096), (40_000, 65_536), (40_000, 1_000_003)] {
                c.append(Case(entries: entries, piece: piece, attachAt: 0, detachAt: nil, combine: combine))
                // Posted while the vector's payload is half in (it moves from its array to the sink).
                c.append(Case(entries: entries, piece: piece, attachAt: firstPayload + entries * 4 + 3, detachAt: nil, combine: combine))
                // Withdrawn in the middle: the rest comes as a message of its own.
                if entries > 1 { c.append(Case(entries: entries, piece: piece, attachAt: 10, detachAt: firstPayload + entries * 6 + 5, combine: combine)) }
                // A trailing checksum: read to the end; withdrawn with the payload in but the trailer not.
                c.append(Case(entries: entries, piece: piece, attachAt: 0, detachAt: nil, combine: combine, trailing: true))
                c.append(Case(entries: entries, piece: piece, attachAt: 0, detachAt: firstPayload + entries * 8 + 2, combine: combine, trailing: true))
            }
        }
        return c
    }()

    @Test(arguments: cases)
    func payloadLandsInPlace(_ c: Case) throws {
        let x = Self.vector(c.entries, seed: 1), y = Self.vector(c.entries, seed: -2)
        let payload = Self.bytes(x), stream = Self.stream(payload, trailing: c.trailing)
        var destination = y
        let channel = EmbeddedChannel()
        let decoder = FrameDecoder(maximumLength: 1 << 26, logger: .init(label: "test"))
        try channel.pipeline.syncOperations.addHandler(decoder)
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 12, alignment: 64)   // small: many refills
        defer { staging.deallocate() }

        var fed = 0, direct = false, taken: Int?
        var sinkState = PayloadSink.State.waiting
        func feed(upTo end: Int) throws {
            while fed < end {
                let k = min(c.piece, end - fed)
                direct.toggle()
                // Alternately as the progress engine reads (straight into the payload) and as NIO does.
                if direct, let n = decoder.readPayloadDirectly({ out in
                    let m = min(k, out.count)
                    out.copyBytes(from: stream[fed..<(fed + m)])
                    return m
                }) {
                    fed += n
                } else {
                    try channel.writeInbound(ByteBuffer(bytes: stream[fed..<(fed + k)]))
                    fed += k
                }
            }
        }
        // The sink's memory is `destination`'s: it lives and is used only inside this scope.
        try destination.withUnsafeMutableBytes { d in
            let sink = PayloadSink(tag: Self.tag, destination: d, stride: 8,
                                   add: c.combine == .replace ? nil : { a, b, n in
                                       let a = a.assumingMemoryBound(to: Double.self), b = b.assumingMemoryBound(to: Double.self)
                                       for i in 0..<n { b[i] += a[i] }
                                   }, staging: staging)
            try feed(upTo: c.attachAt)
            decoder.attach(sink)
            try feed(upTo: c.detachAt ?? stream.count)
            taken = decoder.detachSink()
            sinkState = sink.state
        }
        try feed(upTo: stream.count)

        var frames = [Frame]()
        while let f = try channel.readInbound(as: Frame.self) { frames.append(f) }
        #expect(frames.first?.tag == 4 && frames.first?.payload.count == 37)
        #expect(frames.last?.payload == [9, 8, 7])
        let combined = c.combine == .replace ? x : zip(x, y).map { $0 + $1 }
        if c.detachAt == nil {
            #expect(sinkState == .complete)
            #expect(taken == payload.count)
            #expect(frames.count == 2)
            #expect(destination == combined)
        } else {
            // Withdrawn mid-frame: whole entries went in place, the rest is the next message.
            let k = try #require(taken)
            #expect(k % 8 == 0 && k > 0 && k <= payload.count)
            #expect(sinkState == .filling)
            #expect(frames.count == 3)
            #expect(frames.count == 3 && frames[1].tag == Self.tag && frames[1].payload == Array(payload[k...]))
            #expect(Array(destination[..<(k / 8)]) == Array(combined[..<(k / 8)]))
            // Replacing, the bytes of a split entry may already be in place; the rest is untouched.
            let untouched = min(c.combine == .replace ? k / 8 + 1 : k / 8, c.entries)
            #expect(Array(destination[untouched...]) == Array(y[untouched...]))
        }
    }

    @Test("a vector of another length is not taken: it goes to the mailbox, and so does the next")
    func otherLengthIsDeclined() throws {
        let payload = Self.bytes(Self.vector(100, seed: 0)), stream = Self.stream(payload)
        var destination = [Double](repeating: 0, count: 99)
        let channel = EmbeddedChannel()
        let decoder = FrameDecoder(maximumLength: 1 << 20, logger: .init(label: "test"))
        try channel.pipeline.syncOperations.addHandler(decoder)
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 12, alignment: 64)
        defer { staging.deallocate() }
        let state: PayloadSink.State = try destination.withUnsafeMutableBytes { d in
            let sink = PayloadSink(tag: Self.tag, destination: d, stride: 8, add: nil, staging: staging)
            decoder.attach(sink)
            try channel.writeInbound(ByteBuffer(bytes: stream))
            #expect(decoder.detachSink() == 0)
            return sink.state
        }
        #expect(state == .declined)
        var frames = [Frame]()
        while let f = try channel.readInbound(as: Frame.self) { frames.append(f) }
        #expect(frames.map(\.payload.count) == [37, payload.count, 3])
        #expect(destination == [Double](repeating: 0, count: 99))
    }

    @Test("a corrupted payload fails the sink and closes the connection", arguments: [InPlaceCombine.replace, .add])
    func corruptionFailsTheSink(_ combine: InPlaceCombine) throws {
        var stream = Self.stream(Self.bytes(Self.vector(500, seed: 0)))
        stream[Self.firstPayload + 1234] ^= 0x04
        var destination = [Double](repeating: 0, count: 500)
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let decoder = FrameDecoder(maximumLength: 1 << 20, logger: .init(label: "test"))
        try channel.pipeline.syncOperations.addHandler(decoder)
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 12, alignment: 64)
        defer { staging.deallocate() }
        let state: PayloadSink.State = destination.withUnsafeMutableBytes { d in
            let sink = PayloadSink(tag: Self.tag, destination: d, stride: 8,
                                   add: combine == .replace ? nil : { a, b, n in
                                       let a = a.assumingMemoryBound(to: Double.self), b = b.assumingMemoryBound(to: Double.self)
                                       for i in 0..<n { b[i] += a[i] }
                                   }, staging: staging)
            decoder.attach(sink)
            _ = try? channel.writeInbound(ByteBuffer(bytes: stream))
            decoder.detachSink()
            return sink.state
        }
        guard case .failed(let why) = state else {
            Issue.record("sink state \(state)")
            return
        }
        #expect(why.contains("checksum"))
        #expect(!channel.isActive)
    }
}
