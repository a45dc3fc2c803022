// swift-tools-version: 6.1
import PackageDescription

// Run on demand, in release mode: the project's fast paths against the standard tools, in one run.
//   swift run -c release --package-path Benchmarks kcov-benchmarks --vmlinux PATH   (scan, symbolizer)
//   swift run -c release --package-path Benchmarks kcov-benchmarks signal          (edge signal, new signal)
//   swift run -c release --package-path Benchmarks kcov-benchmarks --trace-file    (trace files: our reader/writer against Foundation's JSON)
let package = Package(
    name: "KernelCoverageBenchmarks",
    dependencies: [.package(name: "KernelCoverage", path: "..")],
    targets: [
        // The C and C++ the signal benchmark compares against: std::unordered_set, syzkaller's dedup table.
        .target(name: "SignalBaselines", path: "Sources/SignalBaselines"),
        .executableTarget(
            name: "kcov-benchmarks",
            dependencies: [
                .product(name: "KernelImage", package: "KernelCoverage"),
                .product(name: "KernelSymbolizer", package: "KernelCoverage"),
                .product(name: "CoverageSignal", package: "KernelCoverage"),
                "SignalBaselines",
                .product(name: "TraceFile", package: "KernelCoverage"),
                .product(name: "CoverageAPI", package: "KernelCoverage"),
            ],
            path: "Sources/KcovBenchmarks",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")]
        ),
    ]
)
