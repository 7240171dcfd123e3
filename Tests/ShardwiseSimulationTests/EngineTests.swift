import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// The engine's contract: virtual time, timeouts, deadlocks, ordering.
@Suite struct EngineTests {
    let backend = SimulationBackend(model: SimulationModel(network: NetworkModel(latency: 1e-3, bandwidth: 1e6),
                                                           compute: ComputeModel(secondsPerElement: 1e-3)))

    @Test func deadlockNamesTheWaitingRanks() async throws {
        await #expect {
            _ = try await backend.simulate(nodes: 3) { comm in
                // Everyone waits for the next rank, which waits too.
                _ = try await comm.receive(from: .rank((comm.rank + 1) % comm.size), tag: Tag(5))
            }
        } throws: { error in
            guard case CommunicationError.deadlock(let what) = error else { return false }
            return what.contains("rank 0 waits for rank 1") && what.contains("rank 2 waits for rank 0")
        }
    }

    @Test func timeoutsAreVirtual() async throws {
        let wall0 = MonotonicClock.now()
        await #expect {
            _ = try await backend.simulate(nodes: 2, timeout: 100) { comm in
                if comm.rank == 0 {
                    _ = try await comm.receive(from: .rank(1), tag: Tag(1), timeout: 30)
                } else {
                    // 1,000 s of "compute" (virtual), then a message that comes too late.
                    await comm.compute(ComputeWork(rows: 1000, features: 1000)) {}
                    try await comm.send([1], to: 0, tag: Tag(1))
                }
            }
        } throws: { error in
            guard case CommunicationError.timeout(let rank, _, _, let seconds) = error else { return false }
            return rank == 0 && seconds == 30
        }
        #expect(MonotonicClock.now() - wall0 < 30)   // 1,000 virtual seconds, no real waiting
    }

    @Test func sendCostAndOrdering() async throws {
        // 1,000 bytes at 1 MB/s + 1 ms = 2 ms each; three messages queue on the sender's uplink.
        let run = try await backend.simulate(nodes: 2) { comm -> [Double] in
            if comm.rank == 0 {
                for i in 0..<3 { try await comm.send([UInt8](repeating: UInt8(i), count: 1000), to: 1, tag: Tag(1)) }
                return [comm.now]
            }
            var arrivals: [Double] = []
            for i in 0..<3 {
                let m = try await comm.receive(from: .any, tag: Tag(1))
                #expect(m.payload.first == UInt8(i))
                arrivals.append(comm.now)
            }
            return arrivals
        }
        #expect(zip(run.results[1], [2e-3, 4e-3, 6e-3]).allSatisfy { isClose($0, $1, relative: 1e-9) })
        #expect(isClose(run.metrics[0].communicationSeconds, 6e-3, relative: 1e-9))
        #expect(isClose(run.metrics[1].communicationSeconds, 6e-3, relative: 1e-9))
        #expect(run.metrics[1].waitingSeconds == 0)
    }

    @Test func nativeAllReduceMatchesTheRingsClosedForm() async throws {
        let d = 1000, m = 8
        let run = try await backend.simulate(nodes: m) { comm in
            var v = [Double](repeating: Double(comm.rank), count: d)
            let native = try await comm.nativeAllReduce(&v)
            return (native, v[0], comm.now)
        }
        let expected = 2 * Double(m - 1) * (1e-3 + Double((d + m - 1) / m * 8) / 1e6)
        for (native, sum, t) in run.results {
            #expect(native)
            #expect(sum == Double(m * (m - 1) / 2))
            #expect(isClose(t, expected, relative: 1e-12))
        }
    }

    @Test func rejectsBadModels() async throws {
        let bad = SimulationBackend(model: SimulationModel(network: NetworkModel(latency: 0, bandwidth: 0)))
        #expect(throws: SimulationModelError.self) { try bad.validate(nodes: 2) }
        let badRank = SimulationBackend(model: SimulationModel(stragglers: StragglerModel(slowdowns: [.init(rank: 9, factor: 2)])))
        #expect(throws: SimulationModelError.self) { try badRank.validate(nodes: 4) }
    }
}

@Suite struct UnitsTests {
    @Test(arguments: [("50us", 50e-6), ("50µs", 50e-6), ("1ms", 1e-3), ("2.5s", 2.5), ("100ns", 100e-9), ("0.001", 1e-3), ("1 ms", 1e-3)])
    func durations(_ text: String, _ seconds: Double) throws {
        #expect(isClose(try SimulationUnits.duration(text), seconds, relative: 1e-12))
    }

    @Test(arguments: [("10Gbit/s", 1.25e9), ("10Gbps", 1.25e9), ("1GB/s", 1e9), ("100MB/s", 1e8),
                      ("1GiB/s", 1073741824.0), ("800Mbit/s", 1e8), ("1e9", 1e9), ("56kbit/s", 7000)])
    func bandwidths(_ text: String, _ bytesPerSecond: Double) throws {
        #expect(isClose(try SimulationUnits.bandwidth(text), bytesPerSecond, relative: 1e-12))
    }

    @Test(arguments: ["fast", "10Gbit/fortnight", "-1Gbit/s", "", "10 parsecs"])
    func badBandwidths(_ text: String) {
        #expect(throws: SimulationError.self) { try SimulationUnits.bandwidth(text) }
    }

    @Test(arguments: ["5 furlongs", "ms", "-1ms", ""])
    func badDurations(_ text: String) {
        #expect(throws: SimulationError.self) { try SimulationUnits.duration(text) }
    }

    @Test func others() throws {
        #expect(try SimulationUnits.nodeCounts("1..16") == [1, 2, 4, 8, 16])
        #expect(try SimulationUnits.nodeCounts("1,3,5") == [1, 3, 5])
        #expect(try SimulationUnits.stragglers("3:10,5:2") == [.init(rank: 3, factor: 10), .init(rank: 5, factor: 2)])
        #expect(try SimulationUnits.fault("2@10ms+50ms") == FaultSpec(rank: 2, at: 10e-3, downtime: 50e-3))
        #expect(try SimulationUnits.delay("exp:1ms") == .exponential(mean: 1e-3))
        #expect(throws: SimulationError.self) { try SimulationUnits.fault("2@10ms") }
        #expect(throws: SimulationError.self) { try SimulationUnits.stragglers("3") }
    }

    @Test func amdahlFitRecoversP() {
        let p = 0.03
        let counts = [1, 2, 4, 8, 16, 32, 64]
        let speedups = counts.map { 1 / (p + (1 - p) / Double($0)) }
        let fit = AmdahlFit.fit(nodes: counts, speedups: speedups)!
        #expect(abs(fit.serialFraction - p) < 1e-6)
        #expect(fit.rmsResidual < 1e-6)
    }
}
