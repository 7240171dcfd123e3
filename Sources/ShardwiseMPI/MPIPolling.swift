#if MPI
import Shardwise
#if canImport(Glibc)
import Glibc
#endif

/// How a waiting receive polls MPI.
///
/// A receive never blocks inside MPI (a blocking `MPI_Recv` could not time out): it probes with
/// `MPI_Improbe` and, between probes, first spins (yielding to other tasks) for `spinSeconds` —
/// a message that is about to arrive is then picked up in microseconds — and after that sleeps,
/// doubling the pause up to `maxSleepSeconds`.
///
/// OpenMPI has no progress thread: a large message (rendezvous protocol) moves only while both
/// ends are inside MPI calls. So while this rank has sends in flight the pause stays at the
/// minimum — a yield, or `sched_yield` when ranks outnumber cores — instead of growing.
public struct MPIPollingPolicy: Sendable, Equatable {
    public var spinSeconds: Double
    public var minSleepSeconds: Double
    public var maxSleepSeconds: Double
    /// More ranks than cores on this host: never spin, give the core away between probes.
    public var oversubscribed: Bool

    public init(spinSeconds: Double = 200e-6, minSleepSeconds: Double = 10e-6, maxSleepSeconds: Double = 1e-3,
                oversubscribed: Bool = false) {
        self.spinSeconds = spinSeconds
        self.minSleepSeconds = minSleepSeconds
        self.maxSleepSeconds = maxSleepSeconds
        self.oversubscribed = oversubscribed
    }

    /// Spin briefly when every rank of this host has its own core; otherwise never.
    public static func forHost(oversubscribed: Bool) -> MPIPollingPolicy {
        oversubscribed ? MPIPollingPolicy(spinSeconds: 0, oversubscribed: true) : MPIPollingPolicy()
    }
}

/// The waiting state of one receive.
struct MPIBackoff {
    let policy: MPIPollingPolicy
    let started: Double
    var sleep: Double

    init(policy: MPIPollingPolicy, now: Double) {
        self.policy = policy
        started = now
        sleep = policy.minSleepSeconds
    }

    /// Pauses before the next probe.
    mutating func pause(now: Double, sendsInFlight: Bool) async {
        if sendsInFlight || now - started < policy.spinSeconds {
            if policy.oversubscribed { sched_yield() }
            await Task.yield()
            return
        }
        try? await Task.sleep(nanoseconds: UInt64(sleep * 1e9))
        sleep = min(sleep * 2, policy.maxSleepSeconds)
    }
}
#endif
