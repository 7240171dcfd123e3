import Benchmark
import Foundation
import Shardwise
import ShardwiseSockets
import ShardwiseThreads

// Issue 4's benchmarks, the socket backend between two processes on loopback:
// - all-reduce of 1e3, 1e5, 1e6, 1e7 float64 (ring, reduce+broadcast): time per all-reduce and
//   algorithm bandwidth (vector bytes / time);
// - beside them, in the same run: raw loopback TCP throughput (POSIX sockets, no framing) and
//   OpenMPI's MPI_Allreduce over TCP (`--mca btl tcp,self`) when mpicc/mpirun are installed;
// - one MapReduce iteration on 2 processes vs 2 threads, same problem (the price of the network).
// The second process is this executable, started again with SHARDWISE_BENCH_PEER set.
// Bars (issue 4): ring ≤ OpenMPI TCP at 1e6 (~2.6 ms here), < 30 µs at 1e3.

enum SocketMetrics {
    static let perOp = BenchmarkMetric.custom("per all-reduce (µs)", useScalingFactor: false)
    static let bandwidth = BenchmarkMetric.custom("algorithm bandwidth (MB/s)", polarity: .prefersLarger, useScalingFactor: false)
    static let tcp = BenchmarkMetric.custom("raw loopback TCP (MB/s)", polarity: .prefersLarger, useScalingFactor: false)
    static let perIteration = BenchmarkMetric.custom("per iteration (µs)", useScalingFactor: false)
}

/// The peer process: follows the probe, or runs rank 1 of a training job.
func runPeerIfAsked() {
    guard let spec = ProcessInfo.processInfo.environment["SHARDWISE_BENCH_PEER"] else { return }
    let f = spec.split(separator: " ").map(String.init)
    let secret = ProcessInfo.processInfo.environment["SHARDWISE_SECRET"] ?? ""
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            if f[0] == "probe" {
                let comm = try await AllReduceProbe.join(rank: 1, port: Int(f[1])!, secret: secret)
                try await AllReduceProbe.follow(comm)
                await comm.close()
            } else {
                BLASThreading.set(threads: 1)   // as `launch` does: two processes share the cores
                let job = try JSONDecoder().decode(Job.self, from: Data(contentsOf: URL(fileURLWithPath: f[2])))
                let config = SocketConfiguration(rank: 1, size: 2, coordinatorPort: Int(f[1])!, secret: try SharedSecret(secret),
                                                 jobID: SocketNode.jobID(job), timeout: 60)
                _ = try await SocketNode(job: job, configuration: config).run()
            }
        } catch {
            FileHandle.standardError.write(Data("peer: \(error)\n".utf8))
        }
        done.signal()
    }
    done.wait()
    exit(0)
}

/// Starts the peer process and returns once `portFile` names the port rank 0 bound.
final class Peer: @unchecked Sendable {
    let process = Process()
    static let secret = SharedSecret.generate()

