import Conformance
import CoverageAPI
import KernelSeam
import NetBSDBackend
import NetBSDConformance
import ReferenceModels
import Testing

/// The NetBSD model with one defect, to show the NetBSD checks can fail.
final class MutantNetBSDKernel: KernelInterface, NetBSDProcessInterface, @unchecked Sendable {
    enum Defect { case disableAlwaysSucceeds, probeRecordsNothing, secondEnableAllowed }

    let model = NetBSDKcovModel()
    let defect: Defect

    init(_ defect: Defect) { self.defect = defect }

    func open(_ path: String, flags: CInt) -> CInt { model.open(path, flags: flags) }
    func close(_ fd: CInt) -> CInt { model.close(fd) }
    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        if defect == .disableAlwaysSucceeds, request == NetBSDKcovABI.disable {
            _ = model.ioctl(fd, request, value: value)
            return 0
        }
        return model.ioctl(fd, request, value: value)
    }
    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        let result = model.ioctl(fd, request, pointer: pointer)
        if defect == .secondEnableAllowed, request == NetBSDKcovABI.enable, result != 0 { return 0 }
        return result
    }
    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        model.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
    }
    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt { model.munmap(address, length: length) }
    func currentThreadID() -> CInt { model.currentThreadID() }
    func probeSyscall() { if defect != .probeRecordsNothing { model.probeSyscall() } }
    func spawnEnabled(
        path: String, arguments: [String], environment: [String], fd: CInt,
        enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        model.spawnEnabled(path: path, arguments: arguments, environment: environment, fd: fd, enable: enable, buffer: buffer, bufferBytes: bufferBytes)
    }
    func waitForExit(_ pid: CInt) -> KernelSeam.ExitStatus { model.waitForExit(pid) }
    func readTextFile(_ path: String) -> String? { model.readTextFile(path) }
    func dup2(_ fd: CInt, _ target: CInt) -> CInt { model.dup2(fd, target) }
    func startLWP(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void { model.startLWP(body) }
    func simulateProcessExit() -> Bool { model.simulateProcessExit() }
}

@Suite struct NetBSDChecksCanFailTests {
    @Test(arguments: [
        (MutantNetBSDKernel.Defect.disableAlwaysSucceeds, "netbsd.kcov_enable"),
        (.probeRecordsNothing, "netbsd.kcov_basic_pc"),
        (.secondEnableAllowed, "netbsd.kcov_multienable_on_the_same_thread"),
    ])
    func aDefectFailsItsCheck(_ defect: MutantNetBSDKernel.Defect, _ id: String) {
        let check = NetBSDChecks.all.first { $0.id == id }!
        let result = ConformanceSuite.run(on: NetBSDKcovBackend(kernel: MutantNetBSDKernel(defect)), checks: [check])
        #expect(result.first?.status == .fail, "\(id) passed on a kernel with \(defect)")
    }
}
