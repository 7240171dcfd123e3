import Synchronization

/// One node's counters: time split into compute / communication / waiting, and traffic per link.
///
/// - compute: time inside `Communicator.compute` (the kernel);
/// - communication: time spent moving bytes — encoding, sending, copying out what arrived;
/// - waiting: time blocked in a receive before the message was there (stragglers show up here).
///
/// Thread-safe: backends may update it from their I/O threads.
public final class NodeMetrics: Sendable {
    public struct Snapshot: Codable, Sendable, Equatable {
        public var computeSeconds = 0.0
        public var communicationSeconds = 0.0
        public var waitingSeconds = 0.0
        public var bytesSent = 0
        public var bytesReceived = 0
        public var messagesSent = 0
        public var messagesReceived = 0
        public var gradients = 0
        /// Bytes sent to each destination rank (index = rank).
        public var bytesSentTo: [Int] = []
        public init() {}
    }

    private let state: Mutex<Snapshot>
    private let timelineBox = Mutex<Timeline?>(nil)

    /// The node's timeline, when one is recorded: every count below also becomes a span on it.
    public var timeline: Timeline? {
        get { timelineBox.withLock { $0 } }
        set { timelineBox.withLock { $0 = newValue } }
    }

    public init(worldSize: Int) {
        var s = Snapshot()
        s.bytesSentTo = Array(repeating: 0, count: worldSize)
        state = Mutex(s)
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    public func recordSend(bytes: Int, to destination: Int, seconds: Double) {
        state.withLock {
            $0.bytesSent += bytes
            $0.messagesSent += 1
            $0.communicationSeconds += seconds
            if destination < $0.bytesSentTo.count { $0.bytesSentTo[destination] += bytes }
        }
        timeline?.span("send → \(destination)", cat: "send", seconds: seconds, args: ["bytes": "\(bytes)"])
    }

    /// `messages` 0: more bytes of a message counted on its own (one received in two parts).
    public func recordReceive(bytes: Int, waited: Double, seconds: Double, messages: Int = 1) {
        state.withLock {
            $0.bytesReceived += bytes
            $0.messagesReceived += messages
            $0.waitingSeconds += waited
            $0.communicationSeconds += seconds
        }
        if let timeline {
            if waited > 0 { timeline.span("wait", cat: "wait", seconds: waited, endingBefore: seconds) }
            timeline.span("receive", cat: "receive", seconds: seconds, args: ["bytes": "\(bytes)"])
        }
    }

    public func recordCompute(seconds: Double, gradients: Int = 1) {
        state.withLock {
            $0.computeSeconds += seconds
            $0.gradients += gradients
        }
        timeline?.compute(seconds: seconds)
    }

    public func addCommunication(seconds: Double) {
        state.withLock { $0.communicationSeconds += seconds }
        if seconds > 0 { timeline?.span("communication", cat: "communication", seconds: seconds) }
    }

    public func addWaiting(seconds: Double) {
        state.withLock { $0.waitingSeconds += seconds }
        timeline?.span("wait", cat: "wait", seconds: seconds)
    }
}
