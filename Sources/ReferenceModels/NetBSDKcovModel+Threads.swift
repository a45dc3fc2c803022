#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
package import KernelSeam
package import CoverageAPI
import Synchronization

extension NetBSDKcovModel {
    /// A real thread running as a new LWP of the simulated process (`pthread_create`): it starts
    /// with `l_kcov` NULL (`lwp_create` zeroes it, Docs/kcov-netbsd.md#new-lwps-and-fork). When its closure returns the LWP exits
    /// (it stops being the current LWP of anything, but an enabled descriptor stays enabled); when
    /// it is joined (`_lwp_wait`) the LWP is freed, which disables that descriptor and frees it if
    /// its fd was closed.
    package final class LWPThread<T: Sendable>: @unchecked Sendable {
        private let model: NetBSDKcovModel
        private let thread: POSIXThread
        private let box: LWPThreadBox<T>
        private let joined = Atomic<Bool>(false)

        fileprivate init(model: NetBSDKcovModel, thread: POSIXThread, box: LWPThreadBox<T>) {
            self.model = model
            self.thread = thread
            self.box = box
        }

        /// The thread's kernel thread id (waits until it has started).
        package var tid: CInt {
            while box.tid.load(ordering: .acquiring) == 0 { sched_yield() }
            return box.tid.load(ordering: .acquiring)
        }

        /// Whether the closure has returned and the LWP has exited (it may not be freed yet).
        package var hasExited: Bool { box.exitToken.load(ordering: .acquiring) != 0 }

        /// Waits until the LWP has exited, without freeing it: a zombie LWP still holds its `l_kcov`.
        package func awaitExit() {
            while !hasExited { sched_yield() }
        }

        /// Joins the thread and frees its LWP (`kcov_lwp_free`); returns the closure's result.
        /// Exactly once.
        package func join() -> T {
            let (result, token) = joinKeepingLWP()
            model.withKernel { $0.freeExitedLWP(token) }
            return result
        }

        /// Joins the real thread but leaves the LWP exited and unfreed; returns its token.
        fileprivate func joinKeepingLWP() -> (T, Int) {
            precondition(!joined.exchange(true, ordering: .acquiringAndReleasing), "LWP thread joined twice")
            thread.join()
            return (box.result!, box.exitToken.load(ordering: .acquiring))
        }
    }

    /// Starts `body` on a new real thread (a new LWP); see ``LWPThread``.
    package func startThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> LWPThread<T> {
        let box = LWPThreadBox<T>()
        let thread = POSIXThread { [self] in
            let tid = Self.threadID()
            box.tid.store(tid, ordering: .releasing)
            box.result = body()
            let token = withKernel { $0.exitLWP(tid) }
            box.exitToken.store(token, ordering: .releasing)
        }
        return LWPThread(model: self, thread: thread, box: box)
    }

