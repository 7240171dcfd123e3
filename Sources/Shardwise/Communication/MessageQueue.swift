/// Messages that have arrived at a node and wait for a matching receive — the matching rule every
/// backend shares: FIFO per (sender, tag), and a receive from `.any` takes the earliest arrival
/// with its tag among all senders. Not thread-safe: a backend keeps it under its own lock.
public struct MessageQueue: Sendable {
    private struct Key: Hashable { var source: Int; var tag: Tag }
    private struct Arrival { var sequence: Int; var message: Message }

    private var queues: [Key: FIFO<Arrival>] = [:]
    private var sequence = 0

    public init() {}

    /// Queues a message that no receive was waiting for.
    public mutating func append(_ message: Message) {
        sequence += 1
        queues[Key(source: message.source, tag: message.tag), default: FIFO()].append(Arrival(sequence: sequence, message: message))
    }

    /// Takes the message a receive from `source` with `tag` would get, if one is here.
    public mutating func take(from source: Source, tag: Tag) -> Message? {
        var key: Key?
        switch source {
        case .rank(let r):
            key = Key(source: r, tag: tag)
        case .any:
            var earliest = Int.max
            for (k, q) in queues where k.tag == tag {
                if let first = q.first, first.sequence < earliest { earliest = first.sequence; key = k }
            }
        }
        guard let k = key, queues[k]?.isEmpty == false else { return nil }
        return queues[k]!.removeFirst().message
    }

    /// Whether a message `receive(from: source, tag: tag)` would match has arrived.
    public func contains(from source: Source, tag: Tag) -> Bool {
        switch source {
        case .rank(let r): return queues[Key(source: r, tag: tag)]?.isEmpty == false
        case .any: return queues.contains { $0.key.tag == tag && !$0.value.isEmpty }
        }
    }
}

/// A FIFO queue, amortised O(1) at both ends, so a long backlog does not cost O(n) per take.
struct FIFO<Element: Sendable>: Sendable {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ e: Element) { items.append(e) }

    mutating func removeFirst() -> Element {
        let e = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }
}

/// Memory shared by the nodes of one process (threads, the simulator): named vectors created on
/// first use, zero-filled; the same name gives every node the same vector.
public final class SharedMemoryRegistry: SharedMemory, Sendable {
    private let vectors = Mutex<[String: AnyObject & Sendable]>([:])
    public let nodesRunInParallel: Bool

    public init(nodesRunInParallel: Bool = true) { self.nodesRunInParallel = nodesRunInParallel }

    public func vector<Scalar: BLASScalar>(named name: String, count: Int, of: Scalar.Type) -> SharedVector<Scalar> {
        vectors.withLock { table in
            if let v = table[name] as? SharedVector<Scalar>, v.count == count { return v }
            let v = SharedVector<Scalar>(count: count)
            table[name] = v
            return v
        }
    }
}

import Synchronization
