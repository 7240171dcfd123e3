import Shardwise
import Testing
import _TestSupport

@Suite("Codecs")
struct CodecTests {
    static let specs: [CodecSpec] = [.float64, .float32, .float16, .bfloat16, .int8(chunk: 256), .int8(chunk: 7), .topK(fraction: 0.1)]

    /// Worst absolute error a codec may make on v (for top-k: on the kept entries; the others are zero).
    func bound(_ spec: CodecSpec, _ v: [Double]) -> [Double] {
        switch spec {
        case .float64: return v.map { _ in 0 }
        case .float32: return v.map { abs($0) * 0x1p-24 }
        case .float16: return v.map { abs($0) * 0x1p-11 + 0x1p-25 }
        case .bfloat16: return v.map { abs($0) * 0x1p-8 }
        case .int8(let chunk):
            return v.indices.map { i in
                let c = i / chunk
                let m = v[(c * chunk)..<min(v.count, (c + 1) * chunk)].map(abs).max()!
                return m / 254 * 1.0001 + m * 0x1p-23
            }
        case .topK: return v.map { abs($0) * 0x1p-24 }
        }
    }

    @Test("round trip within the stated error", arguments: specs, [0, 1, 7, 1000])
    func roundTrip(spec: CodecSpec, count: Int) throws {
        let v: [Double] = TestData.vector(count, seed: UInt64(count) + 3).map { $0 * 100 }
        let codec = spec.makeCodec()
        let bytes = codec.encode(v, stream: CodecStream(tag: Tag(1), peer: 0))
        #expect(bytes.count == codec.encodedSize(count: count))
        let back: [Double] = try codec.decode(bytes, count: count)
        let b = bound(spec, v)
        if case .topK(let f) = spec {
            let kept = back.filter { $0 != 0 }.count
            #expect(kept <= max(1, Int((f * Double(count)).rounded(.up))) || count == 0)
            // Every kept entry is at least as large as every dropped one.
            let keptMin = zip(v, back).filter { $1 != 0 }.map { abs($0.0) }.min() ?? .infinity
            let droppedMax = zip(v, back).filter { $1 == 0 }.map { abs($0.0) }.max() ?? 0
            #expect(keptMin >= droppedMax)
            for i in v.indices where back[i] != 0 { #expect(abs(back[i] - v[i]) <= b[i]) }
        } else {
            for i in v.indices { #expect(abs(back[i] - v[i]) <= b[i], "entry \(i): \(v[i]) → \(back[i])") }
        }
    }

    @Test("encoding into a send buffer gives the same bytes; decode-and-add equals decode then add",
          arguments: specs, [0, 1, 7, 1000])
    func inPlaceVariantsAgree(spec: CodecSpec, count: Int) throws {
        let v: [Double] = TestData.vector(count, seed: UInt64(count) + 5).map { $0 * 10 }
        let stream = CodecStream(tag: Tag(2), peer: 1)
        // Two codecs, so that top-k's error feedback starts from the same state in both.
        let reference = spec.makeCodec().encode(v, stream: stream)
        let codec = spec.makeCodec()
        var inPlace = [UInt8](repeating: 0xAB, count: codec.encodedSize(count: count))
        v.withUnsafeBufferPointer { src in
            inPlace.withUnsafeMutableBytes { codec.encode(src, into: $0, stream: stream) }
        }
        #expect(inPlace == reference)
        // Decode-and-add against a naive loop over the plain decode.
        let base: [Double] = TestData.vector(count, seed: 99).map { $0 - 0.5 }
        let decoded: [Double] = try codec.decode(reference, count: count)
        var sum = base
        try sum.withUnsafeMutableBufferPointer { try codec.decodeAdding(reference, into: $0) }
        for i in 0..<count { #expect(sum[i] == base[i] + decoded[i], "entry \(i)") }
        // Float vectors through float64/float32 wires too.
        let baseF = base.map(Float.init)
        var sumF = baseF
        try sumF.withUnsafeMutableBufferPointer { try codec.decodeAdding(reference, into: $0) }
        let decodedF: [Float] = try codec.decode(reference, count: count)
        for i in 0..<count { #expect(sumF[i] == baseF[i] + decodedF[i], "entry \(i)") }
    }

    @Test("bytes per entry: float32 halves float64, 16-bit quarters it")
    func sizes() {
        let n = 10_000
        #expect(CodecSpec.float64.makeCodec().encodedSize(count: n) == 8 * n)
        #expect(CodecSpec.float32.makeCodec().encodedSize(count: n) == 4 * n)
        #expect(CodecSpec.float16.makeCodec().encodedSize(count: n) == 2 * n)
        #expect(CodecSpec.bfloat16.makeCodec().encodedSize(count: n) == 2 * n)
        #expect(CodecSpec.int8(chunk: 256).makeCodec().encodedSize(count: n) == n + 4 * 40)
    }

    @Test("top-k error feedback: what is not sent is sent later, nothing is lost")
    func errorFeedback() throws {
        let codec = CodecSpec.topK(fraction: 0.25).makeCodec()
        let v: [Double] = [4, 3, 2, 1]
        var received = [Double](repeating: 0, count: 4)
        let stream = CodecStream(tag: Tag(9), peer: 1)
        // Send the same vector four times: the sum received approaches 4·v, and after sending
        // zeros long enough, every entry has been delivered in full.
        for _ in 0..<4 {
            let back: [Double] = try codec.decode(codec.encode(v, stream: stream), count: 4)
            for i in 0..<4 { received[i] += back[i] }
        }
        for _ in 0..<16 {
            let back: [Double] = try codec.decode(codec.encode([0.0, 0, 0, 0], stream: stream), count: 4)
            for i in 0..<4 { received[i] += back[i] }
        }
        #expect(relativeError(received, v.map { $0 * 4 }) < 1e-6)
    }

    @Test("float16 saturates instead of overflowing; bfloat16 keeps Float's range")
    func ranges() throws {
        let big: [Double] = [1e6, -1e6, 1e30]
        let h: [Double] = try CodecSpec.float16.makeCodec().decode(CodecSpec.float16.makeCodec().encode(big, stream: CodecStream(tag: Tag(0), peer: 0)), count: 3)
        #expect(h == [65504, -65504, 65504])
        let b: [Double] = try CodecSpec.bfloat16.makeCodec().decode(CodecSpec.bfloat16.makeCodec().encode(big, stream: CodecStream(tag: Tag(0), peer: 0)), count: 3)
        #expect(abs(b[2] / 1e30 - 1) < 0.01)
    }

    @Test("a payload of the wrong size is refused, not misread", arguments: specs)
    func wrongSize(spec: CodecSpec) {
        let codec = spec.makeCodec()
        let bytes = codec.encode([1.0, 2, 3], stream: CodecStream(tag: Tag(0), peer: 0))
        #expect(throws: CommunicationError.self) { let _: [Double] = try codec.decode(bytes, count: 1000) }
    }

    @Test("parsing codec names", arguments: ["float64", "float32", "float16", "bfloat16", "int8", "int8:64", "topk:0.01"])
    func parsing(name: String) throws {
        #expect(try CodecSpec(parsing: name).description == name)
    }

    @Test("bad codec names are refused with the list of known ones")
    func badNames() {
        for bad in ["float8", "topk", "topk:2", "int8:0"] {
            #expect(throws: JobError.self) { try CodecSpec(parsing: bad) }
        }
        do { _ = try CodecSpec(parsing: "float8") } catch { #expect("\(error)".contains("float32")) }
    }
}
