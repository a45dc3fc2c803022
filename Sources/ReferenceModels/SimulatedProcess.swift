#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam

// What every model's simulated fork + ENABLE + execve shares: the steps are the same on every
// kernel; what each kernel records along the way is the model's own.

/// How a simulated child ended before its parent's wait.
enum SimulatedChildOutcome: Sendable {
    case enableFailed(CInt)
    case execFailed(CInt)
    case exited

    /// What the seam's spawn reports; a child that exited gets a pid from `zombie` to reap later.
    func spawnOutcome(zombie: () -> CInt) -> SpawnOutcome {
        switch self {
        case .enableFailed(let code): .enableFailed(errno: code)
        case .execFailed(let code): .execFailed(errno: code)
        case .exited: .running(pid: zombie())
        }
    }
}

/// How a simulated forked child (the fork server's) ended.
enum SimulatedForkResult: Sendable {
    case enableFailed(CInt)
    case exited(CInt)
}

/// The fork server's child body, carried to the simulated child's thread. Only made inside
/// `withoutActuallyEscaping`, and the thread is joined before that scope ends.
struct ForkedBody: @unchecked Sendable {
    let run: () -> CInt
}

/// Runs `body` on a new pthread (its own kernel tid), then `exited(tid)` on that thread — the
/// model's thread-exit path — joins it and returns `body`'s result.
func runOnRealThread<T: Sendable>(
    _ body: @escaping @Sendable () -> T, thenExit exited: @escaping @Sendable (CInt) -> Void
) -> T {
    POSIXThread.run {
        let tid = SystemKernel().currentThreadID()
        let result = body()
        exited(tid)
        return result
    }
}

extension KernelInterface {
    /// A simulated forked child's steps on its own thread: ENABLE on the inherited `fd`, the
    /// body, then `exiting` (the model's exit syscall). Its status is the body's low 8 bits, as
    /// `_exit` passes them on.
    func simulateForkedChild(_ enable: EnableCall, fd: CInt, body: ForkedBody, exiting: () -> Void) -> SimulatedForkResult {
        guard simulateChildEnable(enable, fd: fd) == 0 else { return .enableFailed(errno) }
        let status = body.run()
        exiting()
        return .exited(status & 0xff)
    }

    /// The child's ENABLE through this kernel: by value, or through a pointer to an `int`.
    func simulateChildEnable(_ enable: EnableCall, fd: CInt) -> CInt {
        guard enable.byPointer else { return ioctl(fd, enable.request, value: enable.argument) }
        var mode = CInt(truncatingIfNeeded: enable.argument)
        return withUnsafeMutableBytes(of: &mode) { ioctl(fd, enable.request, pointer: $0.baseAddress!) }
    }
}

/// Why `execve(path)` would fail, or `nil` if it would run: a missing path gives its errno, a
/// directory or other non-regular file EACCES, a file without execute permission EACCES.
func simulatedExecError(_ path: String) -> CInt? {
    var info = stat()
    guard stat(path, &info) == 0 else { return errno }
    guard info.st_mode & S_IFMT == S_IFREG else { return EACCES }
    guard access(path, X_OK) == 0 else { return errno }
    return nil
}
