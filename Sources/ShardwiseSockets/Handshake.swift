@preconcurrency import Crypto
import Foundation

/// The shared secret every node of a run holds. `shardwise launch` generates one per run and gives
/// it to its children in the environment; a node started by hand reads `SHARDWISE_SECRET` or
/// `--secret-file`.
public struct SharedSecret: Sendable {
    public static let environmentVariable = "SHARDWISE_SECRET"
    let key: SymmetricKey

    public init(_ text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count >= 16 else {
            throw SocketError.configuration("the shared secret must be at least 16 characters")
        }
        key = SymmetricKey(data: Data(trimmed.utf8))
    }

    /// A fresh random secret (256 bits, hex).
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    /// From `--secret-file`, else the environment.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SharedSecret {
        if let file {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw SocketError.configuration("--secret-file \(file): cannot read it")
            }
            return try SharedSecret(text)
        }
        guard let text = environment[environmentVariable] else {
            throw SocketError.configuration("no shared secret: set \(environmentVariable) or give --secret-file (every node of the run needs the same one)")
        }
        return try SharedSecret(text)
    }
}

/// What a connection is for.
public enum ConnectionPurpose: String, Codable, Sendable {
    /// A node's control connection to the coordinator (rendezvous, failures, outcomes).
    case join
    /// A one-way data link: the connector sends its strategy's messages to the acceptor.
    case data
}

/// The mutual HMAC-SHA256 challenge–response at the start of every connection:
///
/// 1. acceptor → connector: `challenge` {nonceA}
/// 2. connector → acceptor: `hello` {rank, size, job id, purpose, listen port, nonceC,
///    mac = HMAC(secret, "client" ‖ nonceA ‖ nonceC ‖ fields)}
/// 3. acceptor checks the mac (constant time), the job id, the rank; then → `welcome` {rank,
///    mac = HMAC(secret, "server" ‖ nonceC ‖ nonceA ‖ rank)}, or `reject` {reason} and close.
/// 4. the connector checks the acceptor's mac, so neither side talks to an impostor.
///
/// Fresh nonces on both sides make a recorded exchange useless for a replay. The secret never
/// crosses the wire.
enum Handshake {
    static let nonceBytes = 32

    struct Challenge: Codable { var nonce: String }
    struct Hello: Codable {
        var rank: Int
        var size: Int
        var jobID: String
        var purpose: ConnectionPurpose
        /// The port this node accepts data links on (join only).
        var listenPort: Int
        var nonce: String
        var mac: String
    }
    struct Welcome: Codable { var rank: Int; var mac: String }
    struct Reject: Codable { var reason: String }

    static func nonce() -> String {
        var rng = SystemRandomNumberGenerator()
        return Data((0..<nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }).base64EncodedString()
    }

    static func clientMessage(_ h: Hello, challenge: String) -> Data {
        Data("shardwise/1 client|\(challenge)|\(h.nonce)|\(h.rank)|\(h.size)|\(h.jobID)|\(h.purpose.rawValue)|\(h.listenPort)".utf8)
    }

    static func serverMessage(rank: Int, challenge: String, clientNonce: String) -> Data {
        Data("shardwise/1 server|\(clientNonce)|\(challenge)|\(rank)".utf8)
    }

    static func mac(_ message: Data, secret: SharedSecret) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: message, using: secret.key)).base64EncodedString()
    }

    /// Constant-time check of a base64 mac.
    static func verify(_ mac: String, _ message: Data, secret: SharedSecret) -> Bool {
        guard let code = Data(base64Encoded: mac) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: message, using: secret.key)
    }

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? Array(JSONEncoder().encode(value))) ?? []
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }

    /// Text a peer sent (a reason), fit for an error message or a log line: at most
    /// `maximumTextBytes` of it, control characters (a forged log line) shown as `?`.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if out.utf8.count >= maximumTextBytes { return out + "…" }
            out.unicodeScalars.append(scalar.properties.generalCategory == .control ? "?" : scalar)
        }
        return out
    }

    /// The same for raw bytes (an abort's reason), decoded as UTF-8.
    static func printable(_ bytes: [UInt8]) -> String {
        printable(String(decoding: bytes.prefix(4 * maximumTextBytes), as: UTF8.self))
    }

    static let maximumTextBytes = 1000
}
