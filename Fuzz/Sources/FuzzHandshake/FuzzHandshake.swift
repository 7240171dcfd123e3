import Foundation
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
@testable import ShardwiseSockets

/// The handshake as a stranger drives it, before any authentication: frames through the decoder
/// at the handshake's 4 KiB limit, then each payload decoded as the message its type announces
/// (challenge, hello, welcome, reject) and its HMAC checked against a fixed secret. Option byte:
/// bit 0 repairs the frames' checksums, bit 1 replaces each hello's and welcome's mac by the right
/// one — which must then verify, and a wrong one must not.
public func fuzzHandshake(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var input = FuzzInput(data, count)
    let flags = input.option()
    let split = input.option()
    var stream = input.bytes
    if flags & 1 != 0 { repairFrames(&stream, payloads: true) }
    let decoder = FrameDecoder(maximumLength: FrameHeader.handshakeMaximum,
                               logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
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

    let secret = try! SharedSecret("fuzzing-secret-of-enough-length")
    var challenge = "AAAA"
    for frame in frames {
        switch frame.type {
        case .challenge:
            if let c = Handshake.decode(Handshake.Challenge.self, frame.payload) { challenge = c.nonce }
        case .hello:
            guard var hello = Handshake.decode(Handshake.Hello.self, frame.payload) else { continue }
            let message = Handshake.clientMessage(hello, challenge: challenge)
            if flags & 2 != 0 {
                hello.mac = Handshake.mac(message, secret: secret)
                precondition(Handshake.verify(hello.mac, message, secret: secret), "a right mac did not verify")
                // Re-encoded and decoded, the hello is the same and still verifies.
                let again = Handshake.decode(Handshake.Hello.self, Handshake.encode(hello))
                precondition(again.map { Handshake.verify($0.mac, Handshake.clientMessage($0, challenge: challenge), secret: secret) } == true,
                             "a hello lost its mac through JSON")
            } else {
                _ = Handshake.verify(hello.mac, message, secret: secret)
            }
        case .welcome:
            guard let welcome = Handshake.decode(Handshake.Welcome.self, frame.payload) else { continue }
            let message = Handshake.serverMessage(rank: welcome.rank, challenge: challenge, clientNonce: "BBBB")
            let right = Handshake.mac(message, secret: secret)
            precondition(Handshake.verify(right, message, secret: secret), "a right mac did not verify")
            if welcome.mac != right { precondition(!Handshake.verify(welcome.mac, message, secret: secret) || Data(base64Encoded: welcome.mac) == Data(base64Encoded: right), "a wrong mac verified") }
        case .reject:
            _ = Handshake.decode(Handshake.Reject.self, frame.payload)?.reason
        default:
            // Before authentication any other frame is refused by type; its payload is not read.
            break
        }
    }
    // A secret read from a file or the environment.
    _ = try? SharedSecret(String(decoding: stream.prefix(256), as: UTF8.self))
    return 0
}

@main
enum FuzzHandshakeMain {
    static func main() {
        runFuzzer { data, count in fuzzHandshake(data, count) }
    }
}
