// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "KernelCoverage",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CoverageAPI", targets: ["CoverageAPI"]),
        .library(name: "LinuxBackend", targets: ["LinuxBackend"]),
        .library(name: "NetBSDBackend", targets: ["NetBSDBackend"]),
        .library(name: "GVisorBackend", targets: ["GVisorBackend"]),
        .library(name: "Conformance", targets: ["Conformance"]),
        .library(name: "KprobeBackend", targets: ["KprobeBackend"]),
        .library(name: "KernelImage", targets: ["KernelImage"]),
        .library(name: "KernelSymbolizer", targets: ["KernelSymbolizer"]),
        .library(name: "TraceFile", targets: ["TraceFile"]),
        .library(name: "CoverageReport", targets: ["CoverageReport"]),
        .executable(name: "kcovctl", targets: ["kcovctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C conventions at the syscall boundary: ioctl with an unsigned long, the fork-enable-exec child.
        .target(name: "CKernelShim"),
        // The seam every line of Swift above it is tested through: a protocol and its Glibc implementation.
        .target(name: "KernelSeam", dependencies: ["CKernelShim", "CoverageAPI"], swiftSettings: swiftSettings),
        // Clients' front door (sessions, traces, errors) and the backend protocol drivers implement.
        .target(name: "CoverageAPI", swiftSettings: swiftSettings),
        .target(name: "LinuxBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        .target(name: "NetBSDBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // Lets the NetBSD model and backend run NetBSD's own kcov test list from the Conformance library.
        .target(
            name: "NetBSDConformanceSupport", dependencies: ["NetBSDBackend", "ReferenceModels", "Conformance", "KernelSeam", "CoverageAPI"],
            swiftSettings: swiftSettings),
        // Function-level coverage from counting kprobes (the kprobe PMU) on kernels without kcov.
        .target(name: "KprobeBackend", dependencies: ["CoverageAPI", "KernelSeam", "CKernelShim"], swiftSettings: swiftSettings),
        // Lets the kprobe backend run the function-granularity checks of the Conformance library.
        .target(
            name: "KprobeConformanceSupport", dependencies: ["KprobeBackend", "Conformance", "CoverageAPI"], swiftSettings: swiftSettings),
        .target(name: "GVisorBackend", dependencies: ["CoverageAPI", "KernelSeam", "LinuxBackend"], swiftSettings: swiftSettings),
        // elfutils (libelf, libdw) from Debian, found through pkg-config.
        .systemLibrary(name: "CElfutils", pkgConfig: "libdw", providers: [.apt(["libdw-dev"])]),
        // A vmlinux read with libelf: sections, symbols, and the coverable PCs (call sites of the
        // coverage callbacks), the denominator of every report.
        .target(name: "KernelImage", dependencies: ["CElfutils"], swiftSettings: swiftSettings),
        // Kernel PC -> function, file, line, with inlined frames, from the vmlinux's DWARF (libdw).
        .target(name: "KernelSymbolizer", dependencies: ["CElfutils", "CoverageAPI"], swiftSettings: swiftSettings),
        // The versioned trace file (JSON) kcovctl writes and reports read: one typed owner of the format.
        .target(name: "TraceFile", dependencies: ["CoverageAPI"], swiftSettings: swiftSettings),
        // Merged coverage files -> per-file, per-function and per-line coverage; summary, LCOV, HTML, JSON.
        .target(name: "CoverageReport", dependencies: ["CoverageAPI", "TraceFile", "KernelImage", "KernelSymbolizer"], swiftSettings: swiftSettings),
        // Named checks every backend must pass, run from tests, kcovctl and the guest alike (no XCTest/Testing).
        .target(name: "Conformance", dependencies: ["CoverageAPI"], swiftSettings: swiftSettings),
        // Builds and caches the project's own kcov test kernel from Debian's linux-source-6.12.
        .target(name: "TestKernel", swiftSettings: swiftSettings),
        // Boots a kernel under QEMU with the host root over 9p and runs one command in the guest.
        .target(name: "VirtualMachine", swiftSettings: swiftSettings),
        // Simulated kcov drivers behind the seam, written from shared/reference: the models the
        // conformance suite is measured against.
        .target(name: "ReferenceModels", dependencies: ["KernelSeam", "KprobeBackend"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "kcovctl",
            dependencies: [
                "CoverageAPI", "LinuxBackend", "NetBSDBackend", "GVisorBackend", "KprobeBackend", "Conformance", "NetBSDConformanceSupport", "KprobeConformanceSupport", "ReferenceModels", "TestKernel", "VirtualMachine",
                "KernelImage", "KernelSymbolizer", "CoverageReport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoverageAPITests",
            dependencies: ["CoverageAPI", "LinuxBackend", "KernelSeam", "ReferenceModels"],
            swiftSettings: swiftSettings
        ),
        // Run inside the test kernel only (GuestSuiteTests boots it): the real /sys/kernel/debug/kcov.
        .testTarget(
            name: "RealKernelTests",
            dependencies: ["CoverageAPI", "LinuxBackend", "KprobeBackend", "KprobeConformanceSupport", "Conformance", "ReferenceModels"],
            swiftSettings: swiftSettings
        ),
        // Runs the built kcovctl: exit statuses, errors, and the --vm path.
        .testTarget(name: "KCovCtlTests", dependencies: ["kcovctl", "CoverageAPI", "GVisorBackend"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GuestSuiteTests",
            dependencies: ["TestKernel", "VirtualMachine", "Conformance", "LinuxBackend", "ReferenceModels"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["Conformance", "CoverageAPI", "LinuxBackend", "ReferenceModels", "KernelSeam", "KprobeBackend", "KprobeConformanceSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetBSDBackendTests",
            dependencies: ["NetBSDBackend", "NetBSDConformanceSupport", "CoverageAPI", "KernelSeam", "ReferenceModels", "Conformance", "LinuxBackend"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GVisorBackendTests",
            dependencies: ["GVisorBackend", "CoverageAPI", "CoverageReport", "KernelSeam", "ReferenceModels", "Conformance", "LinuxBackend"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "KprobeBackendTests", dependencies: ["KprobeBackend", "CoverageAPI", "ReferenceModels"], swiftSettings: swiftSettings),
        // On the test kernel's vmlinux: symbols against addr2line.
        .testTarget(name: "KernelSymbolizerTests", dependencies: ["KernelSymbolizer", "KernelImage", "TestKernel"], swiftSettings: swiftSettings),
        // On the test kernel's vmlinux: coverable PCs against objdump, a VM trace's PCs all coverable,
        // reports through genhtml; and the report's counting on small tables.
        .testTarget(
            name: "CoverageReportTests", dependencies: ["CoverageReport", "KernelImage", "KernelSymbolizer", "TestKernel", "kcovctl"],
            swiftSettings: swiftSettings),
        // Round trips, every older `kcovctl trace` JSON shape, rawcover, and malformed files' messages.
        .testTarget(name: "TraceFileTests", dependencies: ["TraceFile", "CoverageAPI"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ReferenceModelTests",
            dependencies: ["ReferenceModels", "KernelSeam"],
            swiftSettings: swiftSettings
        ),
    ]
)
