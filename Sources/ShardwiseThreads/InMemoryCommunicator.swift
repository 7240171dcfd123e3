import Shardwise
import Synchronization

/// A node's communicator in the threads backend.
final class InMemoryCommunicator: Communicator, @unchecked Sendable {
    let rank: Int
    let size: Int
    let fabric: InMemoryFabric
    let metrics: NodeMetrics
    let defaultTimeout: Double
    let sharedMemory: SharedMemory?
    var backendName: String { "threads" }

    init(rank: Int, fabric: InMemoryFabric, timeout: Double, sharedMemory: any SharedMemory) {
        self.rank = rank
        self.size = fabric.size
        self.fabric = fabric
        self.metrics = NodeMetrics(worldSize: fabric.size)
        self.defaultTimeout = timeout
        self.sharedMemory = sharedMemory
    }

    var now: Double { fabric.now }

    func send(_ payload: [UInt8], to destination: Int, tag: Tag) async throws {
        try checkRank(destination)
        let t0 = now
        fabric.mailboxes[destination].deliver(Message(source: rank, tag: tag, payload: payload))
        metrics.recordSend(bytes: payload.count, to: destination, seconds: now - t0)
    }

    func receive(from source: Source, tag: Tag, timeout: Double?) async throws -> Message {
        if case .rank(let r) = source { try checkRank(r) }
        let mailbox = fabric.mailboxes[rank]
        if let m = try mailbox.take(from: source, tag: tag) {
            metrics.recordReceive(bytes: m.payload.count, waited: 0, seconds: 0)
            return m
        }
        let t0 = now
        let m = try await mailbox.wait(from: source, tag: tag, now: t0, timeout: timeout ?? defaultTimeout)
        metrics.recordReceive(bytes: m.payload.count, waited: now - t0, seconds: 0)
        return m
    }

    func poll(from source: Source, tag: Tag) async throws -> Message? {
        let m = try fabric.mailboxes[rank].take(from: source, tag: tag)
        if let m { metrics.recordReceive(bytes: m.payload.count, waited: 0, seconds: 0) }
        return m
    }

    func compute<R>(_ work: ComputeWork, _ body: () throws -> R) async rethrows -> R {
        let t0 = MonotonicClock.now()
        let r = try body()
        metrics.recordCompute(seconds: MonotonicClock.now() - t0)
        return r
    }
}

