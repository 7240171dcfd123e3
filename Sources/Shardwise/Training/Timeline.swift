import Foundation
import Synchronization

/// One event of a timeline, in Chrome's trace-event format (what chrome://tracing and Perfetto
/// open): a complete span (`ph` "X", with `dur`), an instant (`ph` "i"), or metadata (`ph` "M",
/// a track's name). Times in microseconds since the run's clock started (virtual in the simulator).
public struct TimelineEvent: Codable, Sendable, Equatable {
    public var name: String
    public var cat: String
    public var ph: String
    public var ts: Double
    public var dur: Double?
    /// One process for the whole run; one track (`tid`) per rank.
    public var pid: Int
    public var tid: Int
    public var s: String?
    public var args: [String: String]?

    public init(name: String, cat: String, ph: String, ts: Double, dur: Double? = nil, tid: Int,
                s: String? = nil, args: [String: String]? = nil) {
        self.name = name
        self.cat = cat
        self.ph = ph
        self.ts = ts
        self.dur = dur
        self.pid = 0
        self.tid = tid
        self.s = s
        self.args = args
    }
}

/// A node's timeline while it trains: what `NodeMetrics` counts (compute, sends, receives,
/// waiting), the collectives around them, and an iteration marker, each as a span on the node's
/// track (`--timeline`).
///
/// Sampling keeps it bounded: the node's gradient evaluations number its iterations, and only
/// every `every`-th iteration is recorded (its compute and everything until the next one:
/// the collective, its steps, the waiting); at most `limit` events are kept, and the ones beyond
/// are counted, not stored.
public final class Timeline: Sendable {
    public static let defaultLimit = 200_000

    public let rank: Int
    public let every: Int
    public let limit: Int
    /// The wall-clock time (seconds since 1970) at which the node's clock read 0: what lines up
    /// the tracks of processes whose clocks started apart (`alignedTracks`).
    public let epoch: Double
    private struct State {
        var clock: (@Sendable () -> Double)?
        var events: [TimelineEvent] = []
        var iteration = -1
        var dropped = 0
    }
    private let state: Mutex<State>

    public init(rank: Int, every: Int, limit: Int = Timeline.defaultLimit, clock: @escaping @Sendable () -> Double) {
        self.rank = rank
        self.every = max(1, every)
        self.limit = limit
        epoch = Date().timeIntervalSince1970 - clock()
        state = Mutex(State(clock: clock))
    }

    /// Whether the current iteration is one of the sampled ones (setup, before the first gradient, is).
    private static func sampled(_ s: State, every: Int) -> Bool { s.iteration < 0 || s.iteration % every == 0 }

    private func add(_ s: inout State, _ event: TimelineEvent) {
        if s.events.count < limit { s.events.append(event) } else { s.dropped += 1 }
    }

    /// A span that ended now and took `seconds`.
    public func span(_ name: String, cat: String, seconds: Double, args: [String: String]? = nil) {
        state.withLock { s in
            guard let clock = s.clock, Self.sampled(s, every: every) else { return }
            let end = clock()
            add(&s, TimelineEvent(name: name, cat: cat, ph: "X", ts: (end - seconds) * 1e6, dur: seconds * 1e6, tid: rank, args: args))
        }
    }

    /// A span from `start` (the node's clock) until now.
    public func span(_ name: String, cat: String, since start: Double, args: [String: String]? = nil) {
        state.withLock { s in
            guard let clock = s.clock, Self.sampled(s, every: every) else { return }
            let end = clock()
            add(&s, TimelineEvent(name: name, cat: cat, ph: "X", ts: start * 1e6, dur: max(0, end - start) * 1e6, tid: rank, args: args))
        }
    }

    /// A span that ended `before` seconds ago and took `seconds` (the wait before a receive's copy).
    public func span(_ name: String, cat: String, seconds: Double, endingBefore before: Double) {
        state.withLock { s in
            guard let clock = s.clock, Self.sampled(s, every: every) else { return }
            let end = clock() - before
            add(&s, TimelineEvent(name: name, cat: cat, ph: "X", ts: (end - seconds) * 1e6, dur: seconds * 1e6, tid: rank))
        }
    }

    /// The node's clock now (nil once finished).
    public var now: Double? { state.withLock { $0.clock?() } }

    /// A gradient evaluation of `seconds` that ended now: it opens the next iteration, which is
    /// marked when sampled.
    public func compute(seconds: Double) {
        state.withLock { s in
            guard let clock = s.clock else { return }
            s.iteration += 1
            guard Self.sampled(s, every: every) else { return }
            let end = clock()
            add(&s, TimelineEvent(name: "iteration \(s.iteration)", cat: "iteration", ph: "i", ts: (end - seconds) * 1e6,
                                  tid: rank, s: "t"))
            add(&s, TimelineEvent(name: "compute", cat: "compute", ph: "X", ts: (end - seconds) * 1e6, dur: seconds * 1e6, tid: rank))
        }
    }

    /// Stops recording and returns the events (with the track's name first, and a note of the
    /// events not kept). Drops the clock, which may hold the communicator.
    public func finish(role: String) -> [TimelineEvent] {
        state.withLock { s in
            s.clock = nil
            var out = [TimelineEvent(name: "thread_name", cat: "__metadata", ph: "M", ts: 0, tid: rank,
                                     args: ["name": "rank \(rank) (\(role))", "epoch": "\(epoch)"])]
            if s.dropped > 0 {
                out.append(TimelineEvent(name: "\(s.dropped) events not kept (limit \(limit))", cat: "timeline", ph: "i",
                                         ts: s.events.last?.ts ?? 0, tid: rank, s: "t"))
            }
            out += s.events
            s.events = []
            return out
        }
    }
}

/// Every node's events on one time axis. Nodes of one process (threads) or one virtual clock (the
/// simulator) share their clock already (`shared`); processes' clocks start when each process
/// does, so each track is moved by its epoch's distance from the earliest one (exact on one host,
/// as good as the hosts' clock sync across hosts).
public func alignedTracks(_ tracks: [[TimelineEvent]], shared: Bool) -> [TimelineEvent] {
    guard !shared else { return tracks.flatMap { $0 } }
    let epochs = tracks.map { track in track.first { $0.ph == "M" }?.args?["epoch"].flatMap(Double.init) ?? 0 }
    let earliest = epochs.min() ?? 0
    return zip(tracks, epochs).flatMap { track, epoch in
        track.map { e in
            var e = e
            if e.ph != "M" { e.ts += (epoch - earliest) * 1e6 }
            return e
        }
    }
}

/// A whole run's timeline as the trace-event JSON object Chrome and Perfetto open.
public struct TimelineFile: Codable, Sendable {
    public var traceEvents: [TimelineEvent]
    public var displayTimeUnit = "ms"
    public init(events: [TimelineEvent]) { traceEvents = events }
}
