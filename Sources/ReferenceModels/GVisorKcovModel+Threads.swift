#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
package import KernelSeam
package import CoverageAPI
import Synchronization

extension GVisorKcovModel {
    /// Runs `body` on a new real thread (its own kernel tid and its own sentry task), runs the
    /// model's thread-exit path for that tid when `body` returns (Docs/kcov-gvisor.md#thread-exit: the Kcov it enabled last
    /// goes back to INIT with its buffer), waits for the thread and returns `body`'s result.
    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        runOnRealThread(body) { [self] tid in threadExited(tid) }
    }

    /// A simulated `fork` + ENABLE + `execve` (Docs/kcov-gvisor.md#fork-and-clone, Docs/kcov-gvisor.md#exec).
    ///
    /// A model cannot fork into itself, so the child is a new real thread of this process that
    /// takes the forked child's steps, in the child's order, through this model:
    /// 0. (In the parent) a relaxed atomic store of 0 to the count word at `buffer`, then the
    ///    fork syscall (``syscallBlocks``, and the parent's return to user space). The child is a
    ///    new task: it does not inherit the parent's collection (`Task.kcov` and task work are not
    ///    copied), only the fd, so the same Kcov and its buffer.
    /// 1. ENABLE on `fd` with `enable` (by value, or by pointer to an `int`, which gVisor sees as
    ///    the address's low byte). A failure is ``SpawnOutcome/enableFailed(errno:)``. On success
    ///    the ENABLE clears everyone's pending coverage and its own return writes
    ///    ``ioctlExitBlocks``.
    /// 2. `execve(path)` (``syscallBlocks``; collection survives exec, Docs/kcov-gvisor.md#exec [inferred]). If `path`
    ///    is not an existing regular file with execute permission (`stat`, `access(X_OK)`), the
    ///    execve returns to the child, which reports the errno (one more syscall) and exits:
    ///    ``SpawnOutcome/execFailed(errno:)``.
    /// 3. The new image makes one ``probeSyscall()``, then `exit_group`, whose blocks
    ///    (``syscallBlocks``) run but are never written by the child, because that syscall does
    ///    not return: they stay pending for whoever returns next. Then the thread-exit path.
    ///
    /// So a successful child leaves exactly three windows after the count the parent reset:
    /// `window(ioctlExitBlocks) + window(syscallBlocks) + window(probeBlocks)`, and
    /// ``syscallBlocks`` pending.
    /// As in the C shim, ENABLE comes first: an fd that cannot be enabled is reported as
    /// `.enableFailed` even when `path` could not be executed either.
    /// The command's arguments, environment, streams and timeout are not used: nothing is really executed. The parent blocks
    /// until the simulated child has finished (a legal schedule of a real fork), then returns
    /// ``SpawnOutcome/running(pid:)`` with a synthetic pid that ``waitForExit(_:)`` reaps as
    /// `.exited(0)`.
    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        let path = command.path
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        simulateSyscall()  // fork, in the parent
        let child: SimulatedChildOutcome = runOnNewThread { [self] in
            let enabled = simulateChildEnable(enable, fd: fd)
            if enabled != 0 { return .enableFailed(errno) }
            simulateSyscall()  // execve
            if let error = simulatedExecError(path) {
                simulateSyscall()  // the failure report
                simulateSyscall(returns: false)  // _exit
                return .execFailed(error)
            }
            probeSyscall()
            simulateSyscall(returns: false)  // exit_group
            return .exited
        }
        return child.spawnOutcome(zombie: finishChild)
    }

    /// The fork server's step, simulated: as ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``,
    /// the child is a new real thread that takes the child's steps through this model — ENABLE on
    /// the inherited `fd` (its failure is ``ForkOutcome/enableFailed(errno:)``), `child`, then
    /// `exit_group` — and the parent makes the fork and the wait. A thread cannot be killed, so
    /// `timeoutMilliseconds` is not applied here.
    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        simulateSyscall()  // fork, in the parent
        let result = withoutActuallyEscaping(child) { child in
            let body = ForkedBody(run: child)
            return runOnNewThread { [self] in
                simulateForkedChild(enable, fd: fd, body: body) { simulateSyscall(returns: false) }
            }
        }
        switch result {
        case .enableFailed(let code):
            return .enableFailed(errno: code)
        case .exited(let status):
            let pid = finishChild()
            simulateSyscall()  // waitpid
            _ = reapChild(pid)
            return .finished(pid: pid, status: .exited(status), timedOut: false)
        }
    }

    /// waitpid(2) for a simulated child: `.exited(0)`. A syscall A syscall of the caller like any other. A
    /// pid this model did not hand out, or one already reaped, is a programmer error (as ECHILD
    /// is for ``SystemKernel``).
    package func waitForExit(_ pid: CInt) -> ExitStatus {
        simulateSyscall()
        let status = reapChild(pid)
        precondition(status != nil, "waitpid(\(pid)): not a child of this model")
        return status!
    }

}
