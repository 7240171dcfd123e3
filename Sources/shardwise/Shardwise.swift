import ArgumentParser
import Shardwise

@main
struct ShardwiseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardwise",
        abstract: "Train linear models data-parallel, and see what parallelism costs.",
        discussion: """
            Every strategy (mapreduce, allreduce, ps, hogwild, gossip) runs on every backend \
            (threads, sockets, simulation, mpi) and is measured against the exact LAPACK solution.
            """,
        subcommands: [
            TrainCommand.self, SolveCommand.self, DemoCommand.self,
            SimulateCommand.self, CompareCommand.self, NodeCommand.self, LaunchCommand.self,
            MPIToolsCommand.self, SparseBenchCommand.self, LoadBenchCommand.self,
        ]
    )
}
