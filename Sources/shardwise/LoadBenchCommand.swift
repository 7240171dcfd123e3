import ArgumentParser
import Foundation
import Shardwise

/// Times the load of one data file alone (`make bench-csv` compares it with pandas): the seconds
/// `DataLoader.load` takes, and the file's size over them.
struct LoadBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load-bench",
        abstract: "Time loading a data file (for Benchmarks/scripts/csv.py).",
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("Data file (CSV, LIBSVM or NPY).", valueName: "file"))
    var data: String

    @Option(help: "Format of --data; by default from its extension.")
    var format: DataFormat?

    func run() throws {
        let bytes = try FileManager.default.attributesOfItem(atPath: data)[.size] as? Int ?? 0
        let clock = ContinuousClock()
        let start = clock.now
        let dataset = try DataLoader.load(.file(path: data, format: format, target: nil), as: Double.self)
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print("seconds \(seconds) MB/s \(Double(bytes) / 1e6 / seconds) rows \(dataset.rows) features \(dataset.features)")
    }
}
