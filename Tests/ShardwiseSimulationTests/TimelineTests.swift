import Foundation
import Shardwise
@testable import ShardwiseSimulation
import Testing
import _TestSupport

/// `--timeline`: Chrome trace-event JSON, one track per rank, spans nested and ordered, and on the
/// simulator the spans' virtual times are the closed forms the simulator is built on.
@Suite struct TimelineTests {
    static let m = 4, d = 400, rowsPerNode = 50
    static let alpha = 20e-6, beta = 1e9, spe = 1e-9

    static func job(every: Int = 1, iterations: Int = 6, strategy: StrategyKind = .allReduce) -> Job {
        var job = Job(data: .synthetic(SyntheticSpec(rows: m * rowsPerNode, features: d, seed: 5)))
        job.computeReference = false
        job.nodes = m
        job.strategy.kind = strategy
        job.optimizer.solver = strategy.runsSolvers ? .gd : nil
        job.optimizer.learningRate = .fixed(1e-7)
        job.stopping = StoppingRule(maxIterations: iterations, tolerance: 0)
        job.timelineEvery = every
        return job
    }

    static let model = SimulationModel(network: NetworkModel(latency: alpha, bandwidth: beta),
                                       compute: ComputeModel(secondsPerElement: spe))

    /// The X spans of each track, in time order, as (name, start, end) in seconds.
    static func spans(_ events: [TimelineEvent]) -> [Int: [(name: String, cat: String, start: Double, end: Double)]] {
        var out: [Int: [(String, String, Double, Double)]] = [:]
        for e in events where e.ph == "X" {
            out[e.tid, default: []].append((e.name, e.cat, e.ts * 1e-6, (e.ts + (e.dur ?? 0)) * 1e-6))
        }
        return out.mapValues { $0.sorted { ($0.2, -$0.3) < ($1.2, -$1.3) }.map { (name: $0.0, cat: $0.1, start: $0.2, end: $0.3) } }
    }

