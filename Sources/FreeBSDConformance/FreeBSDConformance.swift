public import Conformance
import CoverageAPI
import KernelSeam
public import FreeBSDBackend
package import ReferenceModels

// Joins three targets that must not depend on each other: the FreeBSD model offers the process
// operations FreeBSD's own tests need (threads destroyed at join, process exit), and the FreeBSD
// backend runs the FreeBSD-specific conformance checks. Used by kcovctl and the BSD tests.

extension FreeBSDKcovModel: FreeBSDProcessInterface {
    package func simulateProcessExit() -> Bool {
        exitProcess()
        return true
    }
}

extension FreeBSDKcovBackend: FreeBSDKcovOperations {}
