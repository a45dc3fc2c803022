package import CoverageAPI
package import KernelSeam
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Fault injection at the seam: wrappers of ``KernelInterface`` and ``KprobeKernel`` that forward
// every call to a reference model and, when armed with a ``Fault``, make the n-th call of one kind
// fail with one errno instead, as the kernel would report it. A first, unarmed run counts the calls
// of each kind a scenario makes; ``FaultSweep`` then runs the scenario once per (call, n, errno).
// For tests only: no product links this.

/// A kind of seam call that can fail, as a fault names it. Several kinds can share one seam
/// function (``function``): a `spawnEnabled` fails in its fork, its dup2, its child's ENABLE or
/// its execve, each a different outcome.
package enum FaultCall: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// open(2) of a device (``KernelInterface/open(_:flags:)``).
    case open
    /// close(2). Linux releases the descriptor before it reports any error (`close_fd` then
    /// `filp_flush`), so a failed close still closes in the model; the caller must not retry.
    case close
    /// ioctl(2), by value or by pointer (and the kprobe backend's perf ioctls).
    case ioctl
    /// mmap(2), guarded or not.
    case mmap
    /// munmap(2), guarded or not; a failed munmap leaves the mapping in place.
    case munmap
    /// Reading a small text file (`/proc/mounts`, `/proc/version`, `/proc/kallsyms`, the PMU type).
    case readFile
    /// ``KernelInterface/spawnEnabled(_:fd:enable:buffer:bufferBytes:)`` failing at fork or pipe.
    case spawnFork
    /// … at dup2 of a standard stream in the child.
    case spawnRedirect
    /// … at the child's ENABLE ioctl.
    case spawnEnable
    /// … at the child's execve.
    case spawnExec
    /// ``KernelInterface/forkEnabled(fd:enable:buffer:timeoutMilliseconds:child:)`` failing at fork.
    case forkFork
    /// … at the forked child's ENABLE ioctl.
    case forkEnable
    /// perf_event_open(2) of a kprobe (``KprobeKernel/openKprobe(pmuType:function:pid:groupLeader:flags:)``).
    case perfEventOpen
    /// read(2) of a perf counter.
    case readCounter
    /// ``KprobeKernel/spawnPaused(_:)``: fork or pipe.
    case spawnPaused
    /// ``KprobeKernel/release(_:)``: the paused child's execve.
    case release

    /// The seam function whose calls this kind counts.
    package var function: String {
        switch self {
        case .spawnFork, .spawnRedirect, .spawnEnable, .spawnExec: "spawnEnabled"
        case .forkFork, .forkEnable: "forkEnabled"
        default: rawValue
        }
    }

    /// What an error reporting this failure names as its syscall (``CoverageError/syscall``
    /// contains it): the call a user would look up.
    package var syscallWord: String {
        switch self {
        case .open, .readFile: "open"
        case .close: "close"
        case .ioctl: "ioctl"
        case .mmap: "mmap"
        case .munmap: "munmap"
        case .spawnFork, .forkFork, .spawnPaused: "fork"
        case .spawnRedirect: "dup2"
        case .spawnEnable, .forkEnable: "ioctl"
        case .spawnExec, .release: "execve"
        case .perfEventOpen: "perf_event_open"
        case .readCounter: "read"
        }
    }

    package var description: String { rawValue }
}

/// One injected failure: the `n`-th call (from 1) of kind `call` fails with `errno`.
package struct Fault: Sendable, Hashable, CustomStringConvertible {
    package var call: FaultCall
    package var n: Int
    package var errno: Int32

    package init(_ call: FaultCall, n: Int, errno: Int32) {
        self.call = call
        self.n = n
        self.errno = errno
    }

    package var description: String { "\(call) #\(n) with \(errnoName(errno))" }
}

/// The symbolic name of an errno for messages (`EINVAL`), or its number.
package func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO", E2BIG: "E2BIG",
        ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES",
        EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
        EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", ETXTBSY: "ETXTBSY", ENOSPC: "ENOSPC",
        ESPIPE: "ESPIPE", ELOOP: "ELOOP", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS", EOPNOTSUPP: "EOPNOTSUPP",
        EADDRNOTAVAIL: "EADDRNOTAVAIL", EILSEQ: "EILSEQ", EOVERFLOW: "EOVERFLOW", 524: "ENOTSUPP",
    ]
    return names[code] ?? "errno \(code)"
}

