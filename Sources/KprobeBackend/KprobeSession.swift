#if canImport(Glibc)
import Glibc
#endif
public import CoverageAPI
package import KernelSeam

/// Counting kprobes on a set of functions, bound to one thread: the kprobe backend's session.
///
/// The probes are opened when the session is made, bound to the thread that makes it; `enable()`
/// from another thread reopens them for that thread. Coverage is what the enabling thread entered
/// between `enable()` and `disable()`. Closing (or deinit) removes every probe; a failed init
/// leaves none.
///
/// One artefact is inherent: `disable()` is an ioctl the thread makes while counting, so probed
/// functions on the ioctl entry path (`__x64_sys_ioctl`, `perf_ioctl`, …) count one hit more —
/// as kcov's traces hold ENABLE's return path.
final class KprobeSession: FunctionCounters {
    public let backend: KprobeBackend
    /// Functions with a live probe, in the order asked for.
    public private(set) var probedFunctions: [ProbedFunction] = []
    /// Functions asked for that have no probe, with why.
    public private(set) var skipped: [SkippedFunction] = []

    private let kernel: any KprobeKernel
    private let type: UInt32
    private var candidates: [ProbedFunction]
    /// Probe fds parallel to ``functions``.
    private var fds: [Int32] = []
    /// Group leaders: one ioctl each enables, disables or resets its whole group.
    private var leaders: [Int32] = []
    /// The thread the open probes count; `nil` while none are open. (A reopen for another thread
    /// that failed has closed them all: were the old thread kept here, enabling on it again would
    /// skip the reopen and count nothing, a silent empty trace. Found by the fault-injection sweep.)
    private var boundThread: Int32?
    private var enabledThread: Int32?
    /// Probes beyond this many in one group start a new group (keeps each group's read size small).
    static let groupLimit = 512

    /// Resolves `selection` against `/proc/kallsyms` and opens a probe on each function, bound to
    /// the calling thread. Functions that cannot be probed are skipped, not fatal; a machine that
    /// cannot probe at all (no kprobes, no privilege, no descriptors) throws, with nothing left open.
    /// A mode other than `.pc` is refused before any syscall: probes count entries, not comparisons.
    public init(backend: KprobeBackend = KprobeBackend(), selection: FunctionSelection, mode: CoverageMode = .pc) throws(CoverageError) {
        self.backend = backend
        self.kernel = backend.kernel
        guard backend.capabilities.supportedModes.contains(mode) else {
            throw CoverageError(.unsupportedMode, "the kprobe backend counts function entries (pc mode); it has no \(mode.rawValue) mode")
        }
        guard !selection.isEmpty else {
            throw CoverageError(.invalidArgument, "no functions named: give names, globs (vfs_*) or a file of them")
        }
        self.type = try backend.pmuType()
        // Privilege first: without it /proc/kallsyms hides its addresses too, and that would be the
        // wrong thing to blame.
        if let refusal = backend.probeRefusal(pmuType: type) { throw refusal }
        let symbols = try KernelSymbols(kernel: kernel)
        let resolved = try symbols.resolve(selection, kernel: kernel)
        self.candidates = resolved.candidates
        self.skipped = resolved.skipped
        try open(for: kernel.currentThreadID())
    }

    deinit { closeProbes() }

    /// Opens one probe per candidate for `thread`; skipped functions are recorded. Throws (with
    /// every probe closed) only when the cause is the machine, not the function.
    private func open(for thread: Int32) throws(CoverageError) {
        closeProbes()
        var opened: [ProbedFunction] = []
        var refused: [SkippedFunction] = []
        var groupSize = 0
        for function in candidates {
            var leader = groupSize > 0 && groupSize < Self.groupLimit ? leaders.last! : -1
            var fd = kernel.openKprobe(
                pmuType: type, target: .address(function.pc), pid: thread, groupLeader: leader, flags: leader < 0 ? [.startDisabled] : [])
            if fd < 0 && leader >= 0 && errno == EINVAL {
                // Not every probe can join a group: try it alone before calling the function unprobe-able.
                leader = -1
                fd = kernel.openKprobe(pmuType: type, target: .address(function.pc), pid: thread, groupLeader: -1, flags: [.startDisabled])
            }
            guard fd >= 0 else {
                let code = errno
                if let fatal = backend.fatalOpenError(code, function: function.name) {
                    closeProbes()
                    throw fatal
                }
                refused.append(SkippedFunction(name: function.name, reason: KprobeBackend.skipReason(code)))
                continue
            }
            if leader < 0 {
                leaders.append(fd)
                groupSize = 1
            } else {
                groupSize += 1
            }
            fds.append(fd)
            opened.append(function)
        }
        probedFunctions = opened
        // Skips found at the kernel stay listed once, after those found in kallsyms.
        let known = Set(skipped.map(\.name))
        skipped += refused.filter { !known.contains($0.name) }
        boundThread = thread
    }

