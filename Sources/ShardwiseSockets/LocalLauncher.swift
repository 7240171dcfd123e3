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
///    `onProgress`; keeps the last lines of each for the error message.
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

        let children = Children(count: m, forward: forwardLogs, onProgress: onProgress)
        defer { children.killAll() }
        try children.start(rank: 0, executable: executable, arguments: arguments(rank: 0, port: 0), environment: environment, onStart: onStart)
        // Wait for rank 0's port (or its early death).
        let portDeadline = MonotonicClock.now() + min(job.timeout, 60) + 30
        var port: Int?
        while port == nil {
            if let text = try? String(contentsOfFile: portPath, encoding: .utf8), let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                port = p
            } else if let status = children.exitStatus(0) {
                throw SocketError.runFailed("rank 0 exited (\(status)) before listening:\n\(children.tail(0))")
            } else if MonotonicClock.now() > portDeadline {
                throw SocketError.runFailed("rank 0 did not start listening within \(Int(portDeadline)) s")
            } else {
                try await Task.sleep(nanoseconds: 5_000_000)
            }
        }
        onCoordinatorPort?(port!)
        for r in 1..<max(m, 1) {
            try children.start(rank: r, executable: executable, arguments: arguments(rank: r, port: port!), environment: environment, onStart: onStart)
        }
        // Wait for all. Nodes time out on their own, so none can hang; still, once rank 0 (which
        // ends the run for everyone) has exited, the others get the timeout plus slack, then SIGKILL.
        var coordinatorExited: Double?
        while !children.allExited {
            if coordinatorExited == nil, children.exitStatus(0) != nil { coordinatorExited = MonotonicClock.now() }
            if let t = coordinatorExited, MonotonicClock.now() - t > job.timeout + 5 {
                children.killAll()
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        children.drain()
        // Rank 0's success is the run's (an asynchronous strategy may carry on without a node).
        guard children.succeeded(0), let data = FileManager.default.contents(atPath: reportPath) else {
            throw SocketError.runFailed(children.failureSummary() ?? "rank 0 finished but wrote no report")
        }
        var report = try JSONDecoder().decode(TrainingReport.self, from: data)
        report.notes += children.failureNotes()
        return report
    }
}

/// The child processes of one launch, their output, their fate.
final class Children: @unchecked Sendable {
    struct Child {
        var process: Process
        var tail: [String] = []
        var partial = Data()
        var status: String?
        var failed = false
        var signal: Int32?
    }
    private let state: Mutex<[Int: Child]> = Mutex([:])
    let count: Int
    let forward: Bool
    let onProgress: (@Sendable (TrainingProgress) -> Void)?
    static let progressPrefix = "@progress "

    init(count: Int, forward: Bool, onProgress: (@Sendable (TrainingProgress) -> Void)?) {
        self.count = count
        self.forward = forward
        self.onProgress = onProgress
    }

    func start(rank: Int, executable: String, arguments: [String], environment: [String: String],
               onStart: (@Sendable (Int, Int32) -> Void)?) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = environment
        let err = Pipe(), out = Pipe()
        p.standardError = err
        p.standardOutput = out
        p.standardInput = FileHandle.nullDevice
        err.fileHandleForReading.readabilityHandler = { [weak self] h in self?.output(rank: rank, h.availableData, isStdout: false) }
        out.fileHandleForReading.readabilityHandler = { [weak self] h in self?.output(rank: rank, h.availableData, isStdout: true) }
        p.terminationHandler = { [weak self] proc in
            self?.state.withLock { s in
                let code = proc.terminationStatus
                if proc.terminationReason == .uncaughtSignal {
                    s[rank]?.status = "killed by signal \(code)\(code == SIGKILL ? " (SIGKILL)" : "")"
                    s[rank]?.signal = code
                    s[rank]?.failed = true
                } else {
                    s[rank]?.status = "exit code \(code)"
                    s[rank]?.failed = code != 0
                }
            }
        }
        state.withLock { $0[rank] = Child(process: p) }
        do { try p.run() } catch {
            throw SocketError.runFailed("cannot start \(executable): \(error)")
        }
        onStart?(rank, p.processIdentifier)
    }

    private func output(rank: Int, _ data: Data, isStdout: Bool) {
        guard !data.isEmpty else { return }
        var lines: [String] = []
        state.withLock { s in
            guard var c = s[rank] else { return }
            c.partial.append(data)
            while let nl = c.partial.firstIndex(of: 0x0A) {
                lines.append(String(decoding: c.partial[c.partial.startIndex..<nl], as: UTF8.self))
                c.partial.removeSubrange(c.partial.startIndex...nl)
            }
            for l in lines where !l.hasPrefix(Self.progressPrefix) {
                c.tail.append(l)
                if c.tail.count > 20 { c.tail.removeFirst() }
            }
            s[rank] = c
        }
        for line in lines {
            if line.hasPrefix(Self.progressPrefix) {
                if let onProgress, let p = ProgressLine.parse(String(line.dropFirst(Self.progressPrefix.count))) { onProgress(p) }
            } else if forward {
                FileHandle.standardError.write(Data("[rank \(rank)] \(line)\n".utf8))
            }
        }
    }

    /// Reads what is left in the pipes after the processes ended.
    func drain() {
        let pipes: [(Int, Pipe?, Pipe?)] = state.withLock { s in
            s.map { ($0.key, $0.value.process.standardError as? Pipe, $0.value.process.standardOutput as? Pipe) }
        }
        for (rank, err, out) in pipes {
            err?.fileHandleForReading.readabilityHandler = nil
            out?.fileHandleForReading.readabilityHandler = nil
            if let d = try? err?.fileHandleForReading.readToEnd() { output(rank: rank, d, isStdout: false) }
            if let d = try? out?.fileHandleForReading.readToEnd() { output(rank: rank, d, isStdout: true) }
        }
    }

    func succeeded(_ rank: Int) -> Bool { state.withLock { $0[rank].map { $0.status != nil && !$0.failed } ?? false } }

    /// One note per failed process (for a run that succeeded without it).
    func failureNotes() -> [String] {
        state.withLock { s in s.filter { $0.value.failed }.sorted { $0.key < $1.key }.map { "rank \($0.key) process: \($0.value.status ?? "failed")" } }
    }

    func exitStatus(_ rank: Int) -> String? { state.withLock { $0[rank]?.status } }
    func tail(_ rank: Int) -> String { state.withLock { ($0[rank]?.tail ?? []).joined(separator: "\n") } }
    var allExited: Bool { state.withLock { s in s.values.allSatisfy { $0.status != nil } } }
    var anyFailed: Bool { state.withLock { s in s.values.contains { $0.failed } } }

    func killAll() {
        let running: [Process] = state.withLock { s in s.values.filter { $0.status == nil }.map(\.process) }
        for p in running where p.isRunning { kill(p.processIdentifier, SIGKILL) }
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
        for (r, c) in failed where c.signal != nil { lines.append("rank \(r) was \(c.status ?? "killed")") }
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
