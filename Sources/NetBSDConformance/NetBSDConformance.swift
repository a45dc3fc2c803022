public import Conformance
import CoverageAPI
import KernelSeam
public import NetBSDBackend
package import ReferenceModels

// Joins three targets that must not depend on each other: the NetBSD model offers the process
// operations NetBSD's own tests need (dup2, LWPs, process exit), and the NetBSD backend runs the
// NetBSD-specific conformance checks. Used by kcovctl and the NetBSD tests.

extension NetBSDKcovModel: NetBSDProcessInterface {
    package func startLWP(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        let thread = startThread(body)
        return { thread.join() }
    }

    package func simulateProcessExit() -> Bool {
        exitProcess()
        return true
    }
}

extension NetBSDKcovBackend: NetBSDKcovOperations {}
