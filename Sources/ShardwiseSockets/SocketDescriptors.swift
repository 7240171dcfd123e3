import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Finds the descriptor of one of this process's TCP sockets by its two ends.
///
/// NIO does not expose a channel's descriptor; the receive spin (`SocketCommunicator`) needs it
/// only to ask the kernel whether bytes are waiting (`poll` with a zero timeout) — it never reads
/// or writes it, so NIO stays the only owner of the stream. A socket is identified by its local
/// and remote addresses, which are unique among one process's connected sockets.
enum SocketDescriptors {
    static func find(local: SocketAddress, remote: SocketAddress) -> Int32? {
        for fd in candidates() {
            guard address(of: fd, getsockname) == local, address(of: fd, getpeername) == remote else { continue }
            return fd
        }
        return nil
    }

    /// Open descriptors (from /proc/self/fd on Linux; otherwise the first 4096 numbers).
    private static func candidates() -> [Int32] {
        if let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            return names.compactMap { Int32($0) }.sorted()
        }
        return Array(0..<4096)
    }

    private static func address(of fd: Int32, _ get: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { get(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: storage) { SocketAddress($0.load(as: sockaddr_in.self)) }
        case AF_INET6:
            return withUnsafeBytes(of: storage) { SocketAddress($0.load(as: sockaddr_in6.self)) }
        default:
            return nil
        }
    }
}
