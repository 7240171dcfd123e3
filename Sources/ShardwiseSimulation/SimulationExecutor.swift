import Synchronization

/// The one executor every simulated node runs on: a FIFO of jobs that the simulation driver runs
/// on its own thread, one after another. Nothing runs concurrently, and the order in which jobs
/// become ready is fixed by the simulation, so runs are deterministic.
///
/// Jobs are enqueued when a node's task is created or resumed; the driver (`SimulationEngine`)
/// drains the queue, and only when it is empty does it advance the virtual clock.
final class SimulationExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = Mutex<[UnownedJob]>([])
    private var batch: [UnownedJob] = []

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.withLock { $0.append(unowned) }
    }

    /// Runs jobs until none is ready; returns how many ran. Driver thread only.
    @discardableResult
    func runReadyJobs() -> Int {
        let executor = asUnownedTaskExecutor()
        var ran = 0
        while true {
            queue.withLock { q in swap(&q, &batch) }
            if batch.isEmpty { return ran }
            for job in batch { job.runSynchronously(on: executor) }
            ran += batch.count
            batch.removeAll(keepingCapacity: true)
        }
    }
}
