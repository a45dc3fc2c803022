public import Conformance
import CoverageAPI
import KernelSeam
public import OpenBSDBackend
package import ReferenceModels

// Joins three targets that must not depend on each other: the OpenBSD model offers the process
// operations OpenBSD's own regress tests need (threads, forked children, descriptor passing, a
// kernel task of the process, process exit), and the OpenBSD backend runs the OpenBSD-specific
// conformance checks. Used by kcovctl and the BSD tests.

extension OpenBSDKcovModel: OpenBSDProcessInterface {
    package func forkChild(_ body: @escaping @Sendable () -> Void) -> Bool {
        runInForkedChild(body)
        return true
    }

    package func sendDescriptor(_ fd: CInt) -> CInt? {
        sendOverSocket(fd)
    }

    package func runProcessTask() -> Bool {
        runKernelTask()
        return true
    }

    package func simulateProcessExit() -> Bool {
        exitProcess()
        return true
    }
}

extension OpenBSDKcovBackend: OpenBSDKcovOperations {}
