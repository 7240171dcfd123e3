import Foundation
import Shardwise
import Synchronization

/// The socket backend as a `Backend`: spawns `job.nodes` local processes of the `shardwise`
/// binary (`shardwise node …`) on loopback and returns the report rank 0 produced. This is what
/// `shardwise launch` and `shardwise train --backend sockets` run.
public struct SocketsBackend: Backend {
    public var name: String { "sockets" }
    public var hasSharedMemory: Bool { false }
    public var launcher: LocalLauncher

    public init(executable: String) { launcher = LocalLauncher(executable: executable) }

    public func run(_ job: Job, options: RunOptions) async throws -> TrainingReport {
        try check(job)
        var l = launcher
        l.initialModel = options.initialModel ?? l.initialModel
        return try await l.run(job, onProgress: options.onProgress)
    }

    /// Hogwild (and any strategy needing shared memory) is refused by name.
    static func refuseUnsupported(_ job: Job) throws {
        try SocketsBackend(executable: "").check(job)
    }
}

/// Spawns the node processes of one run on this machine and waits for them.
///
/// 1. Writes the job (and the resume model) to a private temporary directory and generates a
///    fresh shared secret, passed to the children in `SHARDWISE_SECRET` (never on the command line).
/// 2. Starts rank 0 on 127.0.0.1 port 0, reads the port it bound from a port file, then starts
///    ranks 1…m−1 pointing at it.
/// 3. Forwards the children's log lines to stderr (prefixed with the rank) and rank 0's progress to
///    `onProgress`; keeps the last lines of each for the error message. The children are
///    `ChildProcess`es: no libdispatch pipe sources, whose hang-up handling crashed the launcher.
/// 4. When one node fails the others are given the job's timeout to finish (they see the failure
///    through their connections), then killed. Nothing outlives the launcher's wait.
public struct LocalLauncher: Sendable {
    public var executable: String
    public var host = "127.0.0.1"
    public var logLevel = "warning"
    /// Forward the children's stderr lines to ours.
    public var forwardLogs = true
    public var checkpointPath: String?
    public var checkpointEvery: Int?
    public var initialModel: [Double]?
    /// Extra arguments for every node (e.g. a test's `--max-frame-bytes`).
    public var extraArguments: [String] = []
    /// Names the launcher's process to its children, which stop when it is gone.
    public static let launcherPIDVariable = "SHARDWISE_LAUNCHER_PID"
    /// Called with each child's pid once started (tests kill one).
    public var onStart: (@Sendable (_ rank: Int, _ pid: Int32) -> Void)?
    /// Called with the coordinator's port once rank 0 listens.
    public var onCoordinatorPort: (@Sendable (Int) -> Void)?

    public init(executable: String) { self.executable = executable }

