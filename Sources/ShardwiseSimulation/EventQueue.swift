import Shardwise

/// What happens at a point of virtual time.
enum SimulationEvent {
    /// A message has crossed the wire: put it in `destination`'s mailbox; wake its sender (blocked
    /// while the message occupied its link) when `sender` ≥ 0.
    case deliver(message: Message, destination: Int, start: Double, wakeSender: Bool)
    /// A node's sleep (a computation, a send) is over.
    case wake(rank: Int)
    /// A node back from a crash looks in its mailbox again.
    case recheck(rank: Int)
}

/// A binary min-heap of events ordered by (time, sequence): events at the same time happen in the
/// order they were scheduled, which keeps the simulation deterministic.
struct EventQueue {
    struct Entry {
        var time: Double
        var sequence: UInt64
        var event: SimulationEvent
        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            time < other.time || (time == other.time && sequence < other.sequence)
        }
    }

    private(set) var entries: [Entry] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var nextTime: Double? { entries.first?.time }

    mutating func push(_ event: SimulationEvent, at time: Double) {
        nextSequence &+= 1
        entries.append(Entry(time: time, sequence: nextSequence, event: event))
        // Sift up, moving a hole instead of swapping.
        var i = entries.count - 1
        let item = entries[i]
        while i > 0 {
            let parent = (i - 1) / 2
            guard item.precedes(entries[parent]) else { break }
            entries[i] = entries[parent]
            i = parent
        }
        entries[i] = item
    }

    mutating func pop() -> Entry? {
        guard !entries.isEmpty else { return nil }
        let top = entries[0]
        let last = entries.removeLast()
        if !entries.isEmpty {
            // Sift down.
            var i = 0
            let n = entries.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var c = l
                if l + 1 < n && entries[l + 1].precedes(entries[l]) { c = l + 1 }
                guard entries[c].precedes(last) else { break }
                entries[i] = entries[c]
                i = c
            }
            entries[i] = last
        }
        return top
    }
}

/// Receive deadlines. Receives with the default timeout get deadlines in the order they are made
/// (virtual time never goes back), so a FIFO keeps them sorted; explicit timeouts go to a small
/// sorted list. Entries of receives that completed are skipped lazily.
struct DeadlineQueue {
    struct Entry { var deadline: Double; var rank: Int; var generation: Int }
    private var fifo: [Entry] = []
    private var head = 0
    private var other: [Entry] = []   // sorted by deadline, descending (pop from the end)

    mutating func add(_ e: Entry, inOrder: Bool) {
        if inOrder {
            fifo.append(e)
        } else {
            let i = other.firstIndex { $0.deadline < e.deadline } ?? other.count
            other.insert(e, at: i)
        }
    }

    /// Drops stale entries from the fronts, then returns the earliest live one.
    mutating func earliest(isLive: (Entry) -> Bool) -> Entry? {
        while head < fifo.count && !isLive(fifo[head]) { head += 1 }
        if head > 1024 && head * 2 > fifo.count {
            fifo.removeFirst(head)
            head = 0
        }
        while let last = other.last, !isLive(last) { other.removeLast() }
        let a = head < fifo.count ? fifo[head] : nil
        let b = other.last
        switch (a, b) {
        case let (a?, b?): return a.deadline <= b.deadline ? a : b
        case let (a?, nil): return a
        case let (nil, b?): return b
        default: return nil
        }
    }
}