/// What the wrappers share: the armed faults, the count of calls per seam function so far, and
/// which faults fired. One plan serves every wrapper of one run.
package final class FaultPlan: Sendable {
    private struct State {
        var armed: [Fault]
        var counts: [String: Int] = [:]
        var fired: [Fault] = []
        /// ``counts`` when the first fault fired: the calls after it are the error path's.
        var countsAtFirstFault: [String: Int]?
    }

    private let state: Mutex<State>

    /// A plan that fails `fault` (none: only counts).
    package convenience init(_ fault: Fault? = nil) {
        self.init(faults: fault.map { [$0] } ?? [])
    }

    /// A plan that fails each of `faults` (at most one per call kind's function and index).
    package init(faults: [Fault]) {
        state = Mutex(State(armed: faults))
    }

    /// Counts one call of `function`; returns the armed fault when this call is one it fails (the
    /// fault's kind counts `function` and this is its n-th call).
    package func next(_ function: String) -> Fault? {
        state.withLock { state in
            state.counts[function, default: 0] += 1
            let count = state.counts[function]
            guard let armed = state.armed.first(where: { $0.call.function == function && $0.n == count }) else { return nil }
            if state.fired.isEmpty { state.countsAtFirstFault = state.counts }
            state.fired.append(armed)
            return armed
        }
    }

    /// Calls per seam function so far.
    package var counts: [String: Int] { state.withLock { $0.counts } }

    /// Whether every armed fault was injected.
    package var fired: Bool { state.withLock { $0.fired.count == $0.armed.count } }

    /// The calls of each seam function made after the first fault fired, as (first, last) call
    /// indices; empty when none fired.
    package var callsAfterFirstFault: [String: ClosedRange<Int>] {
        state.withLock { state in
            guard let before = state.countsAtFirstFault else { return [:] }
            var after: [String: ClosedRange<Int>] = [:]
            for (function, count) in state.counts where count > before[function, default: 0] {
                after[function] = (before[function, default: 0] + 1)...count
            }
            return after
        }
    }
}

/// A ``KernelInterface`` that forwards to `base` and fails the call its ``FaultPlan`` names without
/// calling `base` (so the model's state stays what the kernel's would be after that failure),
/// except close, which Linux completes before reporting an error.
package struct FaultInjectingKernel: KernelInterface {
    package let base: any KernelInterface
    package let plan: FaultPlan

    package init(_ base: any KernelInterface, plan: FaultPlan) {
        self.base = base
        self.plan = plan
    }

    /// Fails with the fault's errno: -1.
    private func fail(_ fault: Fault) -> CInt {
        errno = fault.errno
        return -1
    }

    package func open(_ path: String, flags: CInt) -> CInt {
        if let fault = plan.next("open") { return fail(fault) }
        return base.open(path, flags: flags)
    }

    package func close(_ fd: CInt) -> CInt {
        let fault = plan.next("close")
        let result = base.close(fd)
        guard let fault, result == 0 else { return result }
        return fail(fault)
    }

    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        if let fault = plan.next("ioctl") { return fail(fault) }
        return base.ioctl(fd, request, value: value)
    }

    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        if let fault = plan.next("ioctl") { return fail(fault) }
        return base.ioctl(fd, request, pointer: pointer)
    }

    package func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        if let fault = plan.next("mmap") {
            errno = fault.errno
            return nil
        }
        return base.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
    }

    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        if let fault = plan.next("munmap") { return fail(fault) }
        return base.munmap(address, length: length)
    }

    package func mmapBetweenGuards(length: Int, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        if let fault = plan.next("mmap") {
            errno = fault.errno
            return nil
        }
        return base.mmapBetweenGuards(length: length, fd: fd, offset: offset)
    }

    package func munmapBetweenGuards(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        if let fault = plan.next("munmap") { return fail(fault) }
        return base.munmapBetweenGuards(address, length: length)
    }

    package func currentThreadID() -> CInt { base.currentThreadID() }

    package func probeSyscall() { base.probeSyscall() }

    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        if let fault = plan.next("spawnEnabled") {
            switch fault.call {
            case .spawnRedirect: return .redirectFailed(errno: fault.errno)
            case .spawnEnable: return .enableFailed(errno: fault.errno)
            case .spawnExec: return .execFailed(errno: fault.errno)
            default: return .forkFailed(errno: fault.errno)
            }
        }
        return base.spawnEnabled(command, fd: fd, enable: enable, buffer: buffer, bufferBytes: bufferBytes)
    }

    package func waitForExit(_ pid: CInt) -> ExitStatus { base.waitForExit(pid) }

    package func waitForExit(_ pid: CInt, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        base.waitForExit(pid, milliseconds: milliseconds)
    }

    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        if let fault = plan.next("forkEnabled") {
            return fault.call == .forkEnable ? .enableFailed(errno: fault.errno) : .forkFailed(errno: fault.errno)
        }
        return base.forkEnabled(fd: fd, enable: enable, buffer: buffer, timeoutMilliseconds: timeoutMilliseconds, child: child)
    }

    package func readTextFile(_ path: String) -> String? {
        if let fault = plan.next("readFile") {
            errno = fault.errno
            return nil
        }
        return base.readTextFile(path)
    }

    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T { base.runOnNewThread(body) }
}

