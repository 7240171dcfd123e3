// swift-tools-version: 6.1
import PackageDescription

// libFuzzer harnesses for everything that reads bytes a stranger controls: the socket backend's
// frame decoder and handshake, and the CSV, LIBSVM and NPY readers. A nested package (like
// Benchmarks/) so that the root build never compiles them; `make fuzz` builds them with
// `-sanitize=fuzzer,address` and runs each. See docs/fuzzing.md.
let package = Package(
    name: "ShardwiseFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Shardwise", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // MARK: - Shared input plumbing (libFuzzer's driver, splitting a stream into reads, repairing checksums)
        .target(name: "CLibFuzzer"),
        .target(
            name: "FuzzSupport",
            dependencies: ["CLibFuzzer", .product(name: "ShardwiseSockets", package: "Shardwise")]
        ),

        // MARK: - Harnesses (one executable each, whose main runs libFuzzer's driver)
        .executableTarget(
            name: "FuzzFrame",
            dependencies: [
                "FuzzSupport",
                .product(name: "ShardwiseSockets", package: "Shardwise"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "FuzzHandshake",
            dependencies: [
                "FuzzSupport",
                .product(name: "ShardwiseSockets", package: "Shardwise"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "FuzzCSV", dependencies: ["FuzzSupport", .product(name: "Shardwise", package: "Shardwise")]),
        .executableTarget(name: "FuzzLIBSVM", dependencies: ["FuzzSupport", .product(name: "Shardwise", package: "Shardwise")]),
        .executableTarget(name: "FuzzNPY", dependencies: ["FuzzSupport", .product(name: "Shardwise", package: "Shardwise")]),
    ]
)