    public func run(_ job: Job, onProgress: (@Sendable (TrainingProgress) -> Void)? = nil) async throws -> TrainingReport {
        let m = job.nodes
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shardwise-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: dir) }
        let jobPath = dir.appendingPathComponent("job.json").path
        let reportPath = dir.appendingPathComponent("report.json").path
        let portPath = dir.appendingPathComponent("port").path
        try JSONEncoder().encode(job).write(to: URL(fileURLWithPath: jobPath))
        var resumePath: String?
        if let model = initialModel {
            resumePath = dir.appendingPathComponent("resume.json").path
            try Checkpoint(jobID: SocketNode.jobID(job), iteration: 0, model: model, time: 0).write(to: resumePath!)
        }
        var environment = ProcessInfo.processInfo.environment
        environment[SharedSecret.environmentVariable] = SharedSecret.generate()
        environment[Self.launcherPIDVariable] = "\(getpid())"   // children stop if we die (`node` watches it)

        func arguments(rank: Int, port: Int) -> [String] {
            var a = ["node", "--rank", "\(rank)", "--size", "\(m)", "--coordinator", "\(host):\(port)", "--bind", host,
                     "--job", jobPath, "--log-level", logLevel]
            if m > 1 { a += ["--blas-threads", "1"] }
            // More nodes than cores: a spinning receive would take the CPU a computing node needs.
            if m > ProcessInfo.processInfo.activeProcessorCount { a += ["--spin-us", "0"] }
            if rank == 0 {
                a += ["--report", reportPath, "--port-file", portPath, "--progress-lines"]
                if let checkpointPath { a += ["--checkpoint", checkpointPath] }
                if let checkpointEvery { a += ["--checkpoint-every", "\(checkpointEvery)"] }
            }
            if let resumePath { a += ["--resume", resumePath] }
            return a + extraArguments
        }

        let children = Children(forward: forwardLogs, onProgress: onProgress)
        do {
            try await supervise(children, m: m, environment: environment, portPath: portPath, timeout: job.timeout, arguments: arguments)
        } catch {
            // Nothing outlives the launcher, whatever stopped it (a start failure, cancellation).
            children.killAll()
            await children.waitAll()
            throw error
        }
        // Rank 0's success is the run's (an asynchronous strategy may carry on without a node).
        guard children.succeeded(0), let data = FileManager.default.contents(atPath: reportPath) else {
            throw SocketError.runFailed(children.failureSummary() ?? "rank 0 finished but wrote no report")
        }
        var report = try JSONDecoder().decode(TrainingReport.self, from: data)
        report.notes += children.failureNotes()
        return report
    }

    /// Starts the nodes and returns once every one has exited and its output was read.
    private func supervise(_ children: Children, m: Int, environment: [String: String], portPath: String, timeout: Double,
                           arguments: (_ rank: Int, _ port: Int) -> [String]) async throws {
        try await children.start(rank: 0, executable: executable, arguments: arguments(0, 0), environment: environment, onStart: onStart)
        // Wait for rank 0's port (or its early death).
        let portWait = min(timeout, 60) + 30
        let portDeadline = MonotonicClock.now() + portWait
        var port: Int?
        while port == nil {
            if let text = try? String(contentsOfFile: portPath, encoding: .utf8), let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                port = p
            } else if let status = children.exitStatus(0) {
                throw SocketError.runFailed("rank 0 exited (\(status)) before listening:\n\(children.tail(0))")
            } else if MonotonicClock.now() > portDeadline {
                throw SocketError.runFailed("rank 0 did not start listening within \(Int(portWait)) s")
            } else {
                try await Task.sleep(nanoseconds: 5_000_000)
            }
        }
        onCoordinatorPort?(port!)
        for r in 1..<max(m, 1) {
            try await children.start(rank: r, executable: executable, arguments: arguments(r, port!), environment: environment, onStart: onStart)
        }
        // Wait for all. Nodes time out on their own, so none can hang; still, once rank 0 (which
        // ends the run for everyone) has exited, the others get the timeout plus slack, then SIGKILL.
        // A rank 0 that is stopped (SIGSTOP, a debugger) never exits on its own: once every other
        // node has ended, it gets the same grace, then is killed and named.
        var coordinatorExited: Double?
        var coordinatorStoppedAlone: Double?
        while !children.allExited {
            if coordinatorExited == nil, children.exitStatus(0) != nil { coordinatorExited = MonotonicClock.now() }
            if let t = coordinatorExited, MonotonicClock.now() - t > timeout + 5 {
                children.killAll()
            }
            if coordinatorExited == nil, children.othersExited(than: 0), children.isStopped(0) {
                let since = coordinatorStoppedAlone ?? MonotonicClock.now()
                coordinatorStoppedAlone = since
                if MonotonicClock.now() - since > timeout + 5 {
                    children.markStopped(0)
                    children.killAll()
                }
            } else {
                coordinatorStoppedAlone = nil
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}

/// The child processes of one launch, their output, their fate.
final class Children: Sendable {
    struct Child {
        var process: ChildProcess?
        /// The last lines it wrote (progress lines aside), for the error message.
        var tail: [String] = []
        /// How it ended; nil while it runs (or its output is still being read).
        var ended: ChildProcess.Status?
        /// Why its end is unknown, if watching it failed.
        var lost: String?
        var watcher: Task<Void, Never>?

        var isDone: Bool { ended != nil || lost != nil }
        var failed: Bool { lost != nil || ended?.succeeded == false }
        var status: String? { ended?.description ?? lost }
        var signal: Int32? { if case .signaled(let s) = ended { s } else { nil } }
    }
    private let state: Mutex<[Int: Child]> = Mutex([:])
    let forward: Bool
    let onProgress: (@Sendable (TrainingProgress) -> Void)?
    static let progressPrefix = "@progress "
    static let tailLines = 20

    init(forward: Bool, onProgress: (@Sendable (TrainingProgress) -> Void)?) {
        self.forward = forward
        self.onProgress = onProgress
    }

    func start(rank: Int, executable: String, arguments: [String], environment: [String: String],
               onStart: (@Sendable (Int, Int32) -> Void)?) async throws {
        state.withLock { $0[rank] = Child() }
        let process: ChildProcess
        do {
            process = try await ChildProcess.start(executable, arguments: arguments, environment: environment) { [weak self] _, line in
                self?.received(line, rank: rank)
            }
        } catch {
            throw SocketError.runFailed("cannot start rank \(rank): \(error)")
        }
        let watcher = Task { [weak self] in
            let outcome: Result<ChildProcess.Status, any Error>
            do { outcome = .success(try await process.wait()) } catch { outcome = .failure(error) }
            self?.state.withLock { s in
                switch outcome {
                case .success(let status): s[rank]?.ended = status
                case .failure(let error): s[rank]?.lost = "\(error)"
                }
            }
        }
        state.withLock { s in
            s[rank]?.process = process
            s[rank]?.watcher = watcher
        }
        onStart?(rank, process.pid)
    }

    private func received(_ line: String, rank: Int) {
        if line.hasPrefix(Self.progressPrefix) {
            if let onProgress, let p = ProgressLine.parse(String(line.dropFirst(Self.progressPrefix.count))) { onProgress(p) }
            return
        }
        state.withLock { s in
            s[rank]?.tail.append(line)
            if let n = s[rank]?.tail.count, n > Self.tailLines { s[rank]?.tail.removeFirst(n - Self.tailLines) }
        }
        if forward { try? FileHandle.standardError.write(contentsOf: Data("[rank \(rank)] \(line)\n".utf8)) }
    }

    func succeeded(_ rank: Int) -> Bool { state.withLock { $0[rank].map { $0.isDone && !$0.failed } ?? false } }

    /// One note per failed process (for a run that succeeded without it).
    func failureNotes() -> [String] {
        state.withLock { s in s.filter { $0.value.failed }.sorted { $0.key < $1.key }.map { "rank \($0.key) process: \($0.value.status ?? "failed")" } }
    }

    func exitStatus(_ rank: Int) -> String? { state.withLock { $0[rank]?.status } }
    func tail(_ rank: Int) -> String { state.withLock { ($0[rank]?.tail ?? []).joined(separator: "\n") } }
    var allExited: Bool { state.withLock { s in s.values.allSatisfy(\.isDone) } }

    /// Whether every child but `rank` has ended.
    func othersExited(than rank: Int) -> Bool {
        state.withLock { s in s.filter { $0.key != rank }.allSatisfy { $0.value.isDone } }
    }

    /// Whether `rank`'s process is stopped (state T or t in /proc/PID/stat): it will not run again
    /// until someone sends it SIGCONT.
    func isStopped(_ rank: Int) -> Bool {
        guard let pid = state.withLock({ $0[rank]?.process?.pid }),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
        return state == "T" || state == "t"
    }

    /// Notes that `rank` was killed because it was stopped, for the failure summary.
    func markStopped(_ rank: Int) {
        state.withLock { s in s[rank]?.tail.append("error: rank \(rank) was stopped (SIGSTOP?) and every other node had ended; killed by the launcher") }
    }

    /// SIGKILL to every child still running.
    func killAll() {
        let running = state.withLock { s in s.values.filter { !$0.isDone }.compactMap(\.process) }
        for p in running { p.kill() }
    }

    /// Returns once every started child has ended and its output was read.
    func waitAll() async {
        let watchers = state.withLock { s in s.values.compactMap(\.watcher) }
        for w in watchers { await w.value }
    }

    /// The first cause first: a node killed by a signal, then rank 0's error (which names the
    /// rank it lost and the iteration), then the others.
    func failureSummary() -> String? {
        let children = state.withLock { $0 }
        let failed = children.filter { $0.value.failed }.sorted { $0.key < $1.key }
        guard !failed.isEmpty else { return nil }
        func lastError(_ c: Child) -> String {
            c.tail.last { $0.contains("Error") || $0.contains("error") || $0.contains("lost") } ?? c.tail.last ?? ""
        }
        var lines: [String] = []
        for (r, c) in failed where c.signal != nil {
            let why = c.tail.last.flatMap { $0.contains("was stopped (SIGSTOP") ? ": \($0)" : nil } ?? ""
            lines.append("rank \(r) was \(c.status ?? "killed")\(why)")
        }
        if let zero = children[0], zero.failed, zero.signal == nil { lines.append("rank 0 (\(zero.status ?? "")): \(lastError(zero))") }
        for (r, c) in failed where r != 0 && c.signal == nil { lines.append("rank \(r) (\(c.status ?? "")): \(lastError(c))") }
        return "the socket run failed:\n  " + lines.joined(separator: "\n  ")
    }
}

/// Rank 0's progress as one line on its stdout, for the launcher.
public enum ProgressLine {
    public static func format(_ p: TrainingProgress) -> String {
        func n(_ x: Double?) -> String { x.map { "\($0)" } ?? "-" }
        return "\(Children.progressPrefix)\(p.rank) \(p.iteration) \(p.maxIterations) \(p.time) \(n(p.loss)) \(n(p.gradientNorm)) \(n(p.distance))"
    }

    static func parse(_ s: String) -> TrainingProgress? {
        let f = s.split(separator: " ").map(String.init)
        guard f.count == 7, let rank = Int(f[0]), let it = Int(f[1]), let maxIt = Int(f[2]), let t = Double(f[3]) else { return nil }
        return TrainingProgress(rank: rank, iteration: it, maxIterations: maxIt, time: t,
                                loss: Double(f[4]), gradientNorm: Double(f[5]), distance: Double(f[6]))
    }
}
