public import CoverageAPI
package import KernelSeam

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What NetBSD's own kcov tests do beyond the seam: share a descriptor with dup2, run work on a
/// new LWP that is reaped when it ends, and let the whole process exit without cleaning up.
///
/// A kernel behind ``NetBSDKcovBackend`` may adopt it; the host kernel does (except for process
/// exit), and the NetBSD reference model can (its test target and kcovctl add the conformance).
///
/// Implementation requirements:
/// - `dup2` follows C conventions (-1 and `errno` on failure); the new fd shares the open file.
/// - `startLWP` runs `body` on a new thread; the returned closure joins it, after which the
///   kernel has freed the LWP (so an fd it left enabled is disabled).
/// - `simulateProcessExit` closes every fd, drops every mapping and frees every LWP as exit(2)
///   would, and returns true; a real process cannot do that and go on, so it returns false.
package protocol NetBSDProcessInterface: Sendable {
    func dup2(_ fd: CInt, _ target: CInt) -> CInt
    func startLWP(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void
    func simulateProcessExit() -> Bool
}

extension SystemKernel: NetBSDProcessInterface {
    package func dup2(_ fd: CInt, _ target: CInt) -> CInt {
        Glibc.dup2(fd, target)
    }

    package func startLWP(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        startThread(body)
    }
}

extension NetBSDKcovBackend {
    /// The seam's NetBSD extras, or why there are none.
    private func process(for what: String) throws(CoverageError) -> any NetBSDProcessInterface {
        guard let process = kernel as? any NetBSDProcessInterface else {
            throw CoverageError(.unsupportedOperation, "this kernel interface cannot \(what) (it does not adopt NetBSDProcessInterface)")
        }
        return process
    }

    /// dup2(2): `target` becomes another descriptor of `fd`'s kcov instance (the syzkaller trick of
    /// moving the fd out of the way); returns `target`.
    public func duplicate(_ fd: Int32, onto target: Int32) throws(CoverageError) -> Int32 {
        let result = try process(for: "dup2").dup2(fd, target)
        guard result < 0 else { return result }
        throw CoverageError.system("dup2(\(fd), \(target))", errno: errno)
    }

    /// Starts `body` on a new thread (a new LWP, with no kcov binding); the returned closure joins
    /// it, and once joined its LWP is freed, which disables what it left enabled.
    public func startThread(_ body: @escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void {
        try process(for: "start an LWP").startLWP(body)
    }

    /// Ends the process that holds every open kcov fd and mapping without closing or unmapping
    /// them, as exit(2) does; possible only on a simulated kernel (`.unsupportedOperation` otherwise).
    public func exitProcess() throws(CoverageError) {
        guard try process(for: "exit a process").simulateProcessExit() else {
            throw CoverageError(.unsupportedOperation, "a real process cannot exit and go on running checks")
        }
    }
}
