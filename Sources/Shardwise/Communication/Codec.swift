/// How vectors become bytes on the wire, and back.
///
/// The codec is applied to every vector message on every backend (the threads backend too), so
/// its effect on convergence is the same everywhere and the bytes the report counts are the bytes
/// the codec produced.
///
/// | codec        | bytes per entry | error |
/// |--------------|-----------------|-------|
/// | `float64`    | 8               | exact for Double (and Float) |
/// | `float32`    | 4               | relative 2⁻²⁴ (round to nearest) |
/// | `float16`    | 2               | relative 2⁻¹¹, range ±65504 (larger values saturate) |
/// | `bfloat16`   | 2               | relative 2⁻⁸, Float's range |
/// | `int8`       | 1 + 4 per chunk | absolute max|chunk|/254 per chunk |
/// | `topk:f`     | 8 per kept entry| keeps the ⌈f·n⌉ largest |vᵢ|; error feedback carries the rest |
public enum CodecSpec: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    case float64
    case float32
    case float16
    case bfloat16
    /// Symmetric 8-bit quantisation with one Float scale per `chunk` entries.
    case int8(chunk: Int)
    /// Top-k sparsification keeping a `fraction` of the entries, with error feedback.
    case topK(fraction: Double)

    public var description: String {
        switch self {
        case .float64: return "float64"
        case .float32: return "float32"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        case .int8(let c): return c == CodecSpec.defaultInt8Chunk ? "int8" : "int8:\(c)"
        case .topK(let f): return "topk:\(f)"
        }
    }

    public static let defaultInt8Chunk = 256

    /// Names the CLI accepts.
    public static let names = ["float64", "float32", "float16", "bfloat16", "int8[:CHUNK]", "topk:FRACTION"]

    /// Parses `float64`, `float32`, `float16`, `bfloat16`, `int8`, `int8:CHUNK`, `topk:FRACTION`.
    /// - Throws: `JobError.invalid` (the syntax here, the ranges in `validate()`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let arg = parts.count > 1 ? parts[1] : nil
        switch parts.first ?? "" {
        case "float64", "f64", "double": self = .float64
        case "float32", "f32", "float": self = .float32
        case "float16", "f16", "half": self = .float16
        case "bfloat16", "bf16": self = .bfloat16
        case "int8":
            if let arg {
                guard let c = Int(arg) else {
                    throw JobError.invalid(field: "", message: "the int8 chunk must be an integer, got '\(arg)'")
                }
                self = .int8(chunk: c)
            } else {
                self = .int8(chunk: CodecSpec.defaultInt8Chunk)
            }
        case "topk", "top-k":
            guard let arg, let f = Double(arg) else {
                throw JobError.invalid(field: "", message: "top-k needs a fraction in (0, 1], e.g. topk:0.01")
            }
            self = .topK(fraction: f)
        default:
            throw JobError.invalid(field: "",
                message: "unknown codec '\(text)' (known: \(CodecSpec.names.joined(separator: ", ")))")
        }
        try validate()
    }

    /// The largest int8 chunk: a chunk longer than any vector is one scale for the whole vector,
    /// and the bound keeps `count + chunk − 1` far from overflow.
    public static let maximumInt8Chunk = 1 << 30

    /// The codec's parameters: the int8 chunk in 1…2³⁰ (a chunk of 0 divides by zero, a negative
    /// one sizes a negative buffer), the top-k fraction in (0, 1].
    /// - Throws: `JobError.invalid` naming the JSON field (`int8.chunk`, `topK.fraction`).
    public func validate() throws {
        switch self {
        case .int8(let chunk) where !(1...Self.maximumInt8Chunk).contains(chunk):
            throw JobError.invalid(field: "int8.chunk",
                                   message: "the int8 chunk must be in 1…\(Self.maximumInt8Chunk) entries, got \(chunk)")
        case .topK(let f) where !(f > 0 && f <= 1):
            throw JobError.invalid(field: "topK.fraction", message: "the top-k fraction must be in (0, 1], got \(f)")
        default:
            return
        }
    }

    /// Whether decode(encode(v)) == v for Double vectors.
    public var isLossless: Bool { self == .float64 }

    /// A fresh codec instance (codecs with error feedback keep per-stream state; give each node
    /// its own).
    public func makeCodec() -> VectorCodec { VectorCodec(spec: self) }
}

