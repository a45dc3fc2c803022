#if canImport(Glibc)
import Glibc
#endif
public import CoverageAPI
package import KernelSeam

/// Function-level coverage from kprobes, for kernels without kcov: one counting kprobe per named
/// function through the kprobe PMU (`perf_event_open`), bound to one thread.
///
/// Why the PMU rather than tracefs `kprobe_events`: a perf event is counted in the kernel for the
/// thread it is bound to (no trace buffer to drain and filter by pid), its probe is private to its
/// fd (nothing is named in the global `kprobe_events`, so no clash with other users and nothing to
/// clean up after a crash: the kernel removes the probe when the fd closes), and reading a count is
/// one `read`. tracefs events are global, need a `common_pid` filter per event and a trace pipe.
///
/// There is no shared buffer: the kernel keeps one counter per probed function, so this backend is
/// a ``FunctionCounterDriver`` and ``CoverageCollector`` collects from it with a function selection.
public struct KprobeBackend: FunctionCounterDriver {
    package let kernel: any KprobeKernel

    /// The kprobe PMU's perf type number.
    public static let pmuTypePath = KprobePaths.pmuType
    static let paranoidPath = KprobePaths.paranoid
    /// The function a test probe goes on (``probeRefusal(pmuType:)``).
    static let testFunction = "ksys_read"

    public init() { self.init(kernel: SystemKprobeKernel()) }

    package init(kernel: any KprobeKernel) { self.kernel = kernel }

    public var name: String { "kprobe" }

    public var capabilities: BackendCapabilities {
        BackendCapabilities(
            supportedModes: [.pc], pcKind: .kernelAddress, granularity: .function, perThread: true,
            orderedTrace: false, remote: [], requiresMapBeforeEnable: false, remapAfterDisable: false,
            mapLengthMustMatch: false, oneEnabledInstancePerThread: false, collectsAfterClose: false,
            buffer: nil,
            kernelOptions: [
                KernelOption("KALLSYMS", "functions are named from /proc/kallsyms"),
                KernelOption("PERF_EVENTS", "counting probes are perf events"),
                KernelOption("KPROBES", "the probes themselves"),
                KernelOption("KPROBE_EVENTS", "the kprobe PMU perf_event_open takes"),
            ])
    }

    /// The kprobe PMU's perf type, or why there is none.
    package func pmuType() throws(CoverageError) -> UInt32 {
        guard let text = kernel.readTextFile(Self.pmuTypePath) else {
            let code = errno
            if !kernel.fileExists(Self.paranoidPath) {
                throw CoverageError(
                    .deviceMissing, "this kernel has no perf events: it was built without CONFIG_PERF_EVENTS (needed with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS)",
                    syscall: "open(\(Self.pmuTypePath))", errno: code)
            }
            throw CoverageError(
                .deviceMissing,
                "this kernel has no kprobe PMU (\(Self.pmuTypePath) is missing): it was built without CONFIG_KPROBES or CONFIG_KPROBE_EVENTS",
                syscall: "open(\(Self.pmuTypePath))", errno: code)
        }
        guard let type = UInt32(text.filter { !$0.isWhitespace }) else {
            throw CoverageError(.system, "\(Self.pmuTypePath) holds \(text.debugDescription), not a PMU type number")
        }
        return type
    }

    /// Why a probe could not be opened when the reason is not the function's but the machine's:
    /// privilege, missing kernel support, descriptors. `nil` when the function itself is the cause.
    package func fatalOpenError(_ code: Int32, function: String) -> CoverageError? {
        CoverageError("perf_event_open(kprobe \(function))", errno: code) {
            switch $0 {
            case EACCES, EPERM: (.permissionDenied, privilegeMessage(code))
            case ENOSYS: (.deviceMissing, "perf_event_open is not available: the kernel was built without CONFIG_PERF_EVENTS")
            case ENODEV, EOPNOTSUPP: (.deviceMissing, "the kernel refused kprobe perf events: it needs CONFIG_KPROBES and CONFIG_KPROBE_EVENTS")
            case EMFILE, ENFILE: (.outOfMemory, "out of file descriptors (one per probed function): raise `ulimit -n`, or probe fewer functions")
            case ENOMEM: (.outOfMemory, "the kernel could not allocate another kprobe: probe fewer functions")
            default: nil
            }
        }
    }

    /// What this process lacks when perf_event_open refuses a kprobe with `code` (EACCES or EPERM).
    ///
    /// The kprobe PMU asks for CAP_PERFMON (or CAP_SYS_ADMIN) itself, whatever
    /// `kernel.perf_event_paranoid` allows other events; a paranoid level of 3 (Debian's patch)
    /// refuses perf_event_open without CAP_SYS_ADMIN before that. EPERM comes from a policy:
    /// lockdown, seccomp or a security module.
    func privilegeMessage(_ code: Int32) -> String {
        if code == EPERM {
            return "perf_event_open was refused by a security policy (kernel lockdown, seccomp or a security module), or this process lacks CAP_PERFMON (or CAP_SYS_ADMIN)"
        }
        let paranoid = kernel.readTextFile(Self.paranoidPath).flatMap { Int($0.filter { !$0.isWhitespace }) }
        if let paranoid, paranoid >= 3 {
            return "kprobe perf events need CAP_SYS_ADMIN here: kernel.perf_event_paranoid is \(paranoid), which refuses perf_event_open to every other process; run as root"
        }
        let level = paranoid.map { " (it is \($0) here)" } ?? ""
        return "kprobe perf events need CAP_PERFMON or CAP_SYS_ADMIN, whatever kernel.perf_event_paranoid says\(level): run as root, or grant this program CAP_PERFMON"
    }

    /// Opens and closes one probe: privilege and kernel support show only at perf_event_open.
    /// `nil` when this process may probe (the test function itself may be unprobe-able).
    package func probeRefusal(pmuType type: UInt32) -> CoverageError? {
        let fd = kernel.openKprobe(pmuType: type, target: .name(Self.testFunction), pid: kernel.currentThreadID(), groupLeader: -1, flags: [.startDisabled])
        if fd >= 0 {
            _ = kernel.close(fd)
            return nil
        }
        return fatalOpenError(errno, function: Self.testFunction)
    }

    /// Why the kernel would not probe `function`, in words.
    package static func skipReason(_ code: Int32) -> String {
        switch code {
        case ENOENT: "the kernel found no such probe-able symbol: inlined, or not a function"
        case EINVAL: "the kernel refused a kprobe here: on the kprobe blacklist, or in a notrace/noinstr/__kprobes section"
        case EADDRNOTAVAIL: "ambiguous: several kernel functions share this name"
        case EILSEQ: "the address is not at an instruction boundary"
        case EBUSY: "another probe mechanism owns this address"
        default: "perf_event_open failed with errno \(code) (\(String(cString: strerror(code))))"
        }
    }

    public func availability() -> Availability {
        do {
            let type = try pmuType()
            if let refusal = probeRefusal(pmuType: type) { return Availability(available: false, reason: refusal.description) }
            return Availability(available: true, reason: "kprobe PMU type \(type) at \(Self.pmuTypePath)")
        } catch {
            return Availability(available: false, reason: error.message)
        }
    }

    public func currentThreadID() -> Int32 { kernel.currentThreadID() }
    public func probe() { kernel.probeSyscall() }

    /// Opens one counting probe per function `selection` names, bound to the calling thread.
    public func openCounters(_ selection: FunctionSelection, mode: CoverageMode) throws(CoverageError) -> any FunctionCounters {
        try KprobeSession(backend: self, selection: selection, mode: mode)
    }
}
