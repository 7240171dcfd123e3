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
        if sleeping.load(ordering: .sequentiallyConsistent) { wake.signal() }
    }

    private func loop() {
        let executor = asUnownedTaskExecutor()
        while true {
            let jobs = queue.withLock { q -> [UnownedJob] in
                let taken = q
                q.removeAll(keepingCapacity: true)
                return taken
            }
            if !jobs.isEmpty {
                for job in jobs { job.runSynchronously(on: executor) }
                continue
            }
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            if spinNanoseconds > 0 && spin() { continue }
            sleeping.store(true, ordering: .sequentiallyConsistent)
            // Re-check after announcing sleep, so an enqueue that missed the flag is not lost.
            let empty = queue.withLock { $0.isEmpty }
            if empty && !stopping.load(ordering: .sequentiallyConsistent) { wake.wait() }
            sleeping.store(false, ordering: .sequentiallyConsistent)
        }
    }

    /// Spins until work arrives (true) or the window passes (false).
    private func spin() -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + spinNanoseconds
        var i = 0
        while true {
            if queue.withLock({ !$0.isEmpty }) { return true }
            i += 1
            if i & 63 == 0 && DispatchTime.now().uptimeNanoseconds >= deadline { return false }
        }
    }
}