/// Identifies one stream of vectors for a codec with memory (top-k's error feedback): the residual
/// of what was not sent on a stream is added to the next vector sent on the same stream.
public struct CodecStream: Hashable, Sendable {
    public var tag: UInt32
    public var peer: Int
    public var offset: Int
    public init(tag: Tag, peer: Int, offset: Int = 0) {
        self.tag = tag.rawValue
        self.peer = peer
        self.offset = offset
    }
}

/// A codec instance. Not thread-safe: one per node.
public final class VectorCodec: @unchecked Sendable {
    public let spec: CodecSpec
    /// Error-feedback memory (top-k), per stream.
    var residuals: [CodecStream: [Double]] = [:]

    public init(spec: CodecSpec) { self.spec = spec }

    /// Bytes the encoding of `count` entries takes (for top-k, the size with ⌈f·count⌉ entries).
    public func encodedSize(count: Int) -> Int {
        switch spec {
        case .float64: return 8 * count
        case .float32: return 4 * count
        case .float16, .bfloat16: return 2 * count
        case .int8(let chunk): return count + 4 * ((count + chunk - 1) / chunk)
        case .topK(let f): return 4 + 8 * TopKCoding.kept(count: count, fraction: f)
        }
    }

    /// Encodes `v`. `stream` matters only to codecs with error feedback.
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, stream: CodecStream) -> [UInt8] {
        switch spec {
        case .float64: return ScalarCoding.encode(v, as: Double.self)
        case .float32: return ScalarCoding.encode(v, as: Float.self)
        case .float16: return HalfCoding.encode(v, brain: false)
        case .bfloat16: return HalfCoding.encode(v, brain: true)
        case .int8(let chunk): return Int8Coding.encode(v, chunk: chunk)
        case .topK(let f): return TopKCoding.encode(v, fraction: f, residual: &residuals[stream, default: []])
        }
    }

    /// Whether the encoding of a `Scalar` vector is its own memory (float64 of Double, float32 of
    /// Float, on a little-endian host): a backend may then send the vector's bytes as they are.
    public func encodesAsMemory<Scalar: BLASScalar>(_ type: Scalar.Type) -> Bool {
        guard 1.littleEndian == 1 else { return false }
        switch spec {
        case .float64: return Scalar.self == Double.self
        case .float32: return Scalar.self == Float.self
        default: return false
        }
    }

    /// Encodes `v` into `out`, which holds exactly `encodedSize(count: v.count)` bytes (a
    /// backend's own send buffer: float64 and float32 are written there directly).
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func encode<Scalar: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, into out: UnsafeMutableRawBufferPointer,
                                           stream: CodecStream) {
        switch spec {
        case .float64: ScalarCoding.encode(v, as: Double.self, into: out)
        case .float32: ScalarCoding.encode(v, as: Float.self, into: out)
        default:
            let bytes = encode(v, stream: stream)
            precondition(bytes.count == out.count, "encodedSize(count:) disagrees with the \(spec) encoder")
            bytes.withUnsafeBytes { out.copyMemory(from: $0) }
        }
    }

    /// out ← out + decode(bytes), in one pass for float64 and float32 (the ring's reduce-scatter);
    /// other codecs decode into a scratch vector first.
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func decodeAdding<Scalar: BLASScalar>(_ bytes: [UInt8], into out: UnsafeMutableBufferPointer<Scalar>) throws {
        switch spec {
        case .float64: try ScalarCoding.decodeAdding(bytes, as: Double.self, into: out)
        case .float32: try ScalarCoding.decodeAdding(bytes, as: Float.self, into: out)
        default:
            var scratch = Scalar.zeros(out.count)
            try scratch.withUnsafeMutableBufferPointer { try decode(bytes, into: $0) }
            for i in 0..<out.count { out[i] += scratch[i] }
        }
    }

    public func encode<Scalar: BLASScalar>(_ v: [Scalar], stream: CodecStream) -> [UInt8] {
        v.withUnsafeBufferPointer { encode($0, stream: stream) }
    }

    /// Decodes `bytes` into `out`, whose count is the vector length.
    /// - Throws: `CommunicationError.badPayload` when the byte count does not fit.
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    public func decode<Scalar: BLASScalar>(_ bytes: [UInt8], into out: UnsafeMutableBufferPointer<Scalar>) throws {
        switch spec {
        case .float64: try ScalarCoding.decode(bytes, as: Double.self, into: out)
        case .float32: try ScalarCoding.decode(bytes, as: Float.self, into: out)
        case .float16: try HalfCoding.decode(bytes, brain: false, into: out)
        case .bfloat16: try HalfCoding.decode(bytes, brain: true, into: out)
        case .int8(let chunk): try Int8Coding.decode(bytes, chunk: chunk, into: out)
        case .topK(let f): try TopKCoding.decode(bytes, fraction: f, into: out)
        }
    }

    public func decode<Scalar: BLASScalar>(_ bytes: [UInt8], count: Int, as: Scalar.Type = Scalar.self) throws -> [Scalar] {
        var out = Scalar.zeros(count)
        try out.withUnsafeMutableBufferPointer { try decode(bytes, into: $0) }
        return out
    }
}

