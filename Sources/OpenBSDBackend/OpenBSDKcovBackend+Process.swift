public import CoverageAPI
package import KernelSeam

/// What OpenBSD's own kcov regress tests do beyond the seam: threads, a forked child that runs
/// Swift code, sending a descriptor over a socket, a kernel task run on behalf of the process, and
/// the process exiting without cleanup.
///
/// Implementation requirements:
/// - `startThread` runs `body` on a new thread; the returned closure joins it. By then the thread
///   has exited, and `kcov_exit` has returned what it left enabled to READY (or freed it, if closed).
/// - `forkChild` runs `body` as a forked child (its own thread with no binding, the same fds and
///   mappings), waits for it to exit and returns true; a real process cannot fork into Swift code
///   safely, so it returns false.
/// - `sendDescriptor` sends `fd` over a local socket with SCM_RIGHTS and returns 0 or the errno;
///   `nil` where it cannot be tried.
/// - `runProcessTask` runs one kernel task queued on behalf of this process (what a kqueue watching
///   a kqueue makes OpenBSD do) and returns true; `false` where that cannot be caused on demand.
/// - `simulateProcessExit` closes every fd, drops every mapping and exits every thread, returning
///   true; a real process cannot, so it returns false.
package protocol OpenBSDProcessInterface: Sendable {
    func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void
    func forkChild(_ body: @escaping @Sendable () -> Void) -> Bool
    func sendDescriptor(_ fd: CInt) -> CInt?
    func runProcessTask() -> Bool
    func simulateProcessExit() -> Bool
}

extension SystemKernel: OpenBSDProcessInterface {
    package func forkChild(_ body: @escaping @Sendable () -> Void) -> Bool { false }
    package func sendDescriptor(_ fd: CInt) -> CInt? { nil }
    package func runProcessTask() -> Bool { false }
}

extension OpenBSDKcovBackend {
    /// The seam's OpenBSD extras, or why there are none.
    private func process(for what: String) throws(CoverageError) -> any OpenBSDProcessInterface {
        guard let process = kernel as? any OpenBSDProcessInterface else {
            throw CoverageError(.unsupportedOperation, "this kernel interface cannot \(what) (it does not adopt OpenBSDProcessInterface)")
        }
        return process
    }

    /// Starts `body` on a new thread (no kcov binding); the returned closure joins it, and by then
    /// the thread's exit has returned what it left enabled to READY.
    public func startThread(_ body: @escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void {
        try process(for: "start a thread").startThread(body)
    }

    /// Runs `body` in a forked child that shares this process's fds and mappings, and waits for it
    /// to exit; `.unsupportedOperation` where a child cannot run Swift code (a real process).
    public func inForkedChild(_ body: @escaping @Sendable () -> Void) throws(CoverageError) {
        guard try process(for: "fork").forkChild(body) else {
            throw CoverageError(.unsupportedOperation, "a forked child of this process cannot run the check's code (only the model can simulate it)")
        }
    }

    /// sendmsg(2) of `fd` with SCM_RIGHTS over a socket pair: nil when it went through, else its errno.
    public func sendOverSocket(_ fd: Int32) throws(CoverageError) -> Int32? {
        guard let result = try process(for: "send a descriptor").sendDescriptor(fd) else {
            throw CoverageError(.unsupportedOperation, "sending a descriptor is not simulated on this kernel interface")
        }
        return result == 0 ? nil : result
    }

    /// Makes the kernel run one task on behalf of this process (OpenBSD's test watches a kqueue
    /// with a kqueue for this); `.unsupportedOperation` where it cannot be caused here.
    public func runProcessTask() throws(CoverageError) {
        guard try process(for: "run a kernel task").runProcessTask() else {
            throw CoverageError(.unsupportedOperation, "a kernel task on behalf of this process cannot be caused on this kernel interface")
        }
    }

    /// Ends the process that holds every open kcov fd and mapping without closing or unmapping
    /// them; possible only on a simulated kernel (`.unsupportedOperation` otherwise).
    public func exitProcess() throws(CoverageError) {
        guard try process(for: "exit a process").simulateProcessExit() else {
            throw CoverageError(.unsupportedOperation, "a real process cannot exit and go on running checks")
        }
    }
}
