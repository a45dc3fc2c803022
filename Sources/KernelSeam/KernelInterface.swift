/// The syscalls a coverage backend makes, with C conventions: a call that fails returns -1 (or
/// `nil` for ``mmap(length:protection:flags:fd:offset:)``) and leaves the reason in `errno`, which
/// the caller reads at once.
///
/// ``SystemKernel`` passes each call straight to the kernel. Reference models implement the same
/// protocol with a simulated driver, so every line of Swift above this seam runs under test.
///
/// Implementation requirements:
/// - Set `errno` on every failure and leave it alone on success.
/// - Hand out real, readable and writable memory from `mmap`; a model may not return a pointer
///   that faults.
/// - `currentThreadID()` identifies the calling thread the way the kernel's per-thread state does.
package protocol KernelInterface: Sendable {
    /// open(2).
    func open(_ path: String, flags: CInt) -> CInt
    /// close(2).
    func close(_ fd: CInt) -> CInt
    /// ioctl(2) with its argument passed by value.
    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt
    /// ioctl(2) with its argument passed by pointer.
    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt
    /// mmap(2); `nil` where C returns `MAP_FAILED`.
    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer?
    /// munmap(2).
    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt
    /// gettid(2).
    func currentThreadID() -> CInt
    /// Makes the probe syscall, `read(-1, NULL, 0)`: a short, deterministic kernel path.
    func probeSyscall()
    /// Resets the count word of the coverage buffer at `buffer` (a mapping of `bufferBytes` bytes)
    /// to 0, then starts a child that enables coverage on `fd` with `enable` and execs `path`,
    /// without writing to the buffer; see ``SpawnOutcome``. The trace starts with the child's
    /// ENABLE return path.
    func spawnEnabled(
        path: String, arguments: [String], environment: [String], fd: CInt,
        enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome
    /// waitpid(2) for a child from ``spawnEnabled(path:arguments:environment:fd:enable:buffer:bufferBytes:)``.
    func waitForExit(_ pid: CInt) -> ExitStatus
    /// The contents of a small text file such as `/proc/mounts`, or `nil` with `errno`.
    func readTextFile(_ path: String) -> String?
}

/// The ioctl a forked child makes to turn coverage on for itself.
package struct EnableCall: Sendable, Equatable {
    /// The ioctl request number.
    package var request: UInt
    /// The mode argument.
    package var argument: UInt
    /// Whether the kernel takes the argument through a pointer to an `int` (NetBSD) or by value (Linux).
    package var byPointer: Bool

    package init(request: UInt, argument: UInt, byPointer: Bool) {
        self.request = request
        self.argument = argument
        self.byPointer = byPointer
    }
}

/// What happened to a child started by `spawnEnabled`.
package enum SpawnOutcome: Sendable, Equatable {
    /// The child enabled coverage and exec'd; wait for it.
    case running(pid: CInt)
    /// The child's ENABLE ioctl failed with this errno; the child was reaped.
    case enableFailed(errno: CInt)
    /// execve failed with this errno (for example ENOENT, EACCES); the child was reaped.
    case execFailed(errno: CInt)
    /// fork or pipe failed in the parent with this errno.
    case forkFailed(errno: CInt)
}

/// How a child process ended.
package enum ExitStatus: Sendable, Equatable {
    case exited(CInt)
    case signaled(CInt)
}
