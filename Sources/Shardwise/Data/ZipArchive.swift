import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes read at any offset: a file (`pread`) or memory.
protocol RandomAccessBytes: AnyObject {
    var size: Int { get }
    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end.
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A regular file read with `pread`; closed when released.
final class RandomAccessFile: RandomAccessBytes {
    let path: String
    private let fd: Int32
    let size: Int

    init(path: String) throws {
        // O_NONBLOCK: a FIFO would otherwise block `open` (the fstat below then refuses it).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DataError.unreadable(file: path, reason: reason)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw DataError.unreadable(file: path, reason: "it is not a regular file; a .npz archive must be one")
        }
        self.path = path
        self.fd = fd
        size = Int(info.st_size)
    }

    deinit { close(fd) }

    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let got = pread(fd, buffer.baseAddress! + filled, buffer.count - filled, off_t(offset + filled))
            if got < 0 {
                if errno == EINTR { continue }
                throw DataError.unreadable(file: path, reason: String(cString: strerror(errno)))
            }
            if got == 0 { break }
            filled += got
        }
        return filled
    }
}

/// Bytes in memory, read like a file.
final class MemoryRandomAccess: RandomAccessBytes {
    private let bytes: [UInt8]
    var size: Int { bytes.count }
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = max(0, min(buffer.count, bytes.count - offset))
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
        return count
    }
}

/// The members of a zip archive, as NumPy's `savez` / `savez_compressed` (and so scipy's
/// `save_npz`) write them: stored or deflate, with Zip64 records when a size passes 4 GiB
/// (NumPy asks for them on every member).
///
/// The central directory at the end is the authority on names, sizes and CRCs; a local header is
/// read only to find where its data starts. Every size and offset is checked against the file
/// before it is used, a member's uncompressed size against `MemoryBudget` before it is allocated,
/// and the inflated bytes must be exactly that size with the CRC-32 the directory records.
///
/// Layout (all little-endian):
///
/// | record | signature | fields used |
/// | --- | --- | --- |
/// | end of central directory (22 B + comment) | `PK\5\6` | entries @10 (u16), directory size @12 (u32), offset @16 (u32), comment length @20 |
/// | Zip64 end locator (20 B, just before it) | `PK\6\7` | Zip64 end record offset @8 (u64) |
/// | Zip64 end of central directory | `PK\6\6` | entries @32 (u64), directory size @40 (u64), offset @48 (u64) |
/// | central directory entry (46 B + name + extra + comment) | `PK\1\2` | flags @8, method @10, CRC @16, sizes @20/@24, name/extra/comment lengths @28/@30/@32, local offset @42 |
/// | local header (30 B + name + extra) | `PK\3\4` | name and extra lengths @26/@28 |
///
/// A 32-bit field of all ones defers to the Zip64 extra field (id 1) of its entry: uncompressed
/// size, compressed size, local offset, in that order, each only when deferred.
struct ZipArchive {
    struct Member {
        var name: String
        var method: UInt16
        var flags: UInt16
        var crc: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        var localHeaderOffset: Int
    }

    let file: String
    let source: any RandomAccessBytes
    let members: [Member]

