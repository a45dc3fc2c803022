public import CoverageAPI
package import KernelSeam

/// What FreeBSD's own kcov tests do beyond the seam: run work on a new thread that is destroyed
/// when it is joined, and let the whole process exit without cleaning up.
///
/// Implementation requirements:
/// - `startThread` runs `body` on a new thread; the returned closure joins it, after which the
///   kernel has destroyed the thread (`thread_dtor`), returning an fd it left enabled to READY.
/// - `simulateProcessExit` closes every fd, drops every mapping and destroys every thread as
///   exit(2) would, and returns true; a real process cannot do that and go on, so it returns false.
package protocol FreeBSDProcessInterface: Sendable {
    func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void
    func simulateProcessExit() -> Bool
}

extension SystemKernel: FreeBSDProcessInterface {}

extension FreeBSDKcovBackend {
    /// The seam's FreeBSD extras, or why there are none.
    private func process(for what: String) throws(CoverageError) -> any FreeBSDProcessInterface {
        guard let process = kernel as? any FreeBSDProcessInterface else {
            throw CoverageError(.unsupportedOperation, "this kernel interface cannot \(what) (it does not adopt FreeBSDProcessInterface)")
        }
        return process
    }

    /// Starts `body` on a new thread (with no kcov binding); the returned closure joins it, and
    /// once joined the thread is destroyed, which returns what it left enabled to READY.
    public func startThread(_ body: @escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void {
        try process(for: "start a thread").startThread(body)
    }

    /// Ends the process that holds every open kcov fd and mapping without closing or unmapping
    /// them, as exit(2) does; possible only on a simulated kernel (`.unsupportedOperation` otherwise).
    public func exitProcess() throws(CoverageError) {
        guard try process(for: "exit a process").simulateProcessExit() else {
            throw CoverageError(.unsupportedOperation, "a real process cannot exit and go on running checks")
        }
    }
}
