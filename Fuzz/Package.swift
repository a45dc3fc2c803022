// swift-tools-version: 6.1
// libFuzzer harnesses for every parser of outside data (Fuzz/README.md), built and run on demand by
// Scripts/fuzz.sh; a separate package, so KernelCoverage's own dependency graph has no fuzzer in it.
// Build with `-Xswiftc -sanitize=fuzzer -Xswiftc -enable-testing -c release` (the script does):
// every Swift module gets libFuzzer's coverage instrumentation; each harness's main hands its
// test function to libFuzzer's driver.
import PackageDescription

let package = Package(
    name: "KernelCoverageFuzz",
    dependencies: [.package(name: "KernelCoverage", path: "..")],
    targets: [
        // libFuzzer's LLVMFuzzerRunDriver, declared for Swift.
        .target(name: "CFuzzerDriver"),
        // Trace files: rawcover and the trace JSON (TraceFile.decode), and the writer's round trip.
        .executableTarget(
            name: "FuzzTrace", dependencies: ["CFuzzerDriver", .product(name: "TraceFile", package: "KernelCoverage")]),
        // Signal set files (SignalSetFile.decode), and the encoder's round trip.
        .executableTarget(
            name: "FuzzSignalSet", dependencies: ["CFuzzerDriver", .product(name: "CoverageSignal", package: "KernelCoverage")]),
        // `runsc symbolize` output (GVisorSymbolTable(parsing:)).
        .executableTarget(
            name: "FuzzGVisorSymbolize", dependencies: ["CFuzzerDriver", .product(name: "GVisorBackend", package: "KernelCoverage")]),
        // The ELF reader: KernelImage's header, sections and symbols, the coverable-PC scan.
        .executableTarget(
            name: "FuzzKernelImage", dependencies: ["CFuzzerDriver", .product(name: "KernelImage", package: "KernelCoverage")]),
        // The text files the kprobe backend reads: /proc/kallsyms, the kprobe blacklist, the PMU
        // type, perf_event_paranoid, a function list; through a whole KprobeSession on the model.
        .executableTarget(
            name: "FuzzKprobeText",
            dependencies: [
                "CFuzzerDriver", .product(name: "KprobeBackend", package: "KernelCoverage"), .product(name: "SimulatedKernels", package: "KernelCoverage"),
                .product(name: "CoverageAPI", package: "KernelCoverage"),
            ]),
        // `--kernel`'s preflight: a bzImage's boot header, a vmlinux (build id, banner, embedded config), a .config.
        .executableTarget(
            name: "FuzzKernelPreflight",
            dependencies: [
                "CFuzzerDriver", .product(name: "KernelPreflight", package: "KernelCoverage"),
                .product(name: "LinuxBackend", package: "KernelCoverage"), .product(name: "KprobeBackend", package: "KernelCoverage"),
            ]),
        // The kernel's MAINTAINERS file (CoverageReport's Maintainers) and lookups in it.
        .executableTarget(
            name: "FuzzMaintainers", dependencies: ["CFuzzerDriver", .product(name: "CoverageReport", package: "KernelCoverage")]),
    ]
)
