import Testing

/// Tests that start processes of the `shardwise` binary (or `mpirun`) take turns: one test case
/// at a time in the whole run, whatever suite it is in.
///
/// Why: swift-testing runs suites in parallel, and a test that awaits its children holds no
/// thread, so nothing stopped thirty debug-build processes from training at once on two cores.
/// Everything else in the run then starved — an in-process rendezvous meant to fail "at once"
/// took 35–57 s. Apply it to a suite (it reaches every test in it) or to one test:
///
/// ```swift
/// @Suite("Socket runs", .serialized, .spawnsProcesses)
/// ```
public struct SpawnsProcesses: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Only test cases take a turn: a suite holding one while its tests wait for it would deadlock.
        guard testCase != nil else { return try await function() }
        await ProcessTurns.shared.acquire()
        do {
            try await function()
        } catch {
            await ProcessTurns.shared.release()
            throw error
        }
        await ProcessTurns.shared.release()
    }
}

extension Trait where Self == SpawnsProcesses {
    /// The test starts processes: it runs when no other such test does (see `SpawnsProcesses`).
    public static var spawnsProcesses: Self { SpawnsProcesses() }
}

/// A FIFO of one: the turn for process-spawning test cases.
actor ProcessTurns {
    static let shared = ProcessTurns()
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}
