import Foundation
import Shardwise
import ShardwiseThreads
import Testing
import _TestSupport

/// Hogwild's bounded delay (see `Hogwild`): with more node threads than cores on a busy machine, a
/// node thread that runs alone for a whole time slice used to drive the shared model away from w*
/// (|w − w*|/|w*| in the thousands, in about one run of three on 2 cores with three busy
/// processes beside). The test makes the machine busy itself — busy processes on every core —
/// and asks every run of 8 Hogwild nodes to reach w*.
@Suite("Hogwild on a busy machine", .serialized)
struct HogwildDelayTests {
    /// Busy processes (`yes > /dev/null`), one per core and one more, until released: the load a
    /// shared CI machine adds at random. Processes, not threads in this one: the scheduler then
    /// shares the cores between processes, and our node threads get the short, late slices that
    /// made Hogwild fail.
    final class Load {
        private var pids: [pid_t] = []
        init(processes: Int) {
            for _ in 0..<processes {
                var pid: pid_t = 0
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
                let argv: [UnsafeMutablePointer<CChar>?] = [strdup("yes"), nil]
                if posix_spawnp(&pid, "yes", &actions, nil, argv, environ) == 0 { pids.append(pid) }
                posix_spawn_file_actions_destroy(&actions)
                argv.forEach { free($0) }
            }
        }
        func release() {
            for pid in pids { kill(pid, SIGKILL) }
            for pid in pids { var status: Int32 = 0; waitpid(pid, &status, 0) }
        }
    }

    @Test("8 hogwild nodes reach w* while every core is busy with other work (3 runs)")
    func busyMachine() async throws {
        var job = Job(data: .synthetic(TestData.wellConditioned()))
        job.nodes = 8
        job.strategy.kind = .hogwild
        job.stopping = StoppingRule(maxIterations: 6000, tolerance: 1e-10)
        let problem = try PreparedProblem<Double>(job: job)
        let load = Load(processes: ProcessorCount.online + 1)
        defer { load.release() }
        for run in 1...3 {
            let r = try await ThreadsBackend().run(problem: problem)
            #expect(r.relativeDistance! < 1e-4, "run \(run): |w − w*|/|w*| = \(r.relativeDistance!) after \(r.iterations) rounds (\(r.stopReason))")
        }
    }
}
