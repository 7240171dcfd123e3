// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so the root build never pulls in the benchmark harness.
// `make bench` (from the root) runs every suite with package-benchmark, then `BenchSummary`, which
// prints the bandwidth table (GB/s and the ratio to a memory-read probe) that the issues' bars
// are stated in.
let package = Package(
    name: "ShardwiseBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Shardwise", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // MARK: - Shared measurement code (probe, data, timing)
        .target(
            name: "BenchSupport",
            dependencies: [
                .product(name: "Shardwise", package: "Shardwise"),
                .product(name: "ShardwiseThreads", package: "Shardwise"),
            ]
        ),

        // MARK: - Summary table (GB/s, ratios to the probe, the bars)
        .executableTarget(
            name: "BenchSummary",
            dependencies: ["BenchSupport"]
        ),

        // MARK: - package-benchmark suites
        .executableTarget(
            name: "Kernel",
            dependencies: [
                "BenchSupport",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Kernel",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Training",
            dependencies: [
                "BenchSupport",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Training",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SocketBenchmarks",
            dependencies: [
                .product(name: "Shardwise", package: "Shardwise"),
                .product(name: "ShardwiseSockets", package: "Shardwise"),
                .product(name: "ShardwiseThreads", package: "Shardwise"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SocketBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SimulationBenchmarks",
            dependencies: [
                .product(name: "Shardwise", package: "Shardwise"),
                .product(name: "ShardwiseSimulation", package: "Shardwise"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SimulationBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