    @Test("the file is trace-event JSON with one named track per rank, spans nested or apart")
    func format() async throws {
        let report = try await SimulationBackend(model: Self.model).run(Self.job())
        let events = try #require(report.timeline)
        let data = try JSONEncoder().encode(TimelineFile(events: events))
        let tree = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let list = try #require(tree["traceEvents"] as? [[String: Any]])
        #expect(list.count == events.count)
        #expect(list.allSatisfy { ["X", "i", "M"].contains($0["ph"] as? String) && $0["ts"] is Double && $0["tid"] is Int })
        #expect(Set(events.map(\.tid)) == Set(0..<Self.m))
        let names = events.filter { $0.ph == "M" && $0.name == "thread_name" }
        #expect(names.count == Self.m && Set(names.map(\.tid)) == Set(0..<Self.m))
        for (rank, track) in Self.spans(events) {
            // Any two spans on a track are either disjoint or one inside the other.
            for i in track.indices {
                for j in (i + 1)..<track.count where track[j].start < track[i].end - 1e-12 {
                    #expect(track[j].end <= track[i].end + 1e-12,
                            "rank \(rank): \(track[j].name) [\(track[j].start), \(track[j].end)] straddles \(track[i].name) [\(track[i].start), \(track[i].end)]")
                }
            }
            // Every send and receive of an iteration sits inside its all-reduce.
            let collectives = track.filter { $0.cat == "collective" }
            #expect(collectives.count == 6, "rank \(rank)")
            for s in track where s.cat == "send" || s.cat == "receive" {
                #expect(collectives.contains { $0.start <= s.start + 1e-12 && s.end <= $0.end + 1e-12 }, "rank \(rank): \(s.name) outside a collective")
            }
        }
        let markers = events.filter { $0.cat == "iteration" && $0.tid == 0 }.map(\.name)
        #expect(markers == (0..<6).map { "iteration \($0)" })
    }

    @Test("virtual times: compute is rows·d·c, the ring all-reduce 2(m−1)·(α + (d/m)·s/β), back to back")
    func virtualTimes() async throws {
        let report = try await SimulationBackend(model: Self.model).run(Self.job())
        let events = try #require(report.timeline)
        let compute = Double(Self.rowsPerNode * Self.d) * Self.spe
        let bytes = Double(CodecSpec.float64.makeCodec().encodedSize(count: Self.d / Self.m))
        let ring = 2 * Double(Self.m - 1) * (Self.alpha + bytes / Self.beta)
        for (rank, track) in Self.spans(events) {
            let computes = track.filter { $0.cat == "compute" }, rings = track.filter { $0.cat == "collective" }
            #expect(computes.count == 6 && rings.count == 6)
            for c in computes { #expect(isClose(c.end - c.start, compute, relative: 1e-9), "rank \(rank) compute \(c.end - c.start) vs \(compute)") }
            for r in rings { #expect(isClose(r.end - r.start, ring, relative: 1e-6), "rank \(rank) ring \(r.end - r.start) vs \(ring)") }
            // Iteration k: its compute, then its all-reduce, then the next compute at once.
            for k in 0..<6 {
                #expect(isClose(rings[k].start, computes[k].end, relative: 1e-9))
                if k < 5 { #expect(isClose(computes[k + 1].start, rings[k].end, relative: 1e-9)) }
            }
        }
        // The report's trace times are the same clock: iteration k began at k·(compute + ring).
        let first = try #require(report.trace.first { $0.iteration == 3 })
        #expect(isClose(first.time, 3 * (compute + ring), relative: 1e-6))
    }

    @Test("sampling keeps one iteration in N, and no timeline is recorded unless asked")
    func sampling() async throws {
        let every = try #require(try await SimulationBackend(model: Self.model).run(Self.job(every: 3)).timeline)
        let markers = every.filter { $0.cat == "iteration" && $0.tid == 0 }.map(\.name)
        #expect(markers == ["iteration 0", "iteration 3"])
        #expect(every.filter { $0.cat == "compute" && $0.tid == 0 }.count == 2)
        #expect(try await SimulationBackend(model: Self.model).run(Self.job(every: 0)).timeline == nil)
        // The parameter server's track shows its applies.
        let ps = try #require(try await SimulationBackend(model: Self.model).run(Self.job(strategy: .parameterServer)).timeline)
        #expect(ps.contains { $0.tid == 0 && $0.cat == "server" && $0.name == "apply" })
    }
}

/// Processes: `launch --timeline` merges every rank's track, moved onto one time axis.
@Suite struct TimelineProcessTests {
    @Test("launch --timeline holds every rank's track, their all-reduces lined up")
    func launchMergesTracks() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("timeline-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try await ShardwiseBinary.run(["launch", "--nodes", "3", "--synthetic", "n=3000,d=20", "--strategy", "allreduce",
                                                 "--solver", "gd", "--lr", "0.01", "--iterations", "8", "--quiet", "--timeline", path])
        #expect(run.status == 0, "\(run.output)")
        let file = try JSONDecoder().decode(TimelineFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(Set(file.traceEvents.map(\.tid)) == [0, 1, 2])
        // The k-th all-reduce ends at the same moment on every rank (the last step's receive
        // completes it everywhere), to within the loopback's latency and the clocks' reading.
        let ends = (0..<3).map { r in
            file.traceEvents.filter { $0.tid == r && $0.cat == "collective" }.map { ($0.ts + ($0.dur ?? 0)) * 1e-6 }.sorted()
        }
        #expect(ends.allSatisfy { $0.count == ends[0].count } && ends[0].count >= 8)
        for k in 1..<ends[0].count {
            let spread = ends.map { $0[k] }.max()! - ends.map { $0[k] }.min()!
            #expect(spread < 0.05, "all-reduce \(k) ends \(spread) s apart across ranks")
        }
    }
}
