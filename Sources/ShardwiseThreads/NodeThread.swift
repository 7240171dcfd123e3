import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A dedicated OS thread that runs one node's tasks: a `TaskExecutor`, so that a node's async code
/// (its strategy, its receives) always resumes on its own thread and a blocking BLAS call never
/// holds up another node.
///
/// When it runs out of work the thread spins for `spinNanoseconds` before it sleeps: a message
/// that arrives within that window is picked up in well under a microsecond instead of the tens of
/// microseconds a futex wake-up costs. Spinning is turned off when there are more nodes than
/// cores, where it would steal time from nodes that are computing.
final class NodeThread: TaskExecutor, @unchecked Sendable {
    private let queue = Mutex<[UnownedJob]>([])
    /// Jobs enqueued and not yet taken: what the spin loop watches, without taking the lock.
    private let pending = Atomic<Int>(0)
    private let sleeping = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private let spinNanoseconds: UInt64
    private var thread: pthread_t?
    let name: String

    init(name: String, spinNanoseconds: UInt64) {
        self.name = name
        self.spinNanoseconds = spinNanoseconds
    }

    func start() {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            let me = Unmanaged<NodeThread>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "cannot start a node thread (pthread_create: \(rc))")
        thread = t
    }

    /// Asks the thread to finish once its queue is empty, and waits for it.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake.signal()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.withLock { $0.append(unowned) }
        pending.add(1, ordering: .sequentiallyConsistent)
        if sleeping.load(ordering: .sequentiallyConsistent) { wake.signal() }
    }

    private func loop() {
        let executor = asUnownedTaskExecutor()
        var jobs: [UnownedJob] = []
        jobs.reserveCapacity(16)
        while true {
            // Swap the queue with an empty buffer (no copy), then run what was taken.
            queue.withLock { q in swap(&q, &jobs) }
            if !jobs.isEmpty {
                pending.subtract(jobs.count, ordering: .sequentiallyConsistent)
                for job in jobs { job.runSynchronously(on: executor) }
                jobs.removeAll(keepingCapacity: true)
                continue
            }
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            if spinNanoseconds > 0 && spin() { continue }
            sleeping.store(true, ordering: .sequentiallyConsistent)
            // Re-check after announcing sleep, so an enqueue that missed the flag is not lost.
            let empty = pending.load(ordering: .sequentiallyConsistent) == 0
            if empty && !stopping.load(ordering: .sequentiallyConsistent) { wake.wait() }
            sleeping.store(false, ordering: .sequentiallyConsistent)
        }
    }

    /// Spins until work arrives (true) or the window passes (false).
    private func spin() -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + spinNanoseconds
        var i = 0
        while true {
            if pending.load(ordering: .relaxed) > 0 { return true }
            i += 1
            if i & 255 == 0 && DispatchTime.now().uptimeNanoseconds >= deadline { return false }
        }
    }
}
