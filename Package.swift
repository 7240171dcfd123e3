// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Shardwise",
    platforms: [.macOS(.v15)],
    // MARK: - Public API
    products: [
        .library(name: "Shardwise", targets: ["Shardwise"]),
        .library(name: "ShardwiseThreads", targets: ["ShardwiseThreads"]),
        .library(name: "ShardwiseSockets", targets: ["ShardwiseSockets"]),
        .library(name: "ShardwiseSimulation", targets: ["ShardwiseSimulation"]),
        .library(name: "ShardwiseMPI", targets: ["ShardwiseMPI"]),
        .executable(name: "shardwise", targets: ["shardwise"]),
    ],
    traits: [
        .trait(name: "MPI", description: "Build the MPI backend (needs OpenMPI: libopenmpi-dev)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Child processes without libdispatch (its pipe sources crash when a child exits).
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    ],
    targets: [
        // MARK: - Core
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // Hand-written AVX2+FMA fused gradient kernels, dispatched at run time (any x86-64 runs the binary),
        // and the portable sparse (CSR) kernels.
        .target(name: "CShardwiseKernels"),
        // zlib, to inflate the deflate members of scipy's .npz files.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "Shardwise",
            dependencies: ["COpenBLAS", "CShardwiseKernels", "CZlib"]
        ),

        // MARK: - Backends
        .target(
            name: "ShardwiseThreads",
            dependencies: ["Shardwise"]
        ),
        .target(
            name: "ShardwiseSockets",
            dependencies: [
                "Shardwise",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        .target(
            name: "ShardwiseSimulation",
            dependencies: ["Shardwise"]
        ),
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        .target(
            name: "ShardwiseMPI",
            dependencies: [
                "Shardwise",
                .target(name: "CMPI", condition: .when(traits: ["MPI"])),
            ]
        ),

        // MARK: - Command-line tool
        .executableTarget(
            name: "shardwise",
            dependencies: [
                "Shardwise",
                "ShardwiseThreads",
                "ShardwiseSockets",
                "ShardwiseSimulation",
                "ShardwiseMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: - Examples (compiled by every build, so they stay correct)
        .executableTarget(
            name: "EmbeddingExample",
            dependencies: ["Shardwise", "ShardwiseThreads"],
            path: "Examples/EmbeddingExample"
        ),

        // MARK: - Tests
        .target(
            name: "_TestSupport",
            dependencies: ["Shardwise", "ShardwiseSockets"],   // ShardwiseSockets: ChildProcess, to run the binary
            path: "Tests/_TestSupport"
        ),
        .testTarget(name: "ShardwiseTests", dependencies: ["Shardwise", "_TestSupport"]),
        .testTarget(name: "ShardwiseThreadsTests", dependencies: ["ShardwiseThreads", "_TestSupport"]),
        .testTarget(
            name: "ShardwiseSocketsTests",
            dependencies: ["ShardwiseSockets", "_TestSupport", .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "ShardwiseSimulationTests", dependencies: ["ShardwiseSimulation", "_TestSupport"]),
        // Runs the built `shardwise` under real mpirun (with the trait) and compares with threads.
        .testTarget(name: "ShardwiseMPITests", dependencies: ["ShardwiseMPI", "ShardwiseThreads", "_TestSupport"]),
    ]
)
