import CoverageAPI
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The errnos the sweep leaves out because only a bug in KernelCoverage can produce them: the
/// library traps on each by contract (KcovDriver's requirements), with a message that says so. Each
/// runs in a child process (an exit test), over the Linux model's collect scenario.
@Suite struct FaultContractTests {
    /// The child's standard error once it has trapped.
    static func trapMessage(_ result: ExitTest.Result?) -> String {
        String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
    }

    @Test func aKcovIoctlFailingWithEBADFTraps() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let world = Kernels.linux.make(FaultPlan(Fault(.ioctl, n: 1, errno: EBADF)))
            _ = world.onThread { Scenarios.collect(world.backend, mode: .pc) }
        }
        #expect(Self.trapMessage(result).contains("failed with EBADF: a bug in KernelCoverage"))
    }

    @Test func aKcovIoctlFailingWithEFAULTTraps() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let world = Kernels.linux.make(FaultPlan(Fault(.ioctl, n: 2, errno: EFAULT)))
            _ = world.onThread { Scenarios.collect(world.backend, mode: .pc) }
        }
        #expect(Self.trapMessage(result).contains("failed with EFAULT: a bug in KernelCoverage"))
    }

    @Test func aCloseFailingWithEBADFTrapsAsADoubleClose() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let world = Kernels.linux.make(FaultPlan(Fault(.close, n: 1, errno: EBADF)))
            _ = world.onThread { Scenarios.collect(world.backend, mode: .pc) }
        }
        #expect(Self.trapMessage(result).contains("twice"))
    }

    @Test func aFailedMunmapOfACoverageBufferTraps() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let world = Kernels.linux.make(FaultPlan(Fault(.munmap, n: 1, errno: EINVAL)))
            _ = world.onThread { Scenarios.collect(world.backend, mode: .pc) }
        }
        #expect(Self.trapMessage(result).contains("munmap of a kcov buffer failed"))
    }
}
