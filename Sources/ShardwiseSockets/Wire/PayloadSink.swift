/// A posted in-place receive: where the payload of the next data frame with `tag` goes instead of
/// a fresh array — a vector's own memory, written over or added to (see
/// `Communicator.sendReceiveInPlace`).
///
/// The frame decoder feeds it the payload as it arrives, in stream order, from NIO's buffers or
/// straight from `recv` (the progress engine). Replacing, `recv` writes into the destination
/// itself: the kernel's copy is the only one. Adding, the bytes land in a small staging buffer
/// that stays in cache, are checksummed there and added to the destination a whole entry at a
/// time; the bytes of an entry split across two reads wait in the staging buffer.
///
/// The checksum covers the whole frame and is checked when its last byte is in; entries are
/// applied before that, so a frame that fails it leaves the destination partly written, and the
/// receive throws. Confined to the event loop; used only while the receive that posted it runs.
final class PayloadSink {
    enum State: Equatable {
        /// Posted; no frame with the tag has arrived yet.
        case waiting
        /// Its frame is arriving.
        case filling
        /// Its frame arrived whole and passed the checksum.
        case complete
        /// The next frame with the tag is not the vector expected (another length): it goes to the
        /// mailbox, where the receive finds it and says what is wrong.
        case declined
        /// The frame failed its checksum, or the connection closed inside it.
        case failed(String)
    }

    let tag: UInt32
    let destination: UnsafeMutableRawBufferPointer
    /// Bytes of the frame on the wire (header, payload, trailer), once it has begun.
    var frameBytes = 0
    /// Adds `count` entries at the first pointer (aligned) to those at the second; nil = replace.
    private let add: ((UnsafeRawPointer, UnsafeMutableRawPointer, Int) -> Void)?
    /// Bytes per entry.
    let stride: Int
    /// Staging buffer for adding (aligned; its size a multiple of `stride`).
    private let staging: UnsafeMutableRawBufferPointer
    var state = State.waiting
    /// Payload bytes applied to the destination so far: a whole number of entries.
    private(set) var consumed = 0
    /// Adding: the bytes of a partial entry, at the start of `staging`.
    private var carry = 0

    init(tag: UInt32, destination: UnsafeMutableRawBufferPointer, stride: Int,
         add: ((UnsafeRawPointer, UnsafeMutableRawPointer, Int) -> Void)?, staging: UnsafeMutableRawBufferPointer) {
        precondition(stride > 0 && destination.count % stride == 0 && staging.count >= stride)
        self.tag = tag
        self.destination = destination
        self.stride = stride
        self.add = add
        self.staging = UnsafeMutableRawBufferPointer(rebasing: staging[0..<(staging.count / stride * stride)])
    }

    /// Payload bytes `offset ..< offset + bytes.count`, from a buffer: copied (and checksummed
    /// in the same pass) into place.
    func take(_ bytes: UnsafeRawBufferPointer, at offset: Int, checksum: inout FrameChecksum.State) {
        absorb(bytes, at: offset) { src, dst in checksum.copy(from: src, to: dst) }
    }

    /// The first `bytes.count` payload bytes, already checksummed (a frame that began in an
    /// array before the sink was posted).
    func move(_ bytes: UnsafeRawBufferPointer) {
        absorb(bytes, at: 0) { src, dst in dst.copyMemory(from: src) }
    }

    private func absorb(_ bytes: UnsafeRawBufferPointer, at offset: Int,
                        copy: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Void) {
        guard bytes.count > 0 else { return }
        guard let add else {
            copy(bytes, UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + bytes.count)]))
            consumed = (offset + bytes.count) / stride * stride
            return
        }
        var done = 0
        while done < bytes.count {
            let k = min(staging.count - carry, bytes.count - done)
            copy(UnsafeRawBufferPointer(rebasing: bytes[done..<(done + k)]),
                 UnsafeMutableRawBufferPointer(rebasing: staging[carry..<(carry + k)]))
            done += k
            apply(carry + k, add)
        }
    }

    /// Adds the whole entries among the first `count` staged bytes; keeps the rest staged.
    private func apply(_ count: Int, _ add: (UnsafeRawPointer, UnsafeMutableRawPointer, Int) -> Void) {
        let whole = count / stride * stride
        carry = count - whole
        guard whole > 0 else { return }   // part of one entry: it stays where it is
        add(UnsafeRawPointer(staging.baseAddress!), destination.baseAddress! + consumed, whole / stride)
        consumed += whole
        if carry > 0 { staging.baseAddress!.copyMemory(from: staging.baseAddress! + whole, byteCount: carry) }
    }

    /// Lets `read` (a `recv`) write payload bytes `offset ..< length` (or their first part) into
    /// place, then checksums them there. Returns what `read` returned.
    func fill(at offset: Int, upTo length: Int, checksum: inout FrameChecksum.State,
              _ read: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        guard let add else {
            let n = read(UnsafeMutableRawBufferPointer(rebasing: destination[offset..<length]))
            if n > 0 {
                checksum.add(UnsafeRawBufferPointer(rebasing: destination[offset..<(offset + n)]))
                consumed = (offset + n) / stride * stride
            }
            return n
        }
        let room = min(staging.count - carry, length - offset)
        let n = read(UnsafeMutableRawBufferPointer(rebasing: staging[carry..<(carry + room)]))
        if n > 0 {
            checksum.add(UnsafeRawBufferPointer(rebasing: staging[carry..<(carry + n)]))
            apply(carry + n, add)
        }
        return n
    }

    /// Copies the payload bytes that arrived but were not applied (`consumed ..< received`: part
    /// of an entry, or in place but past the last whole entry) to `out`, for the rest of the frame.
    func copyUnconsumed(upTo received: Int, into out: UnsafeMutableRawBufferPointer) {
        let k = received - consumed
        guard k > 0 else { return }
        if add == nil {
            out.baseAddress!.copyMemory(from: destination.baseAddress! + consumed, byteCount: k)
        } else {
            precondition(k == carry)
            out.baseAddress!.copyMemory(from: staging.baseAddress!, byteCount: k)
        }
    }
}
