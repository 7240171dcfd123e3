import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing
@testable import ShardwiseSockets

/// Inputs found by the libFuzzer harnesses (`Fuzz/`, `make fuzz`), kept as tests.
@Suite struct FrameFuzzRegressionTests {
    /// Feeds `bytes` to a fresh decoder in reads of the given sizes; returns the frames out.
    static func decode(_ bytes: [UInt8], reads: [Int], maximum: Int = FrameHeader.handshakeMaximum) throws -> [Frame] {
        let channel = EmbeddedChannel(handler: FrameDecoder(maximumLength: maximum, logger: Logger(label: "test")))
        var frames: [Frame] = []
        var at = 0
        for n in reads + [bytes.count] where at < bytes.count {
            var buffer = channel.allocator.buffer(capacity: n)
            buffer.writeBytes(bytes[at..<min(at + n, bytes.count)])
            at += n
            try channel.writeInbound(buffer)
            while let f = try channel.readInbound(as: Frame.self) { frames.append(f) }
        }
        _ = try? channel.finish()
        return frames
    }

    /// The first FuzzFrame finding (590bccd3…) was the harness's own mistake (it stopped feeding an
    /// unconnected EmbeddedChannel after one read), not the decoder's; the case stays as a check
    /// that a valid 31-byte `peers` frame, cut into reads of 43 and 12 bytes (the payload in
    /// pieces of 19 and 12), comes out whole, as `Frame.decode` reads it.
    static let peersPayload: [UInt8] = [99, 101, 34, 58, 34, 99, 50, 86, 121, 100, 109, 86, 121, 34, 125, 83,
                                        87, 68, 32, 49, 2, 91, 123, 34, 104, 0, 0, 197, 124, 111, 137]

    @Test func frameSplitInsideItsPayloadComesOutWhole() throws {
        let frame = Frame(type: .peers, payload: Self.peersPayload)
        let bytes = frame.encoded()
        #expect(try Frame.decode(bytes) == frame)
        #expect(try Self.decode(bytes, reads: [43, 12]) == [frame])
    }

    /// The same frame cut at every point, and in reads of every size: the decoder's running
    /// checksum must equal the one-shot checksum however the payload arrives.
    @Test(arguments: [3, 31, 32, 33, 100])
    func everyCutPoint(payloadCount: Int) throws {
        let payload = (0..<payloadCount).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let frame = Frame(type: .data, tag: 9, payload: payload)
        let bytes = frame.encoded()
        for k in 1..<bytes.count {
            #expect(try Self.decode(bytes, reads: [k]) == [frame], "cut at \(k) of \(bytes.count)")
        }
        for n in 1...8 {
            #expect(try Self.decode(bytes, reads: Array(repeating: n, count: bytes.count / n + 1)) == [frame], "reads of \(n)")
        }
    }
}