/// A ``KprobeKernel`` that forwards to `base` and fails the call its ``FaultPlan`` names, as
/// ``FaultInjectingKernel`` does (close completes first there too).
package struct FaultInjectingKprobeKernel: KprobeKernel {
    package let base: any KprobeKernel
    package let plan: FaultPlan

    package init(_ base: any KprobeKernel, plan: FaultPlan) {
        self.base = base
        self.plan = plan
    }

    package func readTextFile(_ path: String) -> String? {
        if let fault = plan.next("readFile") {
            errno = fault.errno
            return nil
        }
        return base.readTextFile(path)
    }

    package func fileExists(_ path: String) -> Bool { base.fileExists(path) }

    package func openKprobe(pmuType: UInt32, target: KprobeTarget, pid: Int32, groupLeader: Int32, flags: KprobeOpenFlags) -> Int32 {
        if let fault = plan.next("perfEventOpen") {
            errno = fault.errno
            return -1
        }
        return base.openKprobe(pmuType: pmuType, target: target, pid: pid, groupLeader: groupLeader, flags: flags)
    }

    package func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Int32 {
        if let fault = plan.next("ioctl") {
            errno = fault.errno
            return -1
        }
        return base.ioctl(fd, request, value: value)
    }

    package func readCounter(_ fd: Int32) -> UInt64? {
        if let fault = plan.next("readCounter") {
            errno = fault.errno
            return nil
        }
        return base.readCounter(fd)
    }

    package func close(_ fd: Int32) -> Int32 {
        let fault = plan.next("close")
        let result = base.close(fd)
        guard let fault, result == 0 else { return result }
        errno = fault.errno
        return -1
    }

    package func currentThreadID() -> Int32 { base.currentThreadID() }

    package func probeSyscall() { base.probeSyscall() }

    package func spawnPaused(_ command: Command) -> PausedChild? {
        if let fault = plan.next("spawnPaused") {
            errno = fault.errno
            return nil
        }
        return base.spawnPaused(command)
    }

    package func release(_ child: PausedChild) -> Int32 {
        // A failed execve in the child: the model's child never runs the program; the wait reaps it.
        if let fault = plan.next("release") { return fault.errno }
        return base.release(child)
    }

    package func abandon(_ child: PausedChild) { base.abandon(child) }

    package func waitForExit(_ pid: Int32) -> ExitStatus { base.waitForExit(pid) }

    package func waitForExit(_ pid: Int32, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        base.waitForExit(pid, milliseconds: milliseconds)
    }

    package func openPerfEventCount() -> Int { base.openPerfEventCount() }
}
