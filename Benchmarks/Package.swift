// swift-tools-version: 6.1
import PackageDescription

// Run on demand, in release mode: the project's fast paths against the standard tools, in one run.
//   swift run -c release --package-path Benchmarks kcov-benchmarks --vmlinux PATH   (scan, symbolizer)
//       [--debian-vmlinux "$(Benchmarks/fetch-debian-vmlinux.sh)"]                 (and Debian's cloud kernel: 20,000 PCs, time and peak memory)
//   swift run -c release --package-path Benchmarks kcov-benchmarks signal          (edge signal, new signal)
//   swift run -c release --package-path Benchmarks kcov-benchmarks --trace-file    (trace files: our reader/writer against Foundation's JSON)
//   kcovctl vm run -- "$(swift build -c release --package-path Benchmarks --show-bin-path)/kcov-benchmarks" loop
//                                                                                   (the per-syscall loop against its C twin, in the test kernel)
//   kcovctl vm run -- "$(swift build -c release --package-path Benchmarks --show-bin-path)/kcov-benchmarks" kprobe
//                                                                                   (a probed function's cost against a tracefs kprobe event, and the largest probe set, in the test kernel)
//   kcovctl vm run -- "$(swift build -c release --package-path Benchmarks --show-bin-path)/kcov-benchmarks" follow "$PWD/.build/debug/kcovctl" [KSELFTEST-RUNNER]
//                                                                                   (whole-run tracing against untraced and main-thread-only, in the test kernel)
let package = Package(
    name: "KernelCoverageBenchmarks",
    dependencies: [.package(name: "KernelCoverage", path: "..")],
    targets: [
        // The C and C++ the benchmarks compare against: std::unordered_set and syzkaller's dedup
        // table (signal), the kcov documentation's per-syscall loop with an rdtsc clock (the loop).
        .target(name: "Baselines", path: "Sources/Baselines"),
        .executableTarget(
            name: "kcov-benchmarks",
            dependencies: [
                .product(name: "KernelImage", package: "KernelCoverage"),
                .product(name: "KernelSymbolizer", package: "KernelCoverage"),
                .product(name: "CoverageSignal", package: "KernelCoverage"),
                "Baselines",
                .product(name: "LinuxBackend", package: "KernelCoverage"),
                .product(name: "KprobeBackend", package: "KernelCoverage"),
                .product(name: "TraceFile", package: "KernelCoverage"),
                .product(name: "CoverageAPI", package: "KernelCoverage"),
            ],
            path: "Sources/KcovBenchmarks",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")]
        ),
    ]
)