/// float64 / float32: the values, little-endian.
enum ScalarCoding {
    static func encode<Scalar: BLASScalar, Wire: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, as: Wire.Type) -> [UInt8] {
        let n = v.count
        return [UInt8](unsafeUninitializedCapacity: n * Wire.byteWidth) { buf, initialized in
            let raw = UnsafeMutableRawPointer(buf.baseAddress!)
            if Scalar.self == Wire.self {
                raw.copyMemory(from: v.baseAddress!, byteCount: n * Wire.byteWidth)
            } else {
                let out = raw.bindMemory(to: Wire.self, capacity: n)
                for i in 0..<n { out[i] = Wire(v[i]) }
            }
            initialized = n * Wire.byteWidth
        }
    }

    static func encode<Scalar: BLASScalar, Wire: BLASScalar>(_ v: UnsafeBufferPointer<Scalar>, as: Wire.Type,
                                                             into out: UnsafeMutableRawBufferPointer) {
        let n = v.count
        precondition(out.count == n * Wire.byteWidth)
        guard n > 0 else { return }
        if Scalar.self == Wire.self {
            out.baseAddress!.copyMemory(from: v.baseAddress!, byteCount: n * Wire.byteWidth)
        } else {
            for i in 0..<n { out.storeBytes(of: Wire(v[i]), toByteOffset: i * Wire.byteWidth, as: Wire.self) }
        }
    }

    static func decodeAdding<Scalar: BLASScalar, Wire: BLASScalar>(
        _ bytes: [UInt8], as: Wire.Type, into out: UnsafeMutableBufferPointer<Scalar>
    ) throws {
        guard bytes.count == out.count * Wire.byteWidth else {
            throw CommunicationError.badPayload(
                "\(Wire.precisionName) payload of \(bytes.count) bytes cannot hold \(out.count) entries")
        }
        bytes.withUnsafeBytes { raw in
            for i in 0..<out.count {
                out[i] += Scalar(raw.loadUnaligned(fromByteOffset: i * Wire.byteWidth, as: Wire.self))
            }
        }
    }

    static func decode<Scalar: BLASScalar, Wire: BLASScalar>(
        _ bytes: [UInt8], as: Wire.Type, into out: UnsafeMutableBufferPointer<Scalar>
    ) throws {
        guard bytes.count == out.count * Wire.byteWidth else {
            throw CommunicationError.badPayload(
                "\(Wire.precisionName) payload of \(bytes.count) bytes cannot hold \(out.count) entries")
        }
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            if Scalar.self == Wire.self {
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: bytes.count)
            } else {
                for i in 0..<out.count {
                    out[i] = Scalar(raw.loadUnaligned(fromByteOffset: i * Wire.byteWidth, as: Wire.self))
                }
            }
        }
    }
}
