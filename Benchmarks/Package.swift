// swift-tools-version: 6.1
import PackageDescription

// Run on demand, in release mode: the project's fast paths against the standard tools on one file.
//   swift run -c release --package-path Benchmarks kcov-benchmarks --vmlinux PATH
//   swift run -c release --package-path Benchmarks kcov-benchmarks --trace-file   (trace files only)
let package = Package(
    name: "KernelCoverageBenchmarks",
    dependencies: [.package(name: "KernelCoverage", path: "..")],
    targets: [
        .executableTarget(
            name: "kcov-benchmarks",
            dependencies: [
                .product(name: "KernelImage", package: "KernelCoverage"),
                .product(name: "KernelSymbolizer", package: "KernelCoverage"),
                .product(name: "TraceFile", package: "KernelCoverage"),
                .product(name: "CoverageAPI", package: "KernelCoverage"),
            ],
            path: "Sources/KcovBenchmarks",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")]
        ),
    ]
)
