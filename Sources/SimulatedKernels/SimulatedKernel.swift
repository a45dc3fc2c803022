public import CoverageAPI
import FreeBSDBackend
import GVisorBackend
import KprobeBackend
import LinuxBackend
import NetBSDBackend
import OpenBSDBackend
import ReferenceModels

/// A kernel without a kernel: one of the project's reference models behind the real backend
/// that talks to it, for testing code that consumes coverage (a fuzzer's signal, a report) with
/// no kcov device, deterministically, on any machine — as swift-nio's `NIOEmbedded` is for
/// channels.
///
/// The models are the executable form of the specifications in `Docs/`: each enforces its
/// kernel's call order and errnos, hands out real shared memory, and records PCs the way its
/// kernel does, per thread. The Linux model gives the same conformance results as the real
/// Linux 6.12 kernel, check by check (`kcovctl conformance --backend linux --vm`).
///
/// ```swift
/// let kernel = SimulatedKernel.linux()
/// var collector = try CoverageCollector(backend: kernel.backend, bufferWords: 512)
/// try collector.enable()
/// try kernel.syscall(covering: [0xffffffff81000010, 0xffffffff81000123])
/// let trace = try collector.read()     // exactly those two PCs
/// ```
public struct SimulatedKernel: Sendable {
    /// The backend over the model: give it to ``CoverageCollector`` as a real one.
    public let backend: any CoverageBackend
    /// What one ``probe()`` records (PCs in order; for function counters, the functions it enters).
    public let probeCoverage: Trace
    private let record: (@Sendable ([UInt64], [ComparisonRecord]) -> Void)?
    private let enter: (@Sendable ([String]) -> Void)?
    private let held: @Sendable () -> Resources

    /// What the model still holds for this process: all zero once every collector is released.
    public struct Resources: Sendable, Hashable {
        /// Open kcov descriptors or probe descriptors.
        public var descriptors: Int
        /// Live mappings of kcov buffers.
        public var mappings: Int

        public init(descriptors: Int, mappings: Int) {
            self.descriptors = descriptors
            self.mappings = mappings
        }
    }

    /// Linux kcov 6.12 (`Docs/kcov-linux.md`): per-thread, ordered PCs and comparison records.
    public static func linux() -> SimulatedKernel {
        let model = LinuxKcovModel()
        return kcov(LinuxKcovBackend(kernel: model), probe: LinuxKcovModel.probePCs, descriptors: { model.openDescriptorCount }, mappings: { model.liveMappingCount }) {
            model.syscall(running: KcovKernelPath(pcs: $0, comparisons: $1))
        }
    }

    /// NetBSD kcov(4) (`Docs/kcov-netbsd.md`): per-LWP, ordered PCs and comparison records.
    public static func netbsd() -> SimulatedKernel {
        let model = NetBSDKcovModel()
        return kcov(NetBSDKcovBackend(kernel: model), probe: NetBSDKcovModel.probePCs, descriptors: { model.openDescriptorCount }, mappings: { model.liveMappingCount }) {
            model.syscall(running: KcovKernelPath(pcs: $0, comparisons: $1))
        }
    }

    /// FreeBSD kcov(4) (`Docs/kcov-freebsd.md`): per-thread, ordered PCs and comparison records
    /// (switches recorded FreeBSD's way).
    public static func freebsd() -> SimulatedKernel {
        let model = FreeBSDKcovModel()
        return kcov(FreeBSDKcovBackend(kernel: model), probe: FreeBSDKcovModel.probePCs, descriptors: { model.openDescriptorCount }, mappings: { model.liveMappingCount }) {
            model.syscall(running: KcovKernelPath(pcs: $0, comparisons: $1))
        }
    }

