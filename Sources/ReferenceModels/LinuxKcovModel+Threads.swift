#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
package import KernelSeam
package import CoverageAPI
import Synchronization

extension LinuxKcovModel {
    /// Runs `body` on a new real thread (its own kernel tid), runs the model's thread-exit path
    /// for that tid when `body` returns (Docs/kcov-linux.md#threads-and-lifecycle: coverage it enabled is disabled, its fd goes back to
    /// INIT with the buffer), waits for the thread and returns `body`'s result.
    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        runOnRealThread(body) { [self] tid in threadExited(tid) }
    }

    /// A simulated `fork` + ENABLE + `execve` (Docs/kcov-linux.md#fork-and-clone, Docs/kcov-linux.md#exec).
    ///
    /// A model cannot fork into itself, so the child is a new real thread of this process that
    /// takes the forked child's steps, in the child's order, through this model:
    /// 0. (In the parent) a relaxed atomic store of 0 to the count word at `buffer`; the child
    ///    does not inherit the mapping, so it cannot reset the count itself.
    /// 1. ENABLE on the inherited `fd` with `enable` (by value, or by pointer to an `int`); a
    ///    failure is ``SpawnOutcome/enableFailed(errno:)`` (the child is reaped). ENABLE's
    ///    return path (``ioctlExitPath``) stays in the trace.
    /// 3. `execve(path)`: records ``syscallPath``; if `path` is not an existing regular file with
    ///    execute permission (`stat`, `access(X_OK)`) the child reports
    ///    ``SpawnOutcome/execFailed(errno:)`` (ENOENT, EACCES, …) after recording one more
    ///    ``syscallPath`` (its report), and exits.
    /// 4. The new image makes one ``probeSyscall()`` and exits: ``syscallPath`` for `exit_group`,
    ///    then the thread-exit path, which disables coverage (Docs/kcov-linux.md#thread-exit).
    ///
    /// So a successful child leaves exactly `ioctlExitPath + syscallPath + probePath + syscallPath`
    /// in the buffer.
    /// As in the C shim, ENABLE comes first: an fd that cannot be enabled is reported as
    /// `.enableFailed` even when `path` could not be executed either.
    /// The command's arguments, environment, streams and timeout are not used: nothing is really executed. The parent blocks
    /// until the simulated child has finished (a legal schedule of a real fork), then returns
    /// ``SpawnOutcome/running(pid:)`` with a synthetic pid that ``waitForExit(_:)`` reaps as
    /// `.exited(0)`. The parent's own call records one ``syscallPath`` if it is tracing.
    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        let path = command.path
        let parent = Self.threadID()
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        recordSyscall(for: parent)
        let child: SimulatedChildOutcome = runOnNewThread { [self] in
            let enabled = simulateChildEnable(enable, fd: fd)
            if enabled != 0 { return .enableFailed(errno) }
            let tid = Self.threadID()
            recordSyscall(for: tid)  // execve
            if let error = simulatedExecError(path) {
                recordSyscall(for: tid)  // the failure report
                return .execFailed(error)
            }
            probeSyscall()
            recordSyscall(for: tid)  // exit_group
            return .exited
        }
        return child.spawnOutcome(zombie: finishChild)
    }

    /// The fork server's step, simulated (Docs/kcov-linux.md#fork-and-clone): as
    /// ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``, the child is a new real thread of this
    /// process that takes the child's steps through this model — ENABLE on the inherited `fd`
    /// (its failure is ``ForkOutcome/enableFailed(errno:)``), `child` (whose syscalls the model
    /// records for that thread), `exit_group` (``syscallPath``), then the thread-exit path — and
    /// the parent records the fork and the wait. A thread cannot be killed, so
    /// `timeoutMilliseconds` is not applied here; the real kernel's child is killed (the guest
    /// tests check it).
    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        let parent = Self.threadID()
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        recordSyscall(for: parent)  // fork
        let result = withoutActuallyEscaping(child) { child in
            let body = ForkedBody(run: child)
            return runOnNewThread { [self] in
                simulateForkedChild(enable, fd: fd, body: body) { recordSyscall(for: Self.threadID()) }
            }
        }
        switch result {
        case .enableFailed(let code):
            return .enableFailed(errno: code)
        case .exited(let status):
            let pid = finishChild()
            recordSyscall(for: parent)  // waitpid
            _ = reapChild(pid)
            return .finished(pid: pid, status: .exited(status), timedOut: false)
        }
    }

    /// waitpid(2) for a simulated child: `.exited(0)`. A pid this model did not hand out, or one
    /// already reaped, is a programmer error (as ECHILD is for ``SystemKernel``).
    package func waitForExit(_ pid: CInt) -> ExitStatus {
        recordSyscall(for: Self.threadID())
        let status = reapChild(pid)
        precondition(status != nil, "waitpid(\(pid)): not a child of this model")
        return status!
    }

    // MARK: Helpers

}