    /// Runs `body` on a new LWP, joins it (freeing the LWP, Docs/kcov-netbsd.md#thread-exit) and returns `body`'s result.
    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        startThread(body).join()
    }

    /// A simulated `fork` + ENABLE + `execve` (Docs/kcov-netbsd.md#new-lwps-and-fork, Docs/kcov-netbsd.md#exec).
    ///
    /// A model cannot fork into itself, so the child is a new real thread that takes the forked
    /// child's steps, in the child's order, through this model:
    /// 0. (In the parent) a relaxed atomic store of 0 to the count word at `buffer` (the child
    ///    does not inherit the mapping), then `fork`, which the parent records as ``syscallPath``
    ///    if it is tracing. The child's fd table refers to every open file; its LWP starts with
    ///    `l_kcov` NULL.
    /// 1. ENABLE on the inherited `fd` with `enable`: by pointer to an `int`, or by value, which
    ///    NetBSD takes as the int's address (EFAULT for a small value). A failure is
    ///    ``SpawnOutcome/enableFailed(errno:)``. ENABLE's return path (``ioctlExitPath``) is traced.
    /// 2. `execve(path)` (``syscallPath``; the binding survives exec, Docs/kcov-netbsd.md#exec): if `path` is not an
    ///    existing regular file with execute permission the child records its report and `_exit`
    ///    (``syscallPath`` each) and the outcome is ``SpawnOutcome/execFailed(errno:)``.
    /// 3. The new image makes one ``probeSyscall()`` and exits (``syscallPath``).
    ///
    /// At exit the child's fd table is freed and its LWP exits; its descriptor stays **enabled**
    /// until the LWP is freed, which for a process's last LWP is when the parent reaps it: for
    /// `.running` that is ``waitForExit(_:)`` (until then the parent's ENABLE on the fd is EBUSY);
    /// a failed child is reaped before this returns.
    /// So a successful child leaves exactly `ioctlExitPath + syscallPath + probePath + syscallPath`.
    /// ENABLE comes first: an fd that cannot be enabled is `.enableFailed` even when `path` could
    /// not be executed either. The command's arguments, environment, streams and timeout are not used; the parent blocks until
    /// the simulated child has exited (a legal schedule of a real fork).
    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        let path = command.path
        precondition(bufferBytes >= Self.entrySize, "the buffer must hold its count word")
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        let parent = Self.threadID()
        let table = withKernel { kernel in
            kernel.record(Self.syscallPath, for: parent)
            return kernel.fork()
        }
        let child = startThread { [self] () -> SimulatedChildOutcome in
            defer { withKernel { $0.childExit(table) } }
            let enabled = simulateChildEnable(enable, fd: fd)
            if enabled != 0 { return .enableFailed(errno) }
            let tid = Self.threadID()
            recordSyscall(for: tid)  // execve
            if let error = simulatedExecError(path) {
                recordSyscall(for: tid)  // the failure report
                recordSyscall(for: tid)  // _exit
                return .execFailed(error)
            }
            probeSyscall()
            recordSyscall(for: tid)  // exit
            return .exited
        }
        let (outcome, lwpToken) = child.joinKeepingLWP()
        switch outcome {
        case .enableFailed(let code):
            withKernel { $0.freeExitedLWP(lwpToken) }
            return .enableFailed(errno: code)
        case .execFailed(let code):
            withKernel { $0.freeExitedLWP(lwpToken) }
            return .execFailed(errno: code)
        case .exited:
            return .running(pid: withKernel { $0.addZombie(lwpToken: lwpToken, status: .exited(0)) })
        }
    }

    /// The fork server's step, simulated: as ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``,
    /// the child is a new real thread with its own LWP and a copy of the fd table that takes the
    /// child's steps through this model — ENABLE on the inherited `fd` (its failure is
    /// ``ForkOutcome/enableFailed(errno:)``), `child`, then `exit` — and the parent's wait reaps
    /// it at once, freeing its last LWP (which disables the descriptor it enabled). A thread
    /// cannot be killed, so `timeoutMilliseconds` is not applied here.
    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        let parent = Self.threadID()
        let table = withKernel { kernel in
            kernel.record(Self.syscallPath, for: parent)
            return kernel.fork()
        }
        let (result, lwpToken) = withoutActuallyEscaping(child) { child in
            let body = ForkedBody(run: child)
            return startThread { [self] () -> SimulatedForkResult in
                defer { withKernel { $0.childExit(table) } }
                return simulateForkedChild(enable, fd: fd, body: body) { recordSyscall(for: Self.threadID()) }
            }.joinKeepingLWP()
        }
        switch result {
        case .enableFailed(let code):
            withKernel { $0.freeExitedLWP(lwpToken) }
            return .enableFailed(errno: code)
        case .exited(let status):
            let pid = withKernel { $0.addZombie(lwpToken: lwpToken, status: .exited(status)) }
            return .finished(pid: pid, status: waitForExit(pid), timedOut: false)
        }
    }

    /// wait(2) for a simulated child: reaps it, freeing its last LWP (which disables the
    /// descriptor it enabled), and returns `.exited(0)`. A pid this model did not hand out, or one
    /// already reaped, is a programmer error (as ECHILD is for ``SystemKernel``).
    package func waitForExit(_ pid: CInt) -> ExitStatus {
        let caller = Self.threadID()
        let status = withKernel { kernel in
            kernel.record(Self.syscallPath, for: caller)
            return kernel.reap(pid)
        }
        precondition(status != nil, "wait(\(pid)): not a child of this model")
        return status!
    }

    // MARK: Helpers

    /// Records ``syscallPath`` for `tid` if it is tracing: a syscall with no other effect here.
    private func recordSyscall(for tid: CInt) {
        withKernel { $0.record(Self.syscallPath, for: tid) }
    }

}

/// What an LWP thread hands back: its tid once started, its result, and its exit token.
private final class LWPThreadBox<T: Sendable>: @unchecked Sendable {
    let tid = Atomic<CInt>(0)
    /// 0 while running; the exited LWP's token afterwards (tokens start at 1).
    let exitToken = Atomic<Int>(0)
    /// Written by the thread before `exitToken`, read after the join.
    var result: T?
}
