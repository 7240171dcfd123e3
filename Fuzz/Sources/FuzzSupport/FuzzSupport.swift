#if canImport(Glibc)
import Glibc
#endif
import CLibFuzzer
import ShardwiseSockets

/// Runs libFuzzer on `callback` with this process's arguments (`-runs=…`, corpus directories…) and
/// exits with its status. Every harness's `main`: SwiftPM gives each executable a main of its own,
/// so libFuzzer's is not the one that runs.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}

/// What every harness needs of libFuzzer's input: option bytes taken off the front, and a way to
/// cut the rest into the reads a socket or a file would deliver, so that chunk boundaries fall
/// everywhere.
public struct FuzzInput {
    public private(set) var bytes: [UInt8]

    public init(_ data: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    }

    /// Takes the first byte as an option (0 when the input is empty).
    public mutating func option() -> UInt8 {
        bytes.isEmpty ? 0 : bytes.removeFirst()
    }

    /// The rest, cut into reads: sizes cycle through 1 + (seed · 37 + i · 11) mod 97, or the whole
    /// input at once for seed 0.
    public func reads(seed: UInt8) -> [ArraySlice<UInt8>] { Self.reads(of: bytes, seed: seed) }

    /// `bytes` cut into reads as `reads(seed:)` does.
    public static func reads(of bytes: [UInt8], seed: UInt8) -> [ArraySlice<UInt8>] {
        guard seed != 0 else { return [bytes[...]] }
        var out: [ArraySlice<UInt8>] = []
        var at = 0, i = 0
        while at < bytes.count {
            let n = 1 + (Int(seed) * 37 + i * 11) % 97
            out.append(bytes[at..<min(at + n, bytes.count)])
            at += n
            i += 1
        }
        return out
    }
}

/// Makes the header CRC (and, with `payloads`, the payload checksum) of every frame in a stream
/// right, so the fuzzer explores what lies behind the checks instead of failing them: it cannot
/// forge a CRC-32 by mutation. Frames are found by their length fields, as the decoder finds them.
public func repairFrames(_ bytes: inout [UInt8], payloads: Bool) {
    var at = 0
    while at + FrameHeader.size <= bytes.count {
        func u32(_ o: Int) -> UInt32 {
            UInt32(bytes[o]) << 24 | UInt32(bytes[o + 1]) << 16 | UInt32(bytes[o + 2]) << 8 | UInt32(bytes[o + 3])
        }
        func store(_ v: UInt32, _ o: Int) {
            guard o + 4 <= bytes.count else { return }
            for k in 0..<4 { bytes[o + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
        }
        let length = Int(u32(at + 12))
        let trailing = bytes[at + 7] & 1 != 0
        let start = at + FrameHeader.size
        let end = min(start + length, bytes.count)
        if payloads {
            let sum = bytes[start..<end].withUnsafeBytes { FrameChecksum.compute($0) }
            if trailing { store(0, at + 16); store(sum, end) } else { store(sum, at + 16) }
        }
        store(bytes[at..<(at + 20)].withUnsafeBytes { CRC32.checksum($0) }, at + 20)
        guard length <= bytes.count else { return }
        at = start + length + (trailing ? FrameHeader.trailerSize : 0)
    }
}

/// Caps what the readers may allocate (`MemoryBudget` reads it), below libFuzzer's own malloc
/// limit: a small input that asks for more than this must be refused by the budget, cleanly.
public func capMemory(_ limit: String = "1GiB") {
    setenv("SHARDWISE_MEMORY_LIMIT", limit, 1)
}