    /// OpenBSD kcov(4) (`Docs/kcov-openbsd.md`): per-thread, ordered PCs and comparison records.
    public static func openbsd() -> SimulatedKernel {
        let model = OpenBSDKcovModel()
        return kcov(OpenBSDKcovBackend(kernel: model), probe: OpenBSDKcovModel.probePCs, descriptors: { model.openDescriptorCount }, mappings: { model.liveMappingCount }) {
            model.syscall(running: KcovKernelPath(pcs: $0, comparisons: $1))
        }
    }

    /// A kcov model whose syscalls can cover any PCs.
    private static func kcov(
        _ backend: any CoverageBackend, probe: [UInt64], descriptors: @escaping @Sendable () -> Int, mappings: @escaping @Sendable () -> Int,
        record: @escaping @Sendable ([UInt64], [ComparisonRecord]) -> Void
    ) -> SimulatedKernel {
        SimulatedKernel(
            backend: backend, probeCoverage: Trace(backend: backend.name, unit: .pc, mode: .pc, pcs: probe), record: record, enter: nil,
            held: { Resources(descriptors: descriptors(), mappings: mappings()) })
    }

    /// gVisor's kcov emulation (`Docs/kcov-gvisor.md`): the sandbox's Go coverage blocks as
    /// synthetic PCs, a deduplicated set written at each return to user space, for every thread.
    public static func gVisor() -> SimulatedKernel {
        let model = GVisorKcovModel()
        let backend = GVisorKcovBackend(kernel: model)
        return SimulatedKernel(
            backend: backend,
            probeCoverage: Trace(backend: "gvisor", unit: .syntheticBlock, mode: .pc, pcs: GVisorKcovModel.window(GVisorKcovModel.probeBlocks)),
            record: nil, enter: nil,
            held: { Resources(descriptors: model.openDescriptorCount, mappings: model.liveMappingCount) })
    }

    /// Kprobe function counters (the kprobe PMU): the probe enters `ksys_read` once.
    public static func kprobe() -> SimulatedKernel {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        return SimulatedKernel(
            backend: backend,
            probeCoverage: Trace(backend: "kprobe", functions: [FunctionHit(name: "ksys_read", pc: kallsymsAddress("ksys_read"), hits: 1)]),
            record: nil,
            enter: { names in for name in names { model.enter(name, thread: backend.currentThreadID()) } },
            held: { Resources(descriptors: model.liveProbes, mappings: 0) })
    }

    /// The probe syscall on the calling thread (`read(-1, NULL, 0)` in the model): records
    /// ``probeCoverage``.
    public func probe() { backend.probe() }

    /// A syscall of the calling thread whose kernel path covers `pcs` in order (PC mode) or makes
    /// `comparisons` (CMP mode), recorded by the model as its kernel would.
    ///
    /// - Throws: `.unsupportedOperation` on a model whose coverage is not kernel addresses in
    ///   execution order (gVisor's synthetic blocks, function counters).
    public func syscall(covering pcs: [UInt64], comparisons: [ComparisonRecord] = []) throws(CoverageError) {
        guard let record else {
            throw CoverageError(.unsupportedOperation, "the simulated \(backend.name) kernel records its own paths only: use probe()")
        }
        record(pcs, comparisons)
    }

    /// The calling thread enters the named functions once each (function counters only).
    ///
    /// - Throws: `.unsupportedOperation` on a kcov model.
    public func syscall(entering functions: [String]) throws(CoverageError) {
        guard let enter else {
            throw CoverageError(.unsupportedOperation, "the simulated \(backend.name) kernel records PCs, not function entries: use syscall(covering:)")
        }
        enter(functions)
    }

    /// Descriptors and mappings the model still holds for this process.
    public var resources: Resources { held() }
}

/// The address the kprobe model's `/proc/kallsyms` gives `name` (0 if it has none).
private func kallsymsAddress(_ name: String) -> UInt64 {
    for line in KprobePMUModel.kallsyms.split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count >= 3, fields[2] == name { return UInt64(fields[0], radix: 16) ?? 0 }
    }
    return 0
}
