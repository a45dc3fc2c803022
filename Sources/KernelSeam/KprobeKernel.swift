#if canImport(Glibc)
import Glibc
#endif
import CKernelShim
package import CoverageAPI

/// The syscalls the kprobe backend makes, with C conventions: a failing call returns -1 (or `nil`)
/// and leaves the reason in `errno`. ``SystemKprobeKernel`` is the real kernel; host tests use a
/// model of the kprobe PMU behind the same protocol.
package protocol KprobeKernel: Sendable {
    /// The contents of a text file such as `/proc/kallsyms`, or `nil` with `errno`.
    func readTextFile(_ path: String) -> String?
    /// Whether `path` exists (access(F_OK)).
    func fileExists(_ path: String) -> Bool
    /// perf_event_open of a counting entry kprobe at `target`, bound to `pid` (a thread id, or a
    /// process with `inherit`), in `groupLeader`'s group (-1: a new group).
    func openKprobe(pmuType: UInt32, target: KprobeTarget, pid: Int32, groupLeader: Int32, flags: KprobeOpenFlags) -> Int32
    /// ioctl(2) with a value argument (PERF_EVENT_IOC_*).
    func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Int32
    /// read(2) of a counter's value; `nil` with `errno`.
    func readCounter(_ fd: Int32) -> UInt64?
    /// close(2).
    func close(_ fd: Int32) -> Int32
    /// gettid(2).
    func currentThreadID() -> Int32
    /// `read(-1, NULL, 0)`.
    func probeSyscall()
    /// Starts `command` paused before exec (its standard streams put in place at release); see
    /// ``PausedChild``.
    func spawnPaused(_ command: Command) -> PausedChild?
    /// Lets a paused child exec; returns execve's errno in the child, or 0.
    func release(_ child: PausedChild) -> Int32
    /// Closes the release pipe unwritten: the child exits 127 without running the command.
    func abandon(_ child: PausedChild)
    /// waitpid(2).
    func waitForExit(_ pid: Int32) -> ExitStatus
    /// waitpid(2) for at most `milliseconds`, then SIGKILL; `timedOut` says the kill ended it.
    func waitForExit(_ pid: Int32, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool)
    /// Perf event descriptors this process holds (each kprobe lives as long as its descriptor).
    func openPerfEventCount() -> Int
}

/// Where the kernel says what the kprobe backend needs.
package enum KprobePaths {
    /// The kprobe PMU's perf type number; missing without CONFIG_KPROBES/CONFIG_KPROBE_EVENTS.
    package static let pmuType = "/sys/bus/event_source/devices/kprobe/type"
    /// `kernel.perf_event_paranoid`; missing without CONFIG_PERF_EVENTS.
    package static let paranoid = "/proc/sys/kernel/perf_event_paranoid"
}

/// Where a kprobe goes: a function by name (the kernel resolves it, and refuses a name several
/// functions share with EADDRNOTAVAIL), or a function's entry address from `/proc/kallsyms`,
/// which tells apart static functions that share a name.
package enum KprobeTarget: Sendable, Hashable, CustomStringConvertible {
    case name(String)
    case address(UInt64)

    package var description: String {
        switch self {
        case .name(let name): name
        case .address(let address): "0x" + String(address, radix: 16)
        }
    }
}

/// perf_event_attr flags the backend sets.
package struct KprobeOpenFlags: OptionSet, Sendable, Hashable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }
    package static let startDisabled = KprobeOpenFlags(rawValue: Int32(KCS_KPROBE_START_DISABLED.rawValue))
    package static let inherit = KprobeOpenFlags(rawValue: Int32(KCS_KPROBE_INHERIT.rawValue))
    package static let enableOnExec = KprobeOpenFlags(rawValue: Int32(KCS_KPROBE_ENABLE_ON_EXEC.rawValue))
}

/// A forked child blocked before execve.
package struct PausedChild: Sendable, Hashable {
    package var pid: Int32
    package var releaseFD: Int32
    package var statusFD: Int32
    package init(pid: Int32, releaseFD: Int32, statusFD: Int32) {
        self.pid = pid
        self.releaseFD = releaseFD
        self.statusFD = statusFD
    }
}

/// The perf ioctls the backend uses (`_IO('$', n)`).
package enum PerfIoctl {
    package static let enable: UInt = 0x2400
    package static let disable: UInt = 0x2401
    package static let reset: UInt = 0x2403
    /// Applies an ioctl to the whole group of a leader.
    package static let groupFlag: UInt = 1
}

/// The real kernel.
package struct SystemKprobeKernel: KprobeKernel {
    package init() {}

    package func readTextFile(_ path: String) -> String? { SystemKernel().readTextFile(path) }

    package func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    package func openKprobe(pmuType: UInt32, target: KprobeTarget, pid: Int32, groupLeader: Int32, flags: KprobeOpenFlags) -> Int32 {
        switch target {
        case .name(let name): name.withCString { kcs_perf_kprobe_open(pmuType, $0, 0, pid, groupLeader, flags.rawValue) }
        case .address(let address): kcs_perf_kprobe_open(pmuType, nil, address, pid, groupLeader, flags.rawValue)
        }
    }

    package func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Int32 { kcs_ioctl_value(fd, request, value) }

    package func readCounter(_ fd: Int32) -> UInt64? {
        var value: UInt64 = 0
        return kcs_read_counter(fd, &value) == 0 ? value : nil
    }

    package func close(_ fd: Int32) -> Int32 { Glibc.close(fd) }

    package func currentThreadID() -> Int32 { kcs_gettid() }

    package func probeSyscall() { _ = kcs_probe_syscall() }

    package func spawnPaused(_ command: Command) -> PausedChild? {
        var argv = command.arguments.map { strdup($0) } + [nil]
        var envp = command.environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var release: Int32 = -1
        var status: Int32 = -1
        let stdio: [CInt] = [command.standardInput ?? -1, command.standardOutput ?? -1, command.standardError ?? -1]
        let pid = kcs_spawn_paused(command.path, &argv, &envp, stdio, &release, &status)
        guard pid >= 0 else { return nil }
        return PausedChild(pid: pid, releaseFD: release, statusFD: status)
    }

    package func release(_ child: PausedChild) -> Int32 {
        var code: Int32 = 0
        _ = kcs_release_paused(child.releaseFD, child.statusFD, &code)
        return code
    }

    package func abandon(_ child: PausedChild) {
        _ = Glibc.close(child.releaseFD)
        _ = Glibc.close(child.statusFD)
    }

    /// Counts the entries of `/proc/self/fd` that link to `anon_inode:[perf_event]`.
    package func openPerfEventCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        let perfEvent = Array("anon_inode:[perf_event]".utf8)
        var target = [UInt8](repeating: 0, count: perfEvent.count + 1)
        var count = 0
        while let entry = readdir(directory) {
            let path = withUnsafeBytes(of: entry.pointee.d_name) { "/proc/self/fd/" + String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            let length = target.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
            if length == perfEvent.count && target.starts(with: perfEvent) { count += 1 }
        }
        return count
    }

    package func waitForExit(_ pid: Int32) -> ExitStatus { SystemKernel().waitForExit(pid) }

    package func waitForExit(_ pid: Int32, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        SystemKernel().waitForExit(pid, milliseconds: milliseconds)
    }
}
