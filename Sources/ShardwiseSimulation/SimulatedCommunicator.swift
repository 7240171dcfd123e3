import Shardwise
import Synchronization

/// A node's communicator in the simulator. Every operation goes through the `SimulationEngine`,
/// which moves the node along the virtual clock:
///
/// - `compute` runs the real kernel at once, then holds the node for the modelled cost;
/// - `send` holds the sender while its message occupies its link (queueing first if the sender's
///   uplink or, with shared links, the receiver's downlink is busy);
/// - `receive` returns a message that has arrived, or waits in virtual time for one.
///
/// Metrics are virtual seconds: compute = modelled kernel time; communication = time the node
/// spent on its own transfers (a send's cost; the part of a blocked receive during which the
/// awaited message was on the wire); waiting = the rest of a blocked receive, time queued for a
/// busy link, and time spent crashed.
final class SimulatedCommunicator: Communicator, @unchecked Sendable {
    let rank: Int
    let size: Int
    let engine: SimulationEngine
    let metrics: NodeMetrics
    let sharedMemory: SharedMemory?
    var backendName: String { "simulation" }
    var defaultTimeout: Double { engine.defaultTimeout }
    var now: Double { engine.now }

    init(rank: Int, engine: SimulationEngine, sharedMemory: SharedMemory?) {
        self.rank = rank
        self.size = engine.size
        self.engine = engine
        self.metrics = NodeMetrics(worldSize: engine.size)
        self.sharedMemory = sharedMemory
    }

    func send(_ payload: [UInt8], to destination: Int, tag: Tag) async throws {
        try checkRank(destination)
        let (cost, queued) = try await engine.send(payload, from: rank, to: destination, tag: tag)
        metrics.recordSend(bytes: payload.count, to: destination, seconds: cost)
        if queued > 0 { metrics.addWaiting(seconds: queued) }
    }

    func receive(from source: Source, tag: Tag, timeout: Double?) async throws -> Message {
        if case .rank(let r) = source { try checkRank(r) }
        let (p, since) = try await engine.receive(rank: rank, from: source, tag: tag, timeout: timeout)
        var communication = 0.0, waited = 0.0
        if let t0 = since {
            let onWire = max(t0, p.start)
            communication = now - onWire
            waited = onWire - t0
        }
        metrics.recordReceive(bytes: p.message.payload.count, waited: waited, seconds: communication)
        return p.message
    }

    func poll(from source: Source, tag: Tag) async throws -> Message? {
        if case .rank(let r) = source { try checkRank(r) }
        guard let p = try engine.poll(rank: rank, from: source, tag: tag) else { return nil }
        metrics.recordReceive(bytes: p.message.payload.count, waited: 0, seconds: 0)
        return p.message
    }

    func compute<R>(_ work: ComputeWork, _ body: () throws -> R) async rethrows -> R {
        let r = try body()
        let seconds = engine.cost(of: work, rank: rank)
        let down = await engine.compute(rank: rank, seconds: seconds)
        metrics.recordCompute(seconds: seconds)
        if down > 0 { metrics.addWaiting(seconds: down) }
        return r
    }

    func nativeAllReduce<Scalar: BLASScalar>(_ vector: inout [Scalar]) async throws -> Bool {
        let (communication, waiting, bytes, _) = try await engine.nativeAllReduce(rank: rank, &vector)
        // The ring's 2(m−1) sends and receives are counted as one of each, carrying all their
        // bytes (per-message accounting would cost more than the model saves); the report's
        // `simulation.messages` counts them all.
        metrics.recordSend(bytes: bytes, to: (rank + 1) % size, seconds: communication)
        metrics.recordReceive(bytes: bytes, waited: waiting, seconds: 0)
        return true
    }
}

