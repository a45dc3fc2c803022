import Conformance
import CoverageAPI
import FreeBSDBackend
import FreeBSDConformance
import OpenBSDBackend
import OpenBSDConformance
import ReferenceModels
import Testing

/// Every FreeBSD and OpenBSD check fails against a kernel that breaks the behaviour it proves, and
/// passes on the faithful model: a check with no defective model that makes it fail is unproven.
@Suite struct BSDEveryCheckCanFailTests {
    static let freeBSDCatches: [(check: String, defect: MutantFreeBSDKernel.Defect)] = [
        ("freebsd.kcov_bufsize", .acceptsTinyBuffer),
        ("freebsd.kcov_mmap", .mapWithoutBuffer),
        ("freebsd.kcov_mmap_no_munmap", .closeFreesMappedBuffer),
        ("freebsd.kcov_mmap_no_munmap_no_close", .panicsAtExitWithMapping),
        ("freebsd.kcov_enable", .disableAlwaysSucceeds),
        ("freebsd.kcov_enable_no_disable", .panicsDestroyingThreadOfClosedFd),
        ("freebsd.kcov_enable_no_disable_no_close", .panicsAtExitWhileEnabled),
        ("freebsd.kcov_mmap_enable_thread_close", .panicsDestroyingThreadOfClosedFd),
        ("freebsd.kcov_basic_pc", .probeRecordsNothing),
        ("freebsd.kcov_basic_cmp", .cmpRecordsNothing),
        ("freebsd.kcov_thread_pc", .recordsOtherThreads),
        ("freebsd.kcov_thread_cmp", .recordsOtherThreads),
        ("freebsd.kcov_enable_multi_thread", .threadExitKeepsRunning),
    ]

    static let openBSDCatches: [(check: String, defect: MutantOpenBSDKernel.Defect)] = [
        ("openbsd.close", .exclusiveOpen),
        ("openbsd.coverage", .recordsNothing),
        ("openbsd.dying", .closeWhileTracingRefused),
        ("openbsd.exec", .forkedChildCannotEnable),
        ("openbsd.fdsend", .fdPassingAllowed),
        ("openbsd.fork", .forkedChildCannotEnable),
        ("openbsd.open", .recordsIntoOtherBuffers),
        ("openbsd.remote", .remoteTasksRecordNothing),
        ("openbsd.remote-close", .panicsClosingRemote),
        ("openbsd.remote-interrupt", .remoteDisableRefused),
        ("openbsd.state", .disableAlwaysSucceeds),
    ]

    @Test(arguments: freeBSDCatches)
    func freeBSDCheckFailsOnItsDefect(check: String, defect: MutantFreeBSDKernel.Defect) {
        let subject = FreeBSDChecks.all.first { $0.id == check }!
        let mutant = ConformanceSuite.run(on: FreeBSDKcovBackend(kernel: MutantFreeBSDKernel(defect)), checks: [subject])
        #expect(mutant.first?.status == .fail, "\(check) did not catch \(defect.rawValue): \(mutant.first?.detail ?? "")")
        let faithful = ConformanceSuite.run(on: FreeBSDKcovBackend(kernel: FreeBSDKcovModel()), checks: [subject])
        #expect(faithful.first?.status == .pass, "\(faithful.first?.detail ?? "")")
    }

    @Test(arguments: openBSDCatches)
    func openBSDCheckFailsOnItsDefect(check: String, defect: MutantOpenBSDKernel.Defect) {
        let subject = OpenBSDChecks.all.first { $0.id == check }!
        let mutant = ConformanceSuite.run(on: OpenBSDKcovBackend(kernel: MutantOpenBSDKernel(defect)), checks: [subject])
        #expect(mutant.first?.status == .fail, "\(check) did not catch \(defect.rawValue): \(mutant.first?.detail ?? "")")
        let faithful = ConformanceSuite.run(on: OpenBSDKcovBackend(kernel: OpenBSDKcovModel()), checks: [subject])
        #expect(faithful.first?.status == .pass, "\(faithful.first?.detail ?? "")")
    }

    @Test func everyCheckHasADefectAndEveryDefectACheck() {
        #expect(Set(FreeBSDChecks.all.map(\.id)) == Set(Self.freeBSDCatches.map(\.check)))
        #expect(Set(Self.freeBSDCatches.map(\.defect)) == Set(MutantFreeBSDKernel.Defect.allCases))
        #expect(Set(OpenBSDChecks.all.map(\.id)) == Set(Self.openBSDCatches.map(\.check)))
        #expect(Set(Self.openBSDCatches.map(\.defect)) == Set(MutantOpenBSDKernel.Defect.allCases))
    }
}
