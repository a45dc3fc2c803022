// swift-tools-version: 6.1
import PackageDescription

// A downstream package: depends on KernelCoverage by path and uses only its public products.
let package = Package(
    name: "TraceOneSyscall",
    dependencies: [.package(name: "KernelCoverage", path: "../..")],
    targets: [
        .executableTarget(
            name: "trace-one-syscall",
            dependencies: [
                .product(name: "CoverageAPI", package: "KernelCoverage"),
                .product(name: "LinuxBackend", package: "KernelCoverage"),
            ],
            path: "Sources/TraceOneSyscall"
        ),
    ]
)