    init(source: any RandomAccessBytes, file: String) throws {
        self.file = file
        self.source = source
        func fail(_ offset: Int, _ message: String) -> DataError { .malformed(file: file, location: "byte \(offset)", message: message) }
        let size = source.size
        guard size >= 22 else { throw fail(0, "\(size) bytes is too short for a zip archive (a .npz file is one)") }

        // The end record: the last `PK\5\6` whose comment length reaches exactly the end of the file.
        let tailLength = min(size, 22 + 0xFFFF)
        let tail = try Self.read(source, at: size - tailLength, count: tailLength, file: file)
        var end = -1
        var k = tailLength - 22
        while k >= 0 {
            if tail.u32(k) == 0x0605_4B50 && k + 22 + Int(tail.u16(k + 20)) == tailLength { end = k; break }
            k -= 1
        }
        guard end >= 0 else { throw fail(size, "no end-of-central-directory record: not a zip archive (a .npz file is one), or truncated") }
        let endOffset = size - tailLength + end
        var entries = Int(tail.u16(end + 10))
        var directorySize = Int(tail.u32(end + 12))
        var directoryOffset = Int(tail.u32(end + 16))
        var directoryLimit = endOffset
        if endOffset >= 20, end >= 20, tail.u32(end - 20) == 0x0706_4B50 {
            let zip64Offset = tail.u64(end - 20 + 8)
            guard zip64Offset >= 0, zip64Offset <= endOffset - 20 - 56 else {
                throw fail(endOffset - 20, "the Zip64 locator points to byte \(zip64Offset), outside the archive")
            }
            let record = try Self.read(source, at: zip64Offset, count: 56, file: file)
            guard record.u32(0) == 0x0606_4B50 else { throw fail(zip64Offset, "no Zip64 end record where the locator points") }
            entries = record.u64(32)
            directorySize = record.u64(40)
            directoryOffset = record.u64(48)
            directoryLimit = zip64Offset
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= directoryLimit,
              directorySize <= directoryLimit - directoryOffset else {
            throw fail(endOffset, "the central directory (\(directorySize) bytes at byte \(directoryOffset)) lies outside the archive")
        }
        guard entries >= 0, entries <= directorySize / 46 else {
            throw fail(endOffset, "\(entries) entries cannot fit in a central directory of \(directorySize) bytes")
        }
        let directory = try Self.read(source, at: directoryOffset, count: directorySize, file: file)
        var members: [Member] = []
        var p = 0
        for _ in 0..<entries {
            let at = directoryOffset + p
            guard p + 46 <= directory.count, directory.u32(p) == 0x0201_4B50 else {
                throw fail(at, "expected a central directory entry (PK\\1\\2)")
            }
            let nameLength = Int(directory.u16(p + 28)), extraLength = Int(directory.u16(p + 30))
            let commentLength = Int(directory.u16(p + 32))
            guard p + 46 + nameLength + extraLength + commentLength <= directory.count else {
                throw fail(at, "a central directory entry runs past the directory's end")
            }
            let name = String(decoding: directory[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            var member = Member(name: name, method: directory.u16(p + 10), flags: directory.u16(p + 8), crc: directory.u32(p + 16),
                                compressedSize: Int(directory.u32(p + 20)), uncompressedSize: Int(directory.u32(p + 24)),
                                localHeaderOffset: Int(directory.u32(p + 42)))
            // Zip64 extra: the deferred fields, in order.
            let deferUncompressed = directory.u32(p + 24) == 0xFFFF_FFFF
            let deferCompressed = directory.u32(p + 20) == 0xFFFF_FFFF
            let deferOffset = directory.u32(p + 42) == 0xFFFF_FFFF
            if deferUncompressed || deferCompressed || deferOffset {
                var e = p + 46 + nameLength
                let extraEnd = e + extraLength
                var found = false
                while e + 4 <= extraEnd {
                    let id = directory.u16(e), length = Int(directory.u16(e + 2))
                    guard e + 4 + length <= extraEnd else { break }
                    if id == 1 {
                        var q = e + 4
                        func next() throws -> Int {
                            guard q + 8 <= e + 4 + length else { throw fail(at, "member '\(name)': its Zip64 extra field is too short") }
                            defer { q += 8 }
                            return directory.u64(q)
                        }
                        if deferUncompressed { member.uncompressedSize = try next() }
                        if deferCompressed { member.compressedSize = try next() }
                        if deferOffset { member.localHeaderOffset = try next() }
                        found = true
                        break
                    }
                    e += 4 + length
                }
                guard found else { throw fail(at, "member '\(name)': sizes defer to a Zip64 extra field that is missing") }
            }
            guard member.uncompressedSize >= 0, member.compressedSize >= 0, member.localHeaderOffset >= 0,
                  member.localHeaderOffset <= directoryOffset else {
                throw fail(at, "member '\(name)': its sizes or offset are out of range")
            }
            members.append(member)
            p += 46 + nameLength + extraLength + commentLength
        }
        self.members = members
    }

    func member(named name: String) -> Member? { members.first { $0.name == name } }

    /// A member's bytes, inflated when compressed; checked against the directory's size and CRC.
    func extract(_ member: Member) throws -> [UInt8] {
        let at = member.localHeaderOffset
        func fail(_ message: String) -> DataError { .malformed(file: file, location: member.name, message: message) }
        guard member.flags & 1 == 0 else { throw fail("the member is encrypted; expected a plain archive") }
        let header = try Self.read(source, at: at, count: 30, file: file)
        guard header.u32(0) == 0x0403_4B50 else { throw fail("no local header (PK\\3\\4) at byte \(at), where the directory points") }
        let dataStart = at + 30 + Int(header.u16(26)) + Int(header.u16(28))
        guard dataStart <= source.size, member.compressedSize <= source.size - dataStart else {
            throw fail("its \(member.compressedSize) bytes of data from byte \(dataStart) run past the end of the archive (\(source.size) bytes)")
        }
        try MemoryBudget.check(bytes: member.uncompressedSize, what: "\(file): member \(member.name) (\(member.uncompressedSize) bytes)")
        let bytes: [UInt8]
        switch member.method {
        case 0:
            guard member.compressedSize == member.uncompressedSize else {
                throw fail("a stored member of \(member.compressedSize) bytes cannot hold \(member.uncompressedSize)")
            }
            bytes = try Self.read(source, at: dataStart, count: member.compressedSize, file: file)
        case 8:
            bytes = try inflate(member, from: dataStart)
        default:
            throw fail("compression method \(member.method) is not supported; expected stored (0) or deflate (8), as numpy writes")
        }
        var crc: uLong = crc32(0, nil, 0)
        bytes.withUnsafeBufferPointer { b in
            var done = 0
            while done < b.count {
                let n = min(b.count - done, 1 << 30)
                crc = crc32(crc, b.baseAddress! + done, uInt(n))
                done += n
            }
        }
        guard UInt32(truncatingIfNeeded: crc) == member.crc else {
            throw fail("CRC-32 mismatch (the data is corrupt): computed \(hex(UInt32(truncatingIfNeeded: crc))), the directory says \(hex(member.crc))")
        }
        return bytes
    }

    /// Raw deflate, read from the archive a chunk at a time into exactly `uncompressedSize` bytes.
    private func inflate(_ member: Member, from dataStart: Int) throws -> [UInt8] {
        func fail(_ message: String) -> DataError { .malformed(file: file, location: member.name, message: message) }
        var stream = z_stream()
        guard shardwise_inflate_init_raw(&stream) == Z_OK else { throw fail("zlib could not start inflating") }
        defer { inflateEnd(&stream) }
        let chunk = 1 << 20
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { input.deallocate() }
        let capacity = member.uncompressedSize + 1   // one byte more, to notice a member that inflates past its size
        return try [UInt8](unsafeUninitializedCapacity: capacity) { out, initialized in
            initialized = 0
            var consumed = 0
            var produced = 0
            while true {
                if stream.avail_in == 0 && consumed < member.compressedSize {
                    let want = min(chunk, member.compressedSize - consumed)
                    let got = try source.read(at: dataStart + consumed, into: UnsafeMutableRawBufferPointer(rebasing: input[0..<want]))
                    guard got == want else { throw fail("the archive ends inside the member's data") }
                    consumed += got
                    stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = uInt(got)
                }
                let room = min(capacity - produced, Int(UInt32.max))
                stream.next_out = out.baseAddress! + produced
                stream.avail_out = uInt(room)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                produced += room - Int(stream.avail_out)
                if status == Z_STREAM_END { break }
                if status == Z_BUF_ERROR && stream.avail_in == 0 && consumed == member.compressedSize {
                    throw fail("the deflate data ends early: \(produced) of \(member.uncompressedSize) bytes")
                }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw fail("the deflate data is corrupt (zlib: \(reason))")
                }
                if produced == capacity { break }
            }
            guard produced == member.uncompressedSize else {
                throw fail(produced > member.uncompressedSize
                           ? "inflates to more than the \(member.uncompressedSize) bytes the directory records"
                           : "inflates to \(produced) bytes; the directory records \(member.uncompressedSize)")
            }
            initialized = produced
        }
    }

    private func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }

    static func read(_ source: any RandomAccessBytes, at offset: Int, count: Int, file: String) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let got = try source.read(at: offset, into: UnsafeMutableRawBufferPointer(buffer))
            guard got == count else {
                throw DataError.malformed(file: file, location: "byte \(offset + got)",
                                          message: "the archive ends early: expected \(count) bytes from byte \(offset)")
            }
            initialized = count
        }
    }
}

fileprivate extension Array where Element == UInt8 {
    /// Little-endian fields at byte `k` (bounds checked by the caller's record lengths).
    func u16(_ k: Int) -> UInt16 { UInt16(self[k]) | UInt16(self[k + 1]) << 8 }
    func u32(_ k: Int) -> UInt32 { UInt32(u16(k)) | UInt32(u16(k + 2)) << 16 }
    /// A u64 field as an Int; a value past Int.max becomes −1 (out of range for every check).
    func u64(_ k: Int) -> Int {
        let v = UInt64(u32(k)) | UInt64(u32(k + 4)) << 32
        return v > UInt64(Int.max) ? -1 : Int(v)
    }
}
