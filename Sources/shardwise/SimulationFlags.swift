import ArgumentParser
import Shardwise
import ShardwiseSimulation

/// The simulated network, compute and faults (`simulate`, and `compare --backend simulation`).
struct SimulationFlags: ParsableArguments {
    @Option(help: ArgumentHelp("Per-message latency α (e.g. 50us, 1ms).", valueName: "time"))
    var latency = "50us"

    @Option(help: ArgumentHelp("Link bandwidth β (e.g. 10Gbit/s, 1GB/s, 100MiB/s).", valueName: "rate"))
    var bandwidth = "10Gbit/s"

    @Option(help: ArgumentHelp("Compute cost per matrix element of a gradient (e.g. 1ns).", valueName: "time"))
    var computeCost = "1ns"

    @Flag(help: "Measure the compute cost per element on this machine's kernel instead of --compute-cost.")
    var calibrate = false

    @Flag(help: "Give every message its own wire at the receiver (no contention on a server's downlink).")
    var noContention = false

    @Option(help: ArgumentHelp("Slow ranks: RANK:FACTOR[,RANK:FACTOR…], e.g. 3:10.", valueName: "list"))
    var stragglers: String?

    @Option(help: ArgumentHelp("Random extra delay per computation: exp:MEAN or lognormal:MEDIAN:SIGMA.", valueName: "dist"))
    var delay: String?

    @Option(help: ArgumentHelp("Ranks the random delay applies to (default: all), e.g. 1,2.", valueName: "list"))
    var delayRanks: String?

    @Option(help: "Seed of the random delays.")
    var delaySeed: UInt64 = 1

    @Option(name: .customLong("fault"), help: ArgumentHelp("A crash: RANK@TIME+DOWNTIME, e.g. 2@10ms+50ms (repeatable).", valueName: "spec"))
    var faults: [String] = []

    /// The model the flags describe (calibrated for shards of `rows` × `features` when asked).
    func model(features: Int, rows: Int, precision: Precision = .float64, measure: Bool = true) throws -> SimulationModel {
        let network = NetworkModel(latency: try wrap("--latency") { try SimulationUnits.duration(latency) },
                                   bandwidth: try wrap("--bandwidth") { try SimulationUnits.bandwidth(bandwidth) },
                                   sharedLinks: !noContention)
        let compute = calibrate
            ? (measure ? try ComputeModel.calibrated(rows: rows, features: features, precision: precision) : ComputeModel(calibrated: true))
            : ComputeModel(secondsPerElement: try wrap("--compute-cost") { try SimulationUnits.duration(computeCost) })
        var slow = StragglerModel(seed: delaySeed)
        if let stragglers { slow.slowdowns = try wrap("--stragglers") { try SimulationUnits.stragglers(stragglers) } }
        if let delay { slow.delay = try wrap("--delay") { try SimulationUnits.delay(delay) } }
        if let delayRanks {
            slow.delayRanks = try wrap("--delay-ranks") {
                try delayRanks.split(separator: ",").map { s -> Int in
                    guard let r = Int(s), r >= 0 else { throw ValidationError("'\(s)' is not a rank") }
                    return r
                }
            }
        }
        let faultSpecs = try faults.map { f in try wrap("--fault") { try SimulationUnits.fault(f) } }
        return SimulationModel(network: network, compute: compute, stragglers: slow, faults: faultSpecs)
    }

}

/// Runs `body`, turning any error into a `ValidationError` that names `option`.
func wrap<T>(_ option: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw ValidationError("\(option): \(error)") }
}