    init(mode: String) throws {
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        var env = ProcessInfo.processInfo.environment
        env["SHARDWISE_BENCH_PEER"] = mode
        env["SHARDWISE_SECRET"] = Peer.secret
        process.environment = env
        process.arguments = []
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    func wait() { process.waitUntilExit() }
}

func portFile() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("sw-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path }

/// Rank 0 of the probe world, with the peer following.
final class ProbeWorld: @unchecked Sendable {
    let comm: SocketCommunicator
    let peer: Peer

    init() async throws {
        let path = portFile()
        // Rank 0 must listen before the peer can join: bind first (port 0), then start the peer.
        async let comm = AllReduceProbe.join(rank: 0, port: 0, secret: Peer.secret, portFile: path)
        var port: Int?
        for _ in 0..<3000 where port == nil {
            port = (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if port == nil { try await Task.sleep(nanoseconds: 2_000_000) }
        }
        peer = try Peer(mode: "probe \(port!)")
        self.comm = try await comm
    }

    func close() async {
        try? await AllReduceProbe.stop(comm)
        await comm.close()
        peer.wait()
    }
}

/// OpenMPI's MPI_Allreduce over TCP for the same sizes: seconds per operation in each of five
/// rounds, nil when MPI is absent.
func openMPIAllReduce(counts: [Int]) -> [Int: [Double]]? {
    let fm = FileManager.default
    guard fm.isExecutableFile(atPath: "/usr/bin/mpicc"), fm.isExecutableFile(atPath: "/usr/bin/mpirun") else { return nil }
    let dir = fm.temporaryDirectory.appendingPathComponent("sw-mpi-\(getpid())")
    try? fm.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? fm.removeItem(at: dir) }
    let source = """
        #include <mpi.h>
        #include <stdio.h>
        #include <stdlib.h>
        int main(int argc, char **argv) {
            MPI_Init(&argc, &argv);
            int rank; MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            for (int a = 1; a < argc; a++) {
                long n = atol(argv[a]);
                int reps = n <= 1000 ? 2000 : n <= 100000 ? 200 : n <= 1000000 ? 50 : 10;
                double *v = malloc(n * sizeof(double)), *w = malloc(n * sizeof(double));
                for (long i = 0; i < n; i++) v[i] = 1;
                MPI_Allreduce(v, w, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                /* Five rounds, like the five samples of our own all-reduce benchmarks. */
                for (int round = 0; round < 5; round++) {
                    MPI_Barrier(MPI_COMM_WORLD);
                    double t0 = MPI_Wtime();
                    for (int r = 0; r < reps; r++) MPI_Allreduce(v, w, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                    double t = (MPI_Wtime() - t0) / reps;
                    if (rank == 0) printf("%ld %.9f\\n", n, t);
                }
                free(v); free(w);
            }
            MPI_Finalize();
            return 0;
        }
        """
    let c = dir.appendingPathComponent("allreduce.c").path, exe = dir.appendingPathComponent("allreduce").path
    guard (try? source.write(toFile: c, atomically: true, encoding: .utf8)) != nil else { return nil }
    func run(_ path: String, _ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }
    guard run("/usr/bin/mpicc", ["-O2", "-o", exe, c]) != nil,
          let text = run("/usr/bin/mpirun", ["-np", "2", "--mca", "btl", "tcp,self", "--bind-to", "none", exe] + counts.map(String.init))
    else { return nil }
    var result: [Int: [Double]] = [:]
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        if f.count == 2, let n = Int(f[0]), let t = Double(f[1]) { result[n, default: []].append(t) }
    }
    return result
}

/// Seconds per training iteration from a report (excluding setup).
func secondsPerIteration(_ r: TrainingReport) -> Double { r.seconds / Double(max(r.iterations, 1)) }

let benchmarks: @Sendable () -> Void = {
    runPeerIfAsked()
    let units: [BenchmarkMetric: BenchmarkUnits] = [
        SocketMetrics.perOp: .count, SocketMetrics.bandwidth: .count, SocketMetrics.tcp: .count, SocketMetrics.perIteration: .count,
    ]
    let counts = [1_000, 100_000, 1_000_000, 10_000_000]
    func repetitions(_ n: Int) -> Int { n <= 1_000 ? 2000 : n <= 100_000 ? 200 : n <= 1_000_000 ? 50 : 10 }

    nonisolated(unsafe) var world: ProbeWorld?
    for algorithm in AllReduceProbe.algorithms {
        for n in counts {
            Benchmark(
                "Sockets all-reduce \(algorithm), 2 processes, \(n) float64",
                configuration: .init(metrics: [SocketMetrics.perOp, SocketMetrics.bandwidth], units: units,
                                     warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 5)
            ) { benchmark in
                let t = try await AllReduceProbe.measure(world!.comm, count: n, algorithm: algorithm, repetitions: repetitions(n))
                benchmark.measurement(SocketMetrics.perOp, Int((t * 1e6).rounded()))
                benchmark.measurement(SocketMetrics.bandwidth, Int(Double(n * 8) / t / 1e6))
            } setup: {
                world = try await ProbeWorld()
            } teardown: {
                await world?.close()
                world = nil
            }
        }
    }

    Benchmark(
        "Raw loopback TCP throughput (POSIX, 1 GiB in 1 MiB writes)",
        configuration: .init(metrics: [SocketMetrics.tcp], units: units, maxDuration: .seconds(10), maxIterations: 3)
    ) { benchmark in
        benchmark.measurement(SocketMetrics.tcp, Int(AllReduceProbe.rawTCPThroughput() / 1e6))
    }

    // OpenMPI over TCP, measured once by its own program; reported per size.
    nonisolated(unsafe) var mpi: [Int: [Double]]? = nil
    nonisolated(unsafe) var mpiMeasured = false
    for n in counts {
        Benchmark(
            "OpenMPI MPI_Allreduce over TCP, 2 processes, \(n) float64",
            configuration: .init(metrics: [SocketMetrics.perOp, SocketMetrics.bandwidth], units: units, maxIterations: 1)
        ) { benchmark in
            if !mpiMeasured { mpi = openMPIAllReduce(counts: counts); mpiMeasured = true }
            guard let rounds = mpi?[n] else { return }   // no MPI here: nothing to compare with
            for t in rounds {
                benchmark.measurement(SocketMetrics.perOp, Int((t * 1e6).rounded()))
                benchmark.measurement(SocketMetrics.bandwidth, Int(Double(n * 8) / t / 1e6))
            }
        }
    }

    // MapReduce: 2 processes (sockets) vs 2 threads on the same problem.
    var job = Job(data: .synthetic(SyntheticSpec(rows: 200_000, features: 50, noise: 0.1, condition: 3, seed: 1)))
    job.nodes = 2
    job.strategy.kind = .mapReduce
    job.stopping = StoppingRule(maxIterations: 200, tolerance: 0)
    job.computeReference = false
    let mapReduceJob = job
    Benchmark(
        "MapReduce iteration, 2 threads, float64 200000x50",
        configuration: .init(metrics: [SocketMetrics.perIteration], units: units, warmupIterations: 1, maxIterations: 3)
    ) { benchmark in
        BLASThreading.set(threads: 1)
        let r = try await ThreadsBackend().run(mapReduceJob)
        benchmark.measurement(SocketMetrics.perIteration, Int(secondsPerIteration(r) * 1e6))
    }
    Benchmark(
        "MapReduce iteration, 2 processes (sockets), float64 200000x50",
        configuration: .init(metrics: [SocketMetrics.perIteration], units: units, warmupIterations: 1, maxIterations: 3)
    ) { benchmark in
        BLASThreading.set(threads: 1)
        let path = portFile(), jobPath = portFile() + ".json"
        try JSONEncoder().encode(mapReduceJob).write(to: URL(fileURLWithPath: jobPath))
        defer { try? FileManager.default.removeItem(atPath: jobPath); try? FileManager.default.removeItem(atPath: path) }
        var config = SocketConfiguration(rank: 0, size: 2, coordinatorPort: 0, secret: try SharedSecret(Peer.secret),
                                         jobID: SocketNode.jobID(mapReduceJob), timeout: 60, portFile: path)
        config.timeout = 60
        async let report = SocketNode(job: mapReduceJob, configuration: config).run()
        var port: Int?
        for _ in 0..<3000 where port == nil {
            port = (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if port == nil { try await Task.sleep(nanoseconds: 2_000_000) }
        }
        let peer = try Peer(mode: "node \(port!) \(jobPath)")
        let r = try await report
        peer.wait()
        if let r { benchmark.measurement(SocketMetrics.perIteration, Int(secondsPerIteration(r) * 1e6)) }
    }
}