    /// Removes every probe (closing a kprobe perf fd unregisters its kprobe).
    private func closeProbes() {
        for fd in fds { _ = kernel.close(fd) }
        fds = []
        leaders = []
        probedFunctions = []
        boundThread = nil
    }

    /// Closes every probe now; the session cannot be used after.
    public func close() {
        closeProbes()
        candidates = []
        enabledThread = nil
    }

    private func groupIoctl(_ request: UInt, _ name: String) throws(CoverageError) {
        for leader in leaders where kernel.ioctl(leader, request, value: PerfIoctl.groupFlag) != 0 {
            let code = errno
            throw CoverageError(.system, "the kernel refused \(name) on a kprobe group: errno \(code)", syscall: "ioctl(\(name))", errno: code)
        }
    }

    public var isEnabled: Bool { enabledThread != nil }

    /// Zeroes the counters and starts counting the calling thread's entries into the probed functions.
    public func enable() throws(CoverageError) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "kprobe coverage is already enabled on this session; disable it first")
        }
        let thread = kernel.currentThreadID()
        if thread != boundThread { try open(for: thread) }
        try groupIoctl(PerfIoctl.reset, "PERF_EVENT_IOC_RESET")
        try groupIoctl(PerfIoctl.enable, "PERF_EVENT_IOC_ENABLE")
        enabledThread = thread
    }

    /// Stops counting; the counts stay readable.
    public func disable() throws(CoverageError) {
        guard enabledThread != nil else { throw CoverageError(.invalidState, "kprobe coverage is not enabled on this session") }
        try groupIoctl(PerfIoctl.disable, "PERF_EVENT_IOC_DISABLE")
        enabledThread = nil
    }

    /// Zeroes the counters; counting goes on if enabled.
    public func reset() throws(CoverageError) { try groupIoctl(PerfIoctl.reset, "PERF_EVENT_IOC_RESET") }

    /// The counts since the last enable or reset.
    public func read() throws(CoverageError) -> [FunctionHit] {
        var hits: [FunctionHit] = []
        for (function, fd) in zip(probedFunctions, fds) {
            guard let count = kernel.readCounter(fd) else {
                let code = errno
                throw CoverageError(.system, "reading the counter of \(function.name) failed: errno \(code)", syscall: "read(perf fd)", errno: code)
            }
            if count > 0 { hits.append(FunctionHit(name: function.name, pc: function.pc, hits: count)) }
        }
        return hits
    }

    /// Runs `command` with these functions probed in it (and its threads and children, which
    /// inherit the probes), counting from its exec; returns how it ended and what it entered.
    /// This session's own probes are left alone.
    public func run(_ command: Command) throws(CoverageError) -> (exit: CommandExit, functions: [FunctionHit]) {
        let timeout = try Command.milliseconds(of: command.timeout)
        guard let child = kernel.spawnPaused(command) else {
            let code = errno
            throw CoverageError(.commandFailed, "could not start \(command.path): fork failed with errno \(code)", syscall: "fork", errno: code)
        }
        var childFDs: [(ProbedFunction, Int32)] = []
        var leader: Int32 = -1
        var groupSize = 0
        func closeChildProbes() { for (_, fd) in childFDs { _ = kernel.close(fd) } }
        for function in probedFunctions {
            if groupSize >= Self.groupLimit { leader = -1 }
            let fd = kernel.openKprobe(
                pmuType: type, target: .address(function.pc), pid: child.pid, groupLeader: leader,
                flags: leader < 0 ? [.startDisabled, .inherit, .enableOnExec] : [.inherit])
            guard fd >= 0 else {
                let code = errno
                closeChildProbes()
                kernel.abandon(child)
                _ = kernel.waitForExit(child.pid)
                throw backend.fatalOpenError(code, function: function.name)
                    ?? CoverageError(.system, "probing \(function.name) in the command failed: \(KprobeBackend.skipReason(code))", syscall: "perf_event_open", errno: code)
            }
            if leader < 0 {
                leader = fd
                groupSize = 1
            } else {
                groupSize += 1
            }
            childFDs.append((function, fd))
        }
        defer { closeChildProbes() }
        let execError = kernel.release(child)
        let (status, timedOut) = timeout.map { kernel.waitForExit(child.pid, milliseconds: $0) } ?? (kernel.waitForExit(child.pid), false)
        if execError != 0 {
            throw CoverageError(
                .commandFailed, "could not run \(command.path): \(String(cString: strerror(execError)))", syscall: "execve", errno: execError)
        }
        var hits: [FunctionHit] = []
        for (function, fd) in childFDs {
            guard let count = kernel.readCounter(fd) else {
                let code = errno
                throw CoverageError(.system, "reading the counter of \(function.name) failed: errno \(code)", syscall: "read(perf fd)", errno: code)
            }
            if count > 0 { hits.append(FunctionHit(name: function.name, pc: function.pc, hits: count)) }
        }
        return (timedOut ? .timedOut : CommandExit(status), hits)
    }
}
