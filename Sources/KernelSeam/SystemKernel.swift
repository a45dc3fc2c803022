#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKernelShim
package import CoverageAPI

/// The kernel itself: each call goes straight to libc or the C shim.
package struct SystemKernel: KernelInterface {
    package var isRunningSystem: Bool { true }

    package init() {}

    package func open(_ path: String, flags: CInt) -> CInt {
        path.withCString { Glibc.open($0, flags) }
    }

    package func close(_ fd: CInt) -> CInt {
        Glibc.close(fd)
    }

    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        kcs_ioctl_value(fd, request, value)
    }

    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        kcs_ioctl_pointer(fd, request, pointer)
    }

    package func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        let address = Glibc.mmap(nil, length, protection, flags, fd, off_t(offset))
        return address == MAP_FAILED ? nil : address
    }

    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        Glibc.munmap(address, length)
    }

    /// The buffer inside a PROT_NONE reservation one page larger on each side (MAP_FIXED).
    package func mmapBetweenGuards(length: Int, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        guard length >= 0, offset >= 0 else {
            errno = EINVAL
            return nil
        }
        let address = kcs_map_guarded(length, fd, off_t(offset))
        return address == MAP_FAILED ? nil : address
    }

    package func munmapBetweenGuards(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        guard length > 0 else {
            errno = EINVAL
            return -1
        }
        return kcs_unmap_guarded(address, length)
    }

    package func currentThreadID() -> CInt {
        kcs_gettid()
    }

    package func probeSyscall() {
        _ = kcs_probe_syscall()
    }

    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        // Everything the child touches is prepared here: it may only make async-signal-safe calls.
        var argv = command.arguments.map { strdup($0) } + [nil]
        var envp = command.environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let stdio: [CInt] = [command.standardInput ?? -1, command.standardOutput ?? -1, command.standardError ?? -1]
        var stage: CInt = 0
        var error: CInt = 0
        let pid = kcs_spawn_enabled(
            command.path, &argv, &envp, fd, Self.enableCall(enable), buffer.assumingMemoryBound(to: UInt64.self), stdio, &stage, &error)
        if pid >= 0 { return .running(pid: pid) }
        switch UInt32(stage) {
        case KCS_SPAWN_ENABLE.rawValue: return .enableFailed(errno: error)
        case KCS_SPAWN_EXEC.rawValue: return .execFailed(errno: error)
        case KCS_SPAWN_STDIO.rawValue: return .redirectFailed(errno: error)
        default: return .forkFailed(errno: error)
        }
    }

    static func enableCall(_ enable: EnableCall) -> kcs_enable_call {
        kcs_enable_call(request: enable.request, argument: enable.argument, argument_by_pointer: enable.byPointer ? 1 : 0)
    }

    /// fork(2) in C; the child runs `child` in Swift and leaves with `_exit`, so nothing this
    /// process buffered (stdio, atexit handlers) runs twice.
    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        var report: CInt = -1
        let pid = kcs_fork_enabled(fd, Self.enableCall(enable), buffer.assumingMemoryBound(to: UInt64.self), &report)
        if pid < 0 { return .forkFailed(errno: errno) }
        if pid == 0 { _exit(child()) }
        let (status, timedOut) = wait(pid, milliseconds: timeoutMilliseconds ?? -1)
        let enableError = kcs_fork_report(report)
        if enableError != 0 { return .enableFailed(errno: enableError) }
        return .finished(pid: pid, status: status, timedOut: timedOut)
    }

    package func waitForExit(_ pid: CInt, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        wait(pid, milliseconds: milliseconds)
    }

    /// waitpid(2) with a limit (negative: none), SIGKILL when it is reached.
    private func wait(_ pid: CInt, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        var status: CInt = 0
        var timedOut: CInt = 0
        // ECHILD here means the pid was never ours: a programmer error.
        precondition(kcs_wait_timeout(pid, milliseconds, &status, &timedOut) == 0, "waitpid(\(pid)) failed: errno \(errno)")
        return (Self.exitStatus(status), timedOut != 0)
    }

    static func exitStatus(_ status: CInt) -> ExitStatus {
        status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
    }

    /// waitpid(2) for any child of this process (the kprobe kernel's and the tests' too).
    package func waitForExit(_ pid: CInt) -> ExitStatus {
        var status: CInt = 0
        // EINTR is retried in C; ECHILD here means the pid was never ours: a programmer error.
        precondition(kcs_wait(pid, &status) == 0, "waitpid(\(pid)) failed: errno \(errno)")
        return Self.exitStatus(status)
    }

    /// Reads to the end of file rather than to the size `stat` reports, which is 0 for procfs and
    /// sysfs files (`/proc/mounts`, `/proc/kallsyms`); `nil` with `errno` if it cannot be read.
    package func readTextFile(_ path: String) -> String? {
        readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A file's bytes, read to its end as ``readTextFile(_:)`` reads (binary sysfs files such as
    /// `/sys/module/NAME/notes/.note.gnu.build-id` too); `nil` with `errno` if it cannot be read.
    package func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count { break }
        }
        if ferror(file) != 0 { return nil }
        return bytes
    }
}
