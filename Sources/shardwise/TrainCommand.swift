import ArgumentParser
import Foundation
import Shardwise

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a linear model and compare it with the exact solution.",
        discussion: """
            Examples:
              shardwise train --synthetic n=20000,d=50,noise=0.1,cond=10,seed=1
              shardwise train --data data.csv --target price --standardize --lr auto
              shardwise train --nodes 4 --strategy allreduce --allreduce ring --codec float32
              shardwise train --nodes 4 --strategy ps --staleness 2 --report ps.json
            """
    )

    @OptionGroup var options: JobOptions

    @Option(help: "Where the nodes run: threads, sockets, simulation, mpi.")
    var backend: BackendChoice = .threads

    @Option(help: ArgumentHelp("Write the full report (JSON) here.", valueName: "file"))
    var report: String?

    @Flag(help: "Also run the job on one node and report the speedup.")
    var speedup = false

    @Flag(help: "No progress line.")
    var quiet = false

    @OptionGroup var timeline: TimelineOutput

    func run() async throws {
        try OutputFile.check(path: report, option: "--report")
        try timeline.check()
        var job = try options.makeJob()
        timeline.apply(to: &job)
        let backend = try makeBackend(backend)
        let printer = ProgressPrinter(quiet: quiet)
        var result: TrainingReport
        do {
            result = try await backend.run(job, options: RunOptions(onProgress: printer.callback()))
            printer.finish()
        } catch {
            printer.finish()
            throw error
        }
        if speedup && job.nodes > 1 {
            var single = job
            single.nodes = 1
            if single.strategy.kind == .parameterServer || single.strategy.kind == .gossip || single.strategy.kind == .hogwild {
                single.strategy.kind = .mapReduce
            }
            let one = try await backend.run(single)
            result.speedup = one.seconds / result.seconds
        }
        print(summary(result), terminator: "")
        try timeline.write(&result)
        if let report {
            try writeJSON(result, to: report)
            print("report: \(report)")
        }
    }
}
