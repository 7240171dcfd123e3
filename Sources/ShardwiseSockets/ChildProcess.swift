import Subprocess
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process whose output is read line by line and whose end is awaited — without
/// libdispatch.
///
/// Why not Foundation `Process`: on Linux, FileHandle's readability callback is a dispatch read
/// source, and corelibs-libdispatch's epoll hang-up handling uses freed memory when the child exits
/// and its pipe closes — `shardwise launch` crashed with SIGSEGV in `_dispatch_event_loop_drain` in
/// about 6 runs of 10 under `MALLOC_PERTURB_`. `Process`'s termination monitoring rides on the same
/// machinery. swift-subprocess watches a child with its own epoll loop and a pidfd, and reads its
/// pipes there; nothing here touches dispatch. The launcher (`LocalLauncher`), `launch --backend
/// mpi` and the tests all start their children through this one type.
///
/// ```swift
/// let child = try await ChildProcess.start("/bin/sh", arguments: ["-c", "echo hi; exit 3"]) { stream, line in
///     print(stream, line)                                      // standardOutput hi
/// }
/// let status = try await child.wait()                          // .exited(3)
/// ```
///
/// Output contract: both streams are drained concurrently, so a chatty child never blocks on a full
/// pipe. `onLine` is called from two tasks (one per stream), so it must be thread-safe; within one
/// stream lines come in order. A line has its `\n` removed; an unterminated last line is delivered
/// at end of stream; a line longer than `maxLineBytes` is delivered in pieces of that size, so a
/// child writing without newlines cannot grow our memory. Every line has been delivered when
/// `wait()` returns.
public final class ChildProcess: Sendable {
    /// Which of the child's output streams a line came from.
    public enum Stream: Sendable, Hashable { case standardOutput, standardError }

    /// How a child ended.
    public enum Status: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var succeeded: Bool { self == .exited(0) }

