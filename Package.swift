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
        .library(name: "FreeBSDBackend", targets: ["FreeBSDBackend"]),
        .library(name: "OpenBSDBackend", targets: ["OpenBSDBackend"]),
        .library(name: "GVisorBackend", targets: ["GVisorBackend"]),
        .library(name: "Conformance", targets: ["Conformance"]),
        .library(name: "KprobeBackend", targets: ["KprobeBackend"]),
        .library(name: "BackendSelection", targets: ["BackendSelection"]),
        .library(name: "SimulatedKernels", targets: ["SimulatedKernels"]),
        .library(name: "CoverageSignal", targets: ["CoverageSignal"]),
        .library(name: "KernelImage", targets: ["KernelImage"]),
        .library(name: "KernelSymbolizer", targets: ["KernelSymbolizer"]),
        .library(name: "TraceFile", targets: ["TraceFile"]),
        .library(name: "CoverageReport", targets: ["CoverageReport"]),
        .library(name: "KernelPreflight", targets: ["KernelPreflight"]),
        .executable(name: "kcovctl", targets: ["kcovctl"]),
        // The agent `kcovctl trace --follow` injects with LD_PRELOAD (Docs/follow.md).
        .library(name: "KcovFollowAgent", type: .dynamic, targets: ["KcovFollowAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C conventions at the syscall boundary: ioctl with an unsigned long, the fork-enable-exec child.
        .target(name: "CKernelShim"),
        // What the follow agent and the collector share: socket messages, the control page (Docs/follow.md).
        .target(name: "CKcovFollowProtocol"),
        // The LD_PRELOAD agent of whole-run coverage: a kcov per task, every fd handed to the collector (Docs/follow.md).
        .target(
            name: "KcovFollowAgent", dependencies: ["CKcovFollowProtocol"],
            // Only libc: libraries the agent does not use are not loaded into every traced process.
            linkerSettings: [.unsafeFlags(["-nostartfiles"])]),
        // Whole-run coverage's collector (Docs/follow.md): starts a command with the agent, takes every
        // task's kcov fd over a Unix socket, reads each buffer when its task is over, splits it at execs.
        .target(
            name: "WholeRun", dependencies: ["CoverageAPI", "TraceFile", "CKcovFollowProtocol", "CKernelShim", "KernelSeam", "LinuxBackend"], swiftSettings: swiftSettings),
        // The seam every line of Swift above it is tested through: a protocol and its Glibc implementation.
        .target(name: "KernelSeam", dependencies: ["CKernelShim", "CoverageAPI"], swiftSettings: swiftSettings),
        // Memory protection keys (pkey_alloc, pkey_mprotect, PKRU) for a write-protected kcov buffer.
        .target(name: "CBufferProtection"),
        // Clients' front door (CoverageCollector, CollectorHandoff, Trace, CoverageError) and the two
        // driver protocols backends implement (KcovDriver, FunctionCounterDriver).
        .target(name: "CoverageAPI", dependencies: ["CBufferProtection"], swiftSettings: swiftSettings),
        // Linux kcov (Docs/kcov-linux.md): ABI table, errno meanings, remote handles, the gVisor refusal.
        .target(name: "LinuxBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // NetBSD kcov(4) (Docs/kcov-netbsd.md): ioccom-encoded requests, arguments by pointer, VHCI remote attach.
        .target(name: "NetBSDBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // FreeBSD kcov(4) (Docs/kcov-freebsd.md): `_IOWINT` requests with arguments by value, modes PC 0 / CMP 1, no remote.
        .target(name: "FreeBSDBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // OpenBSD kcov(4) (Docs/kcov-openbsd.md): NetBSD's request numbers under OpenBSD's rules, modes PC 1 / CMP 2,
        // remote coverage of the process's kernel tasks (KIOREMOTEATTACH).
        .target(name: "OpenBSDBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // Adapters, one per backend with kernel-specific checks, named <Backend>Conformance: each
        // conforms its backend (and, where that kernel's own tests need process operations, its
        // reference model) to the Conformance library's protocol for those checks.
        // NetBSD's own kcov test list: NetBSDKcovOperations, and the model's LWPs and process exit.
        .target(
            name: "NetBSDConformance", dependencies: ["NetBSDBackend", "ReferenceModels", "Conformance", "KernelSeam", "CoverageAPI"],
            swiftSettings: swiftSettings),
        // FreeBSD's own kcov test list: FreeBSDKcovOperations, and the model's threads and process exit.
        .target(
            name: "FreeBSDConformance", dependencies: ["FreeBSDBackend", "ReferenceModels", "Conformance", "KernelSeam", "CoverageAPI"],
            swiftSettings: swiftSettings),
        // OpenBSD's own kcov regress list: OpenBSDKcovOperations, and the model's threads, forks, tasks and exit.
        .target(
            name: "OpenBSDConformance", dependencies: ["OpenBSDBackend", "ReferenceModels", "Conformance", "KernelSeam", "CoverageAPI"],
            swiftSettings: swiftSettings),
        // Function-level coverage from counting kprobes (the kprobe PMU) on kernels without kcov.
        .target(name: "KprobeBackend", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // The function.* checks: FunctionCoverageOperations for the kprobe backend.
        .target(
            name: "KprobeConformance", dependencies: ["KprobeBackend", "Conformance", "CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // gVisor's kcov emulation (Docs/kcov-gvisor.md): Linux's numbers, gVisor's rules as
        // capabilities, synthetic PCs, `runsc symbolize` parsing, detection.
        .target(name: "GVisorBackend", dependencies: ["CoverageAPI", "KernelSeam", "LinuxBackend"], swiftSettings: swiftSettings),
        // Every backend by name, availability with reasons, and `auto`: the kernel told by uname first, then the gVisor rule.
        .target(
            name: "BackendSelection",
            dependencies: ["CoverageAPI", "KernelSeam", "LinuxBackend", "NetBSDBackend", "FreeBSDBackend", "OpenBSDBackend", "GVisorBackend", "KprobeBackend"],
            swiftSettings: swiftSettings),
        // Traces as fuzzing signal: PC sets, syzkaller-compatible edges, new-coverage detection
        // shared by workers, comparison hints.
        .target(name: "CoverageSignal", dependencies: ["CoverageAPI"], swiftSettings: swiftSettings),
        // elfutils (libelf, libdw) from Debian, found through pkg-config.
        .systemLibrary(name: "CElfutils", pkgConfig: "libdw", providers: [.apt(["libdw-dev"])]),
        // A kernel module's .ko (ET_REL) laid out at fixed addresses with its relocations applied, so the
        // scanner and the symbolizer read it as they read a vmlinux (Docs/modules.md).
        .target(name: "RelocatableObject", dependencies: ["CElfutils"], swiftSettings: swiftSettings),
        // A vmlinux (or a module's .ko) read with libelf: sections, symbols, and the coverable PCs (call
        // sites of the coverage callbacks), the denominator of every report.
        .target(name: "KernelImage", dependencies: ["CElfutils", "RelocatableObject"], swiftSettings: swiftSettings),
        // Kernel PC -> function, file, line, with inlined frames, from the vmlinux's DWARF: its own reader
        // (Docs/symbolizer.md), libelf for sections and symbols.
        .target(name: "KernelSymbolizer", dependencies: ["CElfutils", "CoverageAPI", "RelocatableObject"], swiftSettings: swiftSettings),
        // The versioned trace file (JSON) kcovctl writes and reports read: one typed owner of the format.
        .target(name: "TraceFile", dependencies: ["CoverageAPI"], swiftSettings: swiftSettings),
        // Merged coverage files (traces or set files) -> per-file, per-function and per-line coverage;
        // summary, LCOV, HTML tree, JSON, subsystem groups, diffs, Cobertura, syzkaller's JSONL and CSV.
        .target(
            name: "CoverageReport", dependencies: ["CoverageAPI", "TraceFile", "CoverageSignal", "KernelImage", "KernelSymbolizer"], swiftSettings: swiftSettings),
        // Named checks every backend must pass, run from tests, kcovctl and the guest alike (no XCTest/Testing);
        // KernelSeam only for POSIXThread, the real threads that per-thread coverage needs.
        .target(name: "Conformance", dependencies: ["CoverageAPI", "KernelSeam"], swiftSettings: swiftSettings),
        // Builds and caches the project's kcov test kernels (Debian's linux-source-6.12 and 6.1) and its test module.
        .target(name: "TestKernel", resources: [.copy("TestModule")], swiftSettings: swiftSettings),
        // Whether a user's kernel can run the guest, checked in seconds before booting it (Docs/guest-kernels.md):
        // the bzImage's x86 boot header and payload, its embedded config (or a .config), the vmlinux that matches it.
        .target(name: "KernelPreflight", dependencies: ["CoverageAPI", "CElfutils", "RelocatableObject"], swiftSettings: swiftSettings),
        // Boots a kernel under QEMU with the host root over 9p and runs one command in the guest.
        .target(name: "VirtualMachine", swiftSettings: swiftSettings),
        // For tests only (no product): the built kcovctl, programs run with their output captured, and
        // the misuses every kcov backend is compared on.
        .target(name: "TestSupport", dependencies: ["KernelSeam", "CoverageAPI"], swiftSettings: swiftSettings),
        // Simulated kcov drivers behind the seam, written from Docs/: the models the
        // conformance suite is measured against.
        .target(name: "ReferenceModels", dependencies: ["KernelSeam", "CoverageAPI"], swiftSettings: swiftSettings),
        // The reference models behind the real backends, as a public product: coverage without a
        // kernel, for testing what consumes it (like swift-nio's NIOEmbedded).
        .target(
            name: "SimulatedKernels",
            dependencies: ["CoverageAPI", "ReferenceModels", "LinuxBackend", "NetBSDBackend", "FreeBSDBackend", "OpenBSDBackend", "GVisorBackend", "KprobeBackend"],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "kcovctl",
            dependencies: [
                "CoverageAPI", "BackendSelection", "LinuxBackend", "NetBSDBackend", "FreeBSDBackend", "OpenBSDBackend", "GVisorBackend", "KprobeBackend",
                "Conformance", "NetBSDConformance", "FreeBSDConformance", "OpenBSDConformance", "KprobeConformance", "ReferenceModels", "TestKernel", "VirtualMachine",
                "KernelPreflight", "KernelImage", "KernelSymbolizer", "CoverageReport", "TraceFile", "CoverageSignal", "WholeRun",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoverageAPITests",
            dependencies: ["CoverageAPI", "LinuxBackend", "KernelSeam", "ReferenceModels", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BackendSelectionTests",
            dependencies: [
                "BackendSelection", "CoverageAPI", "LinuxBackend", "NetBSDBackend", "FreeBSDBackend", "OpenBSDBackend", "GVisorBackend", "KprobeBackend",
                "ReferenceModels",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "CoverageSignalTests", dependencies: ["CoverageSignal", "CoverageAPI"], swiftSettings: swiftSettings),
        .testTarget(name: "SimulatedKernelsTests", dependencies: ["SimulatedKernels", "CoverageAPI"], swiftSettings: swiftSettings),
        // Run inside the test kernel only (GuestSuiteTests boots it): the real /sys/kernel/debug/kcov.
        .testTarget(
            name: "RealKernelTests",
            dependencies: [
                "CoverageAPI", "LinuxBackend", "KprobeBackend", "KprobeConformance", "Conformance", "ReferenceModels", "KernelSeam", "TraceFile",
                "CoverageSignal", "TestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        // Runs the built kcovctl: exit statuses, errors, and the --vm path.
        .testTarget(name: "KCovCtlTests", dependencies: ["kcovctl", "CoverageAPI", "GVisorBackend", "TraceFile", "TestSupport", "TestKernel"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GuestSuiteTests",
            dependencies: ["TestKernel", "VirtualMachine", "Conformance", "LinuxBackend", "ReferenceModels", "TestSupport", "TraceFile", "KernelImage", "kcovctl"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["Conformance", "CoverageAPI", "LinuxBackend", "ReferenceModels", "KernelSeam", "KprobeBackend", "KprobeConformance", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetBSDBackendTests",
            dependencies: ["NetBSDBackend", "NetBSDConformance", "CoverageAPI", "KernelSeam", "ReferenceModels", "Conformance", "LinuxBackend", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        // The FreeBSD and OpenBSD backends: pinned numbers, their own kernels' tests as checks with a
        // defect for each, the shared suite, Linux's error codes for the same misuses, and the one
        // client function over all five models.
        .testTarget(
            name: "BSDBackendTests",
            dependencies: [
                "FreeBSDBackend", "FreeBSDConformance", "OpenBSDBackend", "OpenBSDConformance", "NetBSDBackend", "CoverageAPI", "KernelSeam",
                "ReferenceModels", "Conformance", "LinuxBackend", "GVisorBackend", "TestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GVisorBackendTests",
            dependencies: ["GVisorBackend", "CoverageAPI", "CoverageReport", "KernelSeam", "ReferenceModels", "Conformance", "LinuxBackend", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        // The whole-run collector's reading of control pages and images, and its refusals (no kernel needed).
        .testTarget(name: "WholeRunTests", dependencies: ["WholeRun", "CKcovFollowProtocol", "CoverageAPI"], swiftSettings: swiftSettings),
        .testTarget(name: "KprobeBackendTests", dependencies: ["KprobeBackend", "CoverageAPI", "ReferenceModels"], swiftSettings: swiftSettings),
        // On the test kernel's vmlinux: symbols against addr2line.
        .testTarget(name: "KernelSymbolizerTests", dependencies: ["KernelSymbolizer", "KernelImage", "TestKernel", "TestSupport"], swiftSettings: swiftSettings),
        // On the test kernel's vmlinux: coverable PCs against objdump, a VM trace's PCs all coverable,
        // reports through genhtml; and the report's counting on small tables.
        .testTarget(
            name: "CoverageReportTests", dependencies: ["CoverageReport", "KernelImage", "KernelSymbolizer", "TestKernel", "kcovctl", "TraceFile", "TestSupport"],
            // Fixtures/coverage-04.dtd: Cobertura's DTD, which the Cobertura XML is validated against.
            exclude: ["Fixtures"], swiftSettings: swiftSettings),
        // The preflight on real kernels (the test kernel passes; Debian's stock cloud kernel is refused
        // naming what it lacks) and on synthetic bzImages, vmlinuxes and configs built to be wrong.
        .testTarget(
            name: "KernelPreflightTests", dependencies: ["KernelPreflight", "LinuxBackend", "KprobeBackend", "TestKernel", "TestSupport", "kcovctl"], swiftSettings: swiftSettings),
        // Round trips, every older `kcovctl trace` JSON shape, rawcover, and malformed files' messages.
        .testTarget(name: "TraceFileTests", dependencies: ["TraceFile", "CoverageAPI"], swiftSettings: swiftSettings),
        // Fault injection at the seam: every (call, n, errno) of each collector, backend, session,
        // fork server, spawn and the trace command's path over the models; typed errors, no leaks.
        .testTarget(
            name: "FaultInjectionTests",
            dependencies: [
                "TestSupport", "CoverageAPI", "KernelSeam", "ReferenceModels", "LinuxBackend", "NetBSDBackend", "FreeBSDBackend",
                "OpenBSDBackend", "GVisorBackend", "KprobeBackend", "BackendSelection", "kcovctl",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReferenceModelTests",
            dependencies: ["ReferenceModels", "KernelSeam"],
            swiftSettings: swiftSettings
        ),
    ]
)
