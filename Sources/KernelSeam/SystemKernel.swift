#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKernelShim

/// The kernel itself: each call goes straight to libc or the C shim.
package struct SystemKernel: KernelInterface {
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

    package func currentThreadID() -> CInt {
        kcs_gettid()
    }

    package func probeSyscall() {
        _ = kcs_probe_syscall()
    }

    package func spawnEnabled(
        path: String, arguments: [String], environment: [String], fd: CInt,
        enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        // Everything the child touches is prepared here: it may only make async-signal-safe calls.
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var stage: CInt = 0
        var error: CInt = 0
        let call = kcs_enable_call(
            request: enable.request, argument: enable.argument, argument_by_pointer: enable.byPointer ? 1 : 0)
        let pid = kcs_spawn_enabled(
            path, &argv, &envp, fd, call, buffer.assumingMemoryBound(to: UInt64.self), &stage, &error)
        if pid >= 0 { return .running(pid: pid) }
        switch UInt32(stage) {
        case KCS_SPAWN_ENABLE.rawValue: return .enableFailed(errno: error)
        case KCS_SPAWN_EXEC.rawValue: return .execFailed(errno: error)
        default: return .forkFailed(errno: error)
        }
    }

    /// waitpid(2) for any child of this process (the kprobe kernel's and the tests' too).
    package func waitForExit(_ pid: CInt) -> ExitStatus {
        var status: CInt = 0
        // EINTR is retried in C; ECHILD here means the pid was never ours: a programmer error.
        precondition(kcs_wait(pid, &status) == 0, "waitpid(\(pid)) failed: errno \(errno)")
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(status & 0x7f)
    }

    /// Reads to the end of file rather than to the size `stat` reports, which is 0 for procfs and
    /// sysfs files (`/proc/mounts`, `/proc/kallsyms`); `nil` with `errno` if it cannot be read.
    package func readTextFile(_ path: String) -> String? {
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
        return String(decoding: bytes, as: UTF8.self)
    }
}
