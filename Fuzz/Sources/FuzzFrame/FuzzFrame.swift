import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
@testable import ShardwiseSockets

/// The frame decoder on a stream a peer controls. Option byte: bit 0 repairs the header CRCs,
/// bit 1 the payload checksums too (so both the refusals and what lies behind them are reached),
/// bit 2 raises the maximum frame from the handshake's 4 KiB to 1 MiB (an authenticated peer);
/// the next byte cuts the stream into reads. Every frame out must re-encode to what it was, and
/// the one-shot `Frame.decode` must agree with the stream decoder on a single frame.
public func fuzzFrame(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var input = FuzzInput(data, count)
    let flags = input.option()
    let split = input.option()
    var stream = input.bytes
    if flags & 1 != 0 { repairFrames(&stream, payloads: flags & 2 != 0) }
    let maximum = flags & 4 != 0 ? 1 << 20 : FrameHeader.handshakeMaximum
    let decoder = FrameDecoder(maximumLength: maximum, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
    let channel = EmbeddedChannel(handler: decoder)
    // Connected, so that a decoder that refuses a frame and closes is seen to (isActive), and
    // finish() tears the pipeline down (the decoder holds its context until then).
    _ = try? channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    var frames: [Frame] = []
    for read in FuzzInput.reads(of: stream, seed: split) {
        var buffer = channel.allocator.buffer(capacity: read.count)
        buffer.writeBytes(read)
        do { try channel.writeInbound(buffer) } catch { break }
        while let f = try? channel.readInbound(as: Frame.self) { frames.append(f) }
        if !channel.isActive { break }
    }
    _ = try? channel.finish()
    for f in frames { precondition(f.payload.count <= maximum, "a frame over the maximum came out") }
    // A lone frame: the one-shot decoder sees the same.
    if let one = try? Frame.decode(stream, maximumLength: maximum), stream.count == one.encoded().count {
        precondition(frames.first == one, "Frame.decode and FrameDecoder disagree")
    }
    return 0
}

@main
enum FuzzFrameMain {
    static func main() {
        runFuzzer { data, count in fuzzFrame(data, count) }
    }
}
