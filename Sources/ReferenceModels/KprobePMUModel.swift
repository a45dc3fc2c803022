#if canImport(Glibc)
import Glibc
#endif
package import KernelSeam
package import CoverageAPI
import Synchronization

/// A small model of the kprobe PMU behind ``KprobeKernel``: counting events bound to a thread (or
/// an exec'd child), groups whose leader gates its members, the errnos perf_event_open gives for
/// unprobe-able functions, privilege and descriptor limits. Kernel work is simulated by
/// ``enter(_:thread:)``; `read(-1)` enters `__x64_sys_read` and `ksys_read`, a perf ioctl on the
/// caller's own event `__x64_sys_ioctl` and `perf_ioctl`.
package final class KprobePMUModel: KprobeKernel, @unchecked Sendable {
    private struct Event {
        /// The probed function's entry address.
        var address: UInt64
        var pid: Int32
        var leader: Int32  // itself for a leader
        var enabled: Bool
        var enableOnExec: Bool
        var count: UInt64 = 0
    }

    private struct State {
        var files: [String: String] = [:]
        var events: [Int32: Event] = [:]
        var nextFD: Int32 = 100
        var threadIDs: [UInt: Int32] = [:]
        var nextThread: Int32 = 1000
        var children: [Int32: String] = [:]
        var nextPID: Int32 = 5000
    }

    private let state = Mutex(State())
    /// errno perf_event_open gives for these functions (the kernel refusing to probe them).
    package var refusals: [String: Int32] = [:]
    /// errno every perf_event_open gives (EACCES: not privileged).
    package var openFailure: Int32?
    /// At most this many probes at once (then EMFILE).
    package var fdLimit = Int.max
    /// What each program's main thread enters, by path.
    package var programs: [String: [String]] = [:]

    package static let kallsyms = """
        ffffffff81000000 T _stext
        ffffffff81100000 t __pfx_ksys_read
        ffffffff81100010 T ksys_read
        ffffffff81100100 T __x64_sys_read
        ffffffff81100200 T vfs_read
        ffffffff81100300 T vfs_write
        ffffffff81100400 T vfs_open
        ffffffff81100500 T __x64_sys_ioctl
        ffffffff81100600 T perf_ioctl
        ffffffff81100700 t dup_static
        ffffffff81100800 t dup_static
        ffffffff81100900 T do_int3
        ffffffff81100a00 T nmi_handler
        ffffffff81100b00 T __x64_sys_newuname
        ffffffff82000000 D some_data
        ffffffffa0000000 t modfunc\t[somemod]
        """

    package init(pmu: Bool = true) {
        state.withLock {
            $0.files["/proc/kallsyms"] = Self.kallsyms
            $0.files["/proc/sys/kernel/perf_event_paranoid"] = "2\n"
            $0.files["/sys/kernel/debug/kprobes/blacklist"] = "0xffffffff81100900-0xffffffff81100950\tdo_int3\n"
            if pmu { $0.files[KprobePaths.pmuType] = "8\n" }
        }
    }

    /// Live probes.
    package var liveProbes: Int { state.withLock { $0.events.count } }

    /// Children started by ``spawnPaused(_:)`` and not yet reaped by ``waitForExit(_:)``.
    package var unreapedChildren: Int { state.withLock { $0.children.count } }

    package func setFile(_ path: String, _ text: String?) { state.withLock { $0.files[path] = text } }

    /// Text symbols of ``kallsyms`` (module symbols left out), in order: name and entry address.
    private static let functions: [(name: String, address: UInt64)] = kallsyms.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count == 3, "tT".contains(fields[1]), !fields[2].contains("\t"), let address = UInt64(fields[0], radix: 16) else { return nil }
        return (String(fields[2]), address)
    }

    /// The thread `thread` enters `function`, the first function of that name in kallsyms order (a
    /// probe hit for events bound to it and counting).
    package func enter(_ function: String, thread: Int32) {
        guard let address = Self.functions.first(where: { $0.name == function })?.address else { return }
        enter(address: address, thread: thread)
    }

    /// The thread `thread` enters the function at `address`.
    package func enter(address: UInt64, thread: Int32) {
        state.withLock { state in
            for (fd, event) in state.events where event.address == address && event.pid == thread {
                let leaderOn = state.events[event.leader]?.enabled ?? false
                if event.enabled && leaderOn { state.events[fd]!.count += 1 }
            }
        }
    }

    package func readTextFile(_ path: String) -> String? {
        let text = state.withLock { $0.files[path] }
        if text == nil { errno = ENOENT }
        return text
    }

    package func fileExists(_ path: String) -> Bool { state.withLock { $0.files[path] != nil } }

    package func openKprobe(pmuType: UInt32, target: KprobeTarget, pid: Int32, groupLeader: Int32, flags: KprobeOpenFlags) -> Int32 {
        if let openFailure { errno = openFailure; return -1 }
        // By name, the kernel needs exactly one text symbol of that name (ENOENT: none,
        // EADDRNOTAVAIL: several); by address, a function's entry outside the blacklist (EINVAL).
        let address: UInt64
        switch target {
        case .name(let name):
            if let code = refusals[name] { errno = code; return -1 }
            let found = Self.functions.filter { $0.name == name }
            guard found.count == 1 else { errno = found.isEmpty ? ENOENT : EADDRNOTAVAIL; return -1 }
            address = found[0].address
        case .address(let requested):
            guard let function = Self.functions.first(where: { $0.address == requested }) else { errno = EINVAL; return -1 }
            if let code = refusals[function.name] { errno = code; return -1 }
            if blacklisted(requested) { errno = EINVAL; return -1 }
            address = requested
        }
        return state.withLock { state in
            guard state.events.count < fdLimit else { errno = EMFILE; return -1 }
            guard pmuType == 8 else { errno = ENOENT; return -1 }
            if groupLeader >= 0 {
                guard let leader = state.events[groupLeader], leader.leader == groupLeader, leader.pid == pid else { errno = EINVAL; return -1 }
            }
            let fd = state.nextFD
            state.nextFD += 1
            state.events[fd] = Event(
                address: address, pid: pid, leader: groupLeader >= 0 ? groupLeader : fd,
                enabled: !flags.contains(.startDisabled), enableOnExec: flags.contains(.enableOnExec))
            return fd
        }
    }

    /// Whether `address` lies in a range of the blacklist file.
    private func blacklisted(_ address: UInt64) -> Bool {
        let list = state.withLock { $0.files["/sys/kernel/debug/kprobes/blacklist"] } ?? ""
        return list.split(separator: "\n").contains { line in
            let bounds = line.split(separator: "\t").first?.split(separator: "-").compactMap { UInt64($0.dropFirst(2), radix: 16) } ?? []
            return bounds.count == 2 && bounds[0] <= address && address < bounds[1]
        }
    }

    package func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Int32 {
        // The syscall's entry runs before the request takes effect.
        if let pid = state.withLock({ $0.events[fd]?.pid }), pid == currentThreadID() {
            enter("__x64_sys_ioctl", thread: pid)
            enter("perf_ioctl", thread: pid)
        }
        return state.withLock { state in
            guard let event = state.events[fd] else { errno = EBADF; return -1 }
            let targets = value & PerfIoctl.groupFlag != 0 ? state.events.keys.filter { state.events[$0]!.leader == event.leader } : [fd]
            for target in targets {
                switch request {
                case PerfIoctl.enable: state.events[target]!.enabled = true
                case PerfIoctl.disable: state.events[target]!.enabled = false
                case PerfIoctl.reset: state.events[target]!.count = 0
                default: errno = ENOTTY; return -1
                }
            }
            return 0
        }
    }

    package func readCounter(_ fd: Int32) -> UInt64? {
        let count = state.withLock { $0.events[fd]?.count }
        if count == nil { errno = EBADF }
        return count
    }

    package func close(_ fd: Int32) -> Int32 {
        state.withLock { $0.events.removeValue(forKey: fd) } == nil ? { errno = EBADF; return -1 }() : 0
    }

    package func currentThreadID() -> Int32 {
        let me = UInt(pthread_self())
        return state.withLock { state in
            if let id = state.threadIDs[me] { return id }
            state.nextThread += 1
            state.threadIDs[me] = state.nextThread
            return state.nextThread
        }
    }

    package func probeSyscall() {
        let thread = currentThreadID()
        enter("__x64_sys_read", thread: thread)
        enter("ksys_read", thread: thread)
    }

    package func spawnPaused(_ command: Command) -> PausedChild? {
        let path = command.path
        return state.withLock { state in
            let pid = state.nextPID
            state.nextPID += 1
            state.children[pid] = path
            return PausedChild(pid: pid, releaseFD: -1, statusFD: -1)
        }
    }

    package func release(_ child: PausedChild) -> Int32 {
        guard let path = state.withLock({ $0.children[child.pid] }), let program = programs[path] else { return ENOENT }
        state.withLock { state in
            for (fd, event) in state.events where event.pid == child.pid && event.enableOnExec { state.events[fd]!.enabled = true }
        }
        for function in program { enter(function, thread: child.pid) }
        return 0
    }

    package func abandon(_ child: PausedChild) {}

    package func openPerfEventCount() -> Int { liveProbes }

    package func waitForExit(_ pid: Int32) -> ExitStatus {
        let path = state.withLock { $0.children.removeValue(forKey: pid) }
        return .exited(path.flatMap { programs[$0] } == nil ? 127 : 0)
    }

    /// A simulated program has run to its end at release: the wait cannot time out.
    package func waitForExit(_ pid: Int32, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        (waitForExit(pid), false)
    }
}
