#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors about an output path (`--report`, `--json`, `--csv`, `--checkpoint`).
public enum OutputFileError: Error, CustomStringConvertible, Equatable {
    /// The path exists and is not a regular file: a directory, device, FIFO or socket. Writing a
    /// report "to" `/dev/full` must not turn the device into a JSON file.
    case notAFile(option: String?, path: String, kind: String)
    /// The directory the file would be created in does not exist or is not a directory.
    case noDirectory(option: String?, path: String, directory: String)
    /// The file, or the directory it is created in, may not be written.
    case notWritable(option: String?, path: String, reason: String)
    /// Writing failed part way (disk full, I/O error); the file is as it was before.
    case writeFailed(option: String?, path: String, reason: String)
    /// Writing in place (a hard-linked file) failed part way: the file may now be incomplete.
    case partiallyWritten(option: String?, path: String, reason: String)

    public var description: String {
        func name(_ option: String?, _ path: String) -> String { option.map { "\($0) \(path)" } ?? path }
        switch self {
        case .notAFile(let option, let path, let kind):
            return "\(name(option, path)): is \(kind), not a regular file; give the path of a file to write"
        case .noDirectory(let option, let path, let directory):
            return "\(name(option, path)): the directory \(directory) does not exist; create it first"
        case .notWritable(let option, let path, let reason):
            return "\(name(option, path)): cannot write: \(reason)"
        case .writeFailed(let option, let path, let reason):
            return "\(name(option, path)): writing failed, the file is unchanged: \(reason)"
        case .partiallyWritten(let option, let path, let reason):
            return "\(name(option, path)): writing in place (the file has other hard links) failed part way, so the file may be incomplete: \(reason)"
        }
    }
}

/// The one way Shardwise writes an output file: checked at start, replaced whole at the end.
///
/// Every output option is checked before any work (`check(path:option:)`), so a run that cannot
/// write its report fails in a second instead of after an hour of training. The write
/// (`writeAtomically(_:to:option:)`) never leaves half a file:
///
/// - A symbolic link is followed, and the file it names is replaced (the link stays a link); the
///   temporary file is made in the real file's directory, so the final `rename` is atomic.
/// - A file with several hard links is written in place (a rename would split the link and leave
///   the other names stale), and so is a writable file in a directory that is not. That write is
///   not atomic, which is the price of keeping the link; the bytes are all in hand before the file
///   is touched.
/// - Directories, devices, FIFOs and sockets are refused by name.
/// - The temporary file has no name while it is written (`O_TMPFILE`, where the kernel and the
///   file system have it), so a run killed mid-write leaves nothing behind; it gets a name only
///   for the instant between `linkat` and `rename`. Elsewhere it is a named file
///   `.NAME.shardwise-tmp.PID.N`, and a later write to the same target removes any such file whose
///   process is gone.
///
/// ```swift
/// try OutputFile.check(path: report, option: "--report")       // at start
/// …
/// try OutputFile.writeAtomically(json, to: report, option: "--report")
/// ```
public enum OutputFile {
    /// What a path comes to once symbolic links are followed.
    struct Target {
        /// The real file (no symbolic link in its last component).
        var path: String
        var directory: String
        var name: String
        /// The file's status when it exists.
        var existing: stat?
    }

    /// Refuses, before any work, an output path that cannot be written: a directory, device, FIFO
    /// or socket; a file in a directory that does not exist; a file or directory without write
    /// permission. `nil` (the option not given) passes.
    public static func check(path: String?, option: String) throws {
        guard let path else { return }
        let target = try resolve(path, option: option)
        if target.existing != nil && access(target.path, W_OK) != 0 {
            throw OutputFileError.notWritable(option: option, path: path, reason: errnoText())
        }
        if target.existing == nil && access(target.directory, W_OK | X_OK) != 0 {
            throw OutputFileError.notWritable(
                option: option, path: path, reason: "the directory \(target.directory): \(errnoText())")
        }
    }

    /// Replaces the file at `path` with `bytes`, whole or not at all (see the type's discussion).
    public static func writeAtomically(_ bytes: [UInt8], to path: String, option: String? = nil) throws {
        let target = try resolve(path, option: option)
        func failed(_ reason: String) -> OutputFileError { .writeFailed(option: option, path: path, reason: reason) }

        // In place: a hard-linked file, or one whose directory admits no temporary file.
        if let info = target.existing, info.st_nlink > 1 || access(target.directory, W_OK | X_OK) != 0 {
            try writeInPlace(bytes, to: target.path, failed: failed) { .partiallyWritten(option: option, path: path, reason: $0) }
            return
        }
        removeStaleTemporaries(of: target)
        let mode = target.existing.map { mode_t($0.st_mode) & 0o7777 }
        if try writeUnnamed(bytes, into: target, mode: mode, failed: failed) { return }
        try writeNamed(bytes, into: target, mode: mode, failed: failed)
    }

    /// `writeAtomically` for text.
    public static func writeAtomically(_ text: String, to path: String, option: String? = nil) throws {
        try writeAtomically(Array(text.utf8), to: path, option: option)
    }

    // MARK: - Implementation

    /// The prefix of a named temporary file of `target` (the part before the writer's pid).
    static func temporaryPrefix(of name: String) -> String { ".\(name).shardwise-tmp." }

