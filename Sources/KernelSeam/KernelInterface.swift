#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
package import CoverageAPI

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
    /// A shared, read-write mmap(2) of `length` bytes of `fd` at `offset` for a coverage buffer,
    /// with an inaccessible guard page on each side where the memory is real (a stray write just
    /// past either end faults instead of corrupting other memory or the buffer's neighbour);
    /// `nil` with `errno` like mmap(2). A model, whose buffers are its own memory, maps without
    /// guards (the default).
    func mmapBetweenGuards(length: Int, fd: CInt, offset: Int) -> UnsafeMutableRawPointer?
    /// munmap(2) of a mapping from ``mmapBetweenGuards(length:fd:offset:)``, guards included.
    func munmapBetweenGuards(_ address: UnsafeMutableRawPointer, length: Int) -> CInt
    /// gettid(2).
    func currentThreadID() -> CInt
    /// Makes the probe syscall, `read(-1, NULL, 0)`: a short, deterministic kernel path.
    func probeSyscall()
    /// Resets the count word of the coverage buffer at `buffer` (a mapping of `bufferBytes` bytes)
    /// to 0, then starts a child that puts `command`'s standard streams in place, enables coverage
    /// on `fd` with `enable` and execs `command.path` with its arguments and environment, without
    /// writing to the buffer; see ``SpawnOutcome``. The trace starts with the child's ENABLE
    /// return path.
    func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome
    /// waitpid(2) for a child from ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``.
    func waitForExit(_ pid: CInt) -> ExitStatus
    /// waitpid(2) for at most `milliseconds`; then kill(2) with SIGKILL and waitpid(2).
    /// `timedOut` says the kill ended it.
    func waitForExit(_ pid: CInt, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool)
    /// The fork server's step: resets the count word at `buffer` to 0, forks without exec, and in
    /// the child enables coverage on `fd` with `enable`, runs `child` and exits with the status it
    /// returns; the parent waits (at most `timeoutMilliseconds`, then kills with SIGKILL) and
    /// reaps. See ``ForkOutcome``.
    func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome
    /// The contents of a small text file such as `/proc/mounts`, or `nil` with `errno`.
    func readTextFile(_ path: String) -> String?
    /// Runs `body` on a new thread of this process (its own thread id) and returns its result
    /// once the thread has exited; the kernel's per-thread state, a kcov binding included, goes
    /// with the thread (its exit path runs). A model runs its simulated exit path for it.
    func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T
    /// Whether this is the running system's kernel, whose procfs and sysfs describe where its
    /// code is (a trace's ``KernelLayout``); a model has no such files.
    var isRunningSystem: Bool { get }
}

extension KernelInterface {
    /// A model, not the running system.
    package var isRunningSystem: Bool { false }

    /// Without guard pages: a plain shared read-write mmap(2).
    package func mmapBetweenGuards(length: Int, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        mmap(length: length, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: offset)
    }

    /// Without guard pages: munmap(2).
    package func munmapBetweenGuards(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        munmap(address, length: length)
    }

    /// A real thread: the kernel runs its exit path when it ends.
    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        POSIXThread.run(body)
    }

    /// A model's children have finished before its spawn returns: the wait cannot time out.
    package func waitForExit(_ pid: CInt, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) {
        (waitForExit(pid), false)
    }
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
    /// dup2 of a standard stream failed in the child with this errno; the child was reaped.
    case redirectFailed(errno: CInt)
}

/// What happened to a child started by `forkEnabled`.
package enum ForkOutcome: Sendable, Equatable {
    /// The child enabled coverage, ran, and was reaped; `timedOut` says the parent killed it.
    case finished(pid: CInt, status: ExitStatus, timedOut: Bool)
    /// The child's ENABLE ioctl failed with this errno; the child was reaped.
    case enableFailed(errno: CInt)
    /// fork or pipe failed in the parent with this errno.
    case forkFailed(errno: CInt)
}

/// How a child process ended.
package enum ExitStatus: Sendable, Equatable {
    case exited(CInt)
    case signaled(CInt)
}
