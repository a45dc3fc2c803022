import CoverageAPI
import KernelSeam
import KprobeBackend
import ReferenceModels
import Synchronization

/// The kprobe PMU model with one deliberate defect: each defect breaks exactly the behaviour one
/// `function.*` check proves, so that check must fail against it.
final class MutantKprobeKernel: KprobeKernel, @unchecked Sendable {
    enum Defect: String, CaseIterable, Sendable {
        case probeEntersNothing, countSaturatesAtOne, probeVaries, disableKeepsCounting
        case reenableIsIgnored, countsEveryThread, closeKeepsProbes
    }

    let model = KprobePMUModel()
    let defect: Defect

    private struct State {
        /// The thread each open event is bound to.
        var boundThreads: [Int32: Int32] = [:]
        var everEnabled: Set<Int32> = []
        var probes = 0
    }

    private let state = Mutex(State())

    init(_ defect: Defect) {
        self.defect = defect
    }

    func readTextFile(_ path: String) -> String? { model.readTextFile(path) }
    func fileExists(_ path: String) -> Bool { model.fileExists(path) }

    func openKprobe(pmuType: UInt32, target: KprobeTarget, pid: Int32, groupLeader: Int32, flags: KprobeOpenFlags) -> Int32 {
        let fd = model.openKprobe(pmuType: pmuType, target: target, pid: pid, groupLeader: groupLeader, flags: flags)
        if fd >= 0 { state.withLock { $0.boundThreads[fd] = pid } }
        return fd
    }

    func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Int32 {
        switch (defect, request) {
        case (.disableKeepsCounting, PerfIoctl.disable):
            return 0
        case (.reenableIsIgnored, PerfIoctl.enable) where state.withLock({ $0.everEnabled.contains(fd) }):
            return 0
        default:
            let result = model.ioctl(fd, request, value: value)
            if result == 0 && request == PerfIoctl.enable { state.withLock { _ = $0.everEnabled.insert(fd) } }
            return result
        }
    }

    func readCounter(_ fd: Int32) -> UInt64? {
        let count = model.readCounter(fd)
        return defect == .countSaturatesAtOne ? count.map { min($0, 1) } : count
    }

    func close(_ fd: Int32) -> Int32 {
        if defect == .closeKeepsProbes { return 0 }
        state.withLock { _ = $0.boundThreads.removeValue(forKey: fd) }
        return model.close(fd)
    }

    func currentThreadID() -> Int32 { model.currentThreadID() }

    func probeSyscall() {
        let (probes, threads) = state.withLock { state in
            state.probes += 1
            return (state.probes, Set(state.boundThreads.values))
        }
        switch defect {
        case .probeEntersNothing:
            return
        case .countsEveryThread:
            for thread in threads { model.enter("ksys_read", thread: thread) }
        case .probeVaries where probes % 2 == 0:
            model.enter("vfs_open", thread: currentThreadID())
            model.probeSyscall()
        default:
            model.probeSyscall()
        }
    }

    func spawnPaused(_ command: Command) -> PausedChild? {
        model.spawnPaused(command)
    }

    func release(_ child: PausedChild) -> Int32 { model.release(child) }
    func abandon(_ child: PausedChild) { model.abandon(child) }
    func waitForExit(_ pid: Int32) -> ExitStatus { model.waitForExit(pid) }
    func waitForExit(_ pid: Int32, milliseconds: Int32) -> (status: ExitStatus, timedOut: Bool) { model.waitForExit(pid, milliseconds: milliseconds) }
    func openPerfEventCount() -> Int { model.openPerfEventCount() }
}