        /// "exit code 3", "killed by signal 9 (SIGKILL)".
        public var description: String {
            switch self {
            case .exited(let code): return "exit code \(code)"
            case .signaled(let signal): return "killed by signal \(signal)\(signal == SIGKILL ? " (SIGKILL)" : "")"
            }
        }
    }

    /// Lines longer than this are delivered in pieces.
    public static let maxLineBytes = 1 << 20

    public typealias LineHandler = @Sendable (_ stream: Stream, _ line: String) -> Void
    typealias Running = Execution<NoInput, SequenceOutput, SequenceOutput>

    /// The process id (valid, and ours, until `wait()` has returned).
    public let pid: Int32
    private let shared: Shared
    private let task: Task<Status, any Error>

    private final class Shared: Sendable {
        struct State {
            /// While the child can still be alive: signals go through its pidfd, never to a pid
            /// that might have been reused.
            var running: Running?
            var status: Status?
        }
        /// The start's outcome, handed from the run's task to `start`, whichever comes first.
        enum Start {
            case pending
            case waiting(CheckedContinuation<Int32, any Error>)
            case outcome(Result<Int32, any Error>)
            case delivered
        }
        let state = Mutex(State())
        let start = Mutex(Start.pending)

        func started(_ outcome: Result<Int32, any Error>) {
            start.withLock { s in
                switch s {
                case .pending: s = .outcome(outcome)
                case .waiting(let c): c.resume(with: outcome); s = .delivered
                case .outcome, .delivered: break
                }
            }
        }

        func awaitStart() async throws -> Int32 {
            try await withCheckedThrowingContinuation { c in
                start.withLock { s in
                    if case .outcome(let outcome) = s { c.resume(with: outcome); s = .delivered } else { s = .waiting(c) }
                }
            }
        }
    }

    private init(pid: Int32, shared: Shared, task: Task<Status, any Error>) {
        self.pid = pid
        self.shared = shared
        self.task = task
    }

    /// Starts `executable` (a path) with exactly `arguments` and `environment` (nothing inherited
    /// beyond it), standard input from /dev/null, and returns once it runs.
    /// - Throws: `ChildProcessError.cannotStart` when it cannot be started (no such file, not
    ///   executable, …).
    public static func start(_ executable: String, arguments: [String], environment: [String: String],
                             onLine: @escaping LineHandler) async throws -> ChildProcess {
        var variables: [Environment.Key: String] = [:]
        for (key, value) in environment {
            if let k = Environment.Key(rawValue: key) { variables[k] = value }
        }
        let configuration = Configuration(executable: .path(.init(executable)), arguments: Arguments(arguments),
                                          environment: .custom(variables))
        let shared = Shared()
        let task = Task<Status, any Error> {
            do {
                let result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .sequence) { execution in
                    shared.state.withLock { $0.running = execution }
                    shared.started(.success(execution.processIdentifier.value))
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { await drain(execution.standardOutput, .standardOutput, onLine) }
                        group.addTask { await drain(execution.standardError, .standardError, onLine) }
                    }
                    // A child may close its output and run on; until it has exited, `kill()` must
                    // still reach it through the pidfd, which lives as long as this body.
                    await waitUntilExited(execution.processIdentifier.value)
                    shared.state.withLock { $0.running = nil }
                }
                let status: Status
                switch result.terminationStatus {
                case .exited(let code): status = .exited(code)
                case .signaled(let signal): status = .signaled(signal)
                }
                shared.state.withLock { $0.status = status }
                return status
            } catch {
                // Before the body ran this is a failure to start; after, to watch (no-op here).
                // Either way the pidfd is closed now: no more signals through it.
                shared.state.withLock { $0.running = nil }
                shared.started(.failure(ChildProcessError.cannotStart(executable: executable, reason: "\(error)")))
                throw ChildProcessError.monitoringFailed(executable: executable, reason: "\(error)")
            }
        }
        let pid = try await shared.awaitStart()
        return ChildProcess(pid: pid, shared: shared, task: task)
    }

    /// The exit status once the child has ended and all its output was delivered, else nil.
    public var status: Status? { shared.state.withLock { $0.status } }

    /// Waits for the child to end and its output to be delivered.
    public func wait() async throws -> Status { try await task.value }

    /// Sends SIGKILL, if the child still runs (through its pidfd: never to a reused pid).
    public func kill() { signal(SIGKILL) }

    /// Sends `signal`, if the child still runs.
    public func signal(_ signal: Int32) {
        shared.state.withLock { s in
            _ = try? s.running?.send(signal: Signal(rawValue: signal))
        }
    }

    /// Reads one stream to its end, handing on complete lines.
    private static func drain(_ output: SubprocessOutputSequence, _ stream: Stream, _ onLine: LineHandler) async {
        var pending: [UInt8] = []
        func emit(_ bytes: ArraySlice<UInt8>) { onLine(stream, String(decoding: bytes, as: UTF8.self)) }
        do {
            for try await chunk in output {
                chunk.withUnsafeBytes { pending.append(contentsOf: $0) }
                var start = pending.startIndex
                while let newline = pending[start...].firstIndex(of: 0x0A) {
                    emit(pending[start..<newline])
                    start = newline + 1
                }
                while pending.endIndex - start >= maxLineBytes {
                    emit(pending[start..<start + maxLineBytes])
                    start += maxLineBytes
                }
                pending.removeSubrange(..<start)
            }
        } catch {
            // A read error ends the stream like EOF; the exit status still tells how the child ended.
        }
        if !pending.isEmpty { emit(pending[...]) }
    }

    /// Returns once `pid` (our child, not yet reaped) has exited; does not reap it.
    private static func waitUntilExited(_ pid: Int32) async {
        while true {
            var info = siginfo_t()
            let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG)
            // Linux zeroes `info` when the child has not exited yet (WNOHANG).
            if rc != 0 || info.si_signo == SIGCHLD { return }
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
    }
}

/// Why a child process could not be run.
public enum ChildProcessError: Error, CustomStringConvertible {
    /// It could not be started (no such file, not executable, no resources).
    case cannotStart(executable: String, reason: String)
    /// It started, but watching it failed (its exit status is unknown).
    case monitoringFailed(executable: String, reason: String)

    public var description: String {
        switch self {
        case .cannotStart(let executable, let reason): return "cannot start \(executable): \(reason)"
        case .monitoringFailed(let executable, let reason): return "lost track of \(executable): \(reason)"
        }
    }
}