    /// Follows symbolic links (at most 40, as the kernel does) to the file that will be written.
    static func resolve(_ path: String, option: String?) throws -> Target {
        guard !path.isEmpty else { throw OutputFileError.notWritable(option: option, path: path, reason: "the path is empty") }
        var current = path
        for _ in 0..<40 {
            let (directory, name) = split(current)
            guard !name.isEmpty, name != ".", name != ".." else {
                throw OutputFileError.notAFile(option: option, path: path, kind: "a directory")
            }
            var info = stat()
            if lstat(current, &info) == 0 {
                switch info.st_mode & S_IFMT {
                case S_IFLNK:
                    guard let link = readLink(current) else {
                        throw OutputFileError.notWritable(option: option, path: path, reason: errnoText())
                    }
                    current = link.hasPrefix("/") ? link : (directory == "/" ? "/" : directory + "/") + link
                    continue
                case S_IFREG:
                    return Target(path: current, directory: directory, name: name, existing: info)
                default:
                    throw OutputFileError.notAFile(option: option, path: path, kind: kind(of: info.st_mode))
                }
            }
            switch errno {
            case ENOENT:
                var dir = stat()
                guard stat(directory, &dir) == 0, (dir.st_mode & S_IFMT) == S_IFDIR else {
                    throw OutputFileError.noDirectory(option: option, path: path, directory: directory)
                }
                return Target(path: current, directory: directory, name: name, existing: nil)
            case ENOTDIR:
                throw OutputFileError.noDirectory(option: option, path: path, directory: directory)
            default:
                throw OutputFileError.notWritable(option: option, path: path, reason: errnoText())
            }
        }
        throw OutputFileError.notWritable(option: option, path: path, reason: "too many levels of symbolic links")
    }

    /// "dir/name" → ("dir", "name"); "name" → (".", "name"); "/name" → ("/", "name").
    static func split(_ path: String) -> (directory: String, name: String) {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return (".", String(p)) }
        let directory = p[..<slash]
        return (directory.isEmpty ? "/" : String(directory), String(p[p.index(after: slash)...]))
    }

    static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// Writes every byte to `fd`, then flushes it to the disk.
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) -> String? {
        var failure: String?
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errnoText()
                    return
                }
                done += n
            }
        }
        if failure == nil && fsync(fd) != 0 && errno != EINVAL { failure = errnoText() }
        return failure
    }

    /// A hard-linked file: overwrite its bytes, then cut it to length.
    private static func writeInPlace(_ bytes: [UInt8], to path: String, failed: (String) -> OutputFileError,
                                     partly: (String) -> OutputFileError) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw failed(errnoText()) }   // nothing touched yet
        defer { close(fd) }
        if let failure = writeAll(bytes, to: fd) { throw partly(failure) }
        guard ftruncate(fd, off_t(bytes.count)) == 0 else { throw partly(errnoText()) }
    }

    #if os(Linux)
    /// `AT_EMPTY_PATH` (linux/fcntl.h).
    private static let emptyPathFlag: Int32 = 0x1000

    /// `O_TMPFILE` (Glibc does not export it to Swift): `__O_TMPFILE | O_DIRECTORY`.
    private static var tmpfileFlag: Int32 {
        #if arch(x86_64) || arch(i386)
        return 0o20000000 | 0o200000
        #else
        return 0o20000000 | O_DIRECTORY
        #endif
    }
    #endif

    /// Writes an unnamed file in the target's directory and gives it a name only to rename it over
    /// the target. Returns false where `O_TMPFILE` or `/proc` is not available (nothing is left).
    private static func writeUnnamed(
        _ bytes: [UInt8], into target: Target, mode: mode_t?, failed: (String) -> OutputFileError
    ) throws -> Bool {
        #if os(Linux)
        let fd = open(target.directory, tmpfileFlag | O_WRONLY | O_CLOEXEC, mode ?? 0o666)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if let failure = writeAll(bytes, to: fd) { throw failed(failure) }
        if let mode { fchmod(fd, mode) }
        let temporary = temporaryName(in: target)
        // Name the file we hold by its descriptor (AT_EMPTY_PATH; needs CAP_DAC_READ_SEARCH, which
        // root has). Where that is refused, the caller falls back to a named temporary file.
        guard linkat(fd, "", AT_FDCWD, temporary, Self.emptyPathFlag) == 0 else { return false }
        guard rename(temporary, target.path) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw failed(reason)
        }
        return true
        #else
        return false
        #endif
    }

    /// Writes `.NAME.shardwise-tmp.PID.N` beside the target and renames it over the target.
    private static func writeNamed(
        _ bytes: [UInt8], into target: Target, mode: mode_t?, failed: (String) -> OutputFileError
    ) throws {
        let temporary = temporaryName(in: target)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ?? 0o666)
        guard fd >= 0 else { throw failed("cannot create a temporary file in \(target.directory): \(errnoText())") }
        if let failure = writeAll(bytes, to: fd) {
            close(fd)
            unlink(temporary)
            throw failed(failure)
        }
        if let mode { fchmod(fd, mode) }
        close(fd)
        guard rename(temporary, target.path) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw failed(reason)
        }
    }

    private static func temporaryName(in target: Target) -> String {
        target.directory + "/" + temporaryPrefix(of: target.name) + "\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Removes `.NAME.shardwise-tmp.PID.*` files beside the target whose process no longer runs
    /// (a run killed between `linkat` and `rename`, or while writing a named temporary file).
    static func removeStaleTemporaries(of target: Target) {
        guard let dir = opendir(target.directory) else { return }
        defer { closedir(dir) }
        let prefix = temporaryPrefix(of: target.name)
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            guard let pidText = rest.split(separator: ".").first, let pid = pid_t(pidText) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH { stale.append(name) }
        }
        for name in stale { unlink(target.directory + "/" + name) }
    }
}
