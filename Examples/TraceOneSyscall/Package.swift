// swift-tools-version: 6.1
import PackageDescription

// A downstream package: depends on KernelCoverage by path and uses only its public products.
let package = Package(
    name: "TraceOneSyscall",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "KernelCoverage", path: "../..")],
    targets: [
        // Picks a backend with the library's selection and collects one syscall, then a two-worker
        // fuzz loop (open in the parent, enable in each worker); runs in the test kernel.
        .executableTarget(
            name: "trace-one-syscall",
            dependencies: [
                .product(name: "CoverageAPI", package: "KernelCoverage"),
                .product(name: "BackendSelection", package: "KernelCoverage"),
            ],
            path: "Sources/TraceOneSyscall"
        ),
        // The same client code against a simulated kernel: no kcov device needed.
        .executableTarget(
            name: "simulated-fuzz-loop",
            dependencies: [
                .product(name: "CoverageAPI", package: "KernelCoverage"),
                .product(name: "SimulatedKernels", package: "KernelCoverage"),
            ],
            path: "Sources/SimulatedFuzzLoop"
        ),
    ]
)
