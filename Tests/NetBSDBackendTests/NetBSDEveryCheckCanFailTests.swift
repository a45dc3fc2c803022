import Conformance
import CoverageAPI
import NetBSDBackend
import NetBSDConformance
import ReferenceModels
import Testing

/// Every NetBSD check fails against a kernel that breaks the behaviour it proves, and passes on
/// the faithful model: a check with no defective model that makes it fail is unproven.
@Suite struct NetBSDEveryCheckCanFailTests {
    typealias Defect = MutantNetBSDKernel.Defect

    /// Which defect each check must catch.
    static let catches: [(check: String, defect: Defect)] = [
        ("netbsd.kcov_dup2", .dup2Refused),
        ("netbsd.kcov_multiopen", .exclusiveOpen),
        ("netbsd.kcov_open_close_open", .reopenAfterCloseFails),
        ("netbsd.kcov_bufsize", .acceptsEmptyBuffer),
        ("netbsd.kcov_mmap", .mapWithoutBufferIsEINVAL),
        ("netbsd.kcov_mmap_no_munmap", .closeFreesMappedBuffer),
        ("netbsd.kcov_mmap_no_munmap_no_close", .panicsAtExitWithMapping),
        ("netbsd.kcov_enable", .disableAlwaysSucceeds),
        ("netbsd.kcov_enable_no_disable", .panicsFreeingDescriptorClosedWhileEnabled),
        ("netbsd.kcov_enable_no_disable_no_close", .panicsAtExitWhileEnabled),
        ("netbsd.kcov_mmap_enable_thread_close", .panicsFreeingDescriptorClosedWhileEnabled),
        ("netbsd.kcov_basic_pc", .probeRecordsNothing),
        ("netbsd.kcov_basic_cmp", .cmpRecordsNothing),
        ("netbsd.kcov_basic_dup2_pc", .closeIgnoresDuplicates),
        ("netbsd.kcov_basic_dup2_cmp", .closeIgnoresDuplicates),
        ("netbsd.kcov_multienable_on_the_same_thread", .secondEnableAllowed),
        // Only the thread start can fail this one: a buffer another LWP cannot reach would fault.
        ("netbsd.kcov_buffer_access_from_custom_thread", .lwpBodyNeverRuns),
        ("netbsd.kcov_thread", .recordsOtherLWPs),
        ("netbsd.kcov_multiple_threads2", .newLWPsRecordNothing),
        ("netbsd.kcov_multiple_threads4", .newLWPsRecordNothing),
        ("netbsd.kcov_multiple_threads8", .newLWPsRecordNothing),
        ("netbsd.kcov_multiple_threads16", .newLWPsRecordNothing),
        ("netbsd.kcov_multiple_threads32", .newLWPsRecordNothing),
    ]

    static func check(_ id: String) -> ConformanceCheck {
        NetBSDChecks.all.first { $0.id == id }!
    }

    @Test(arguments: catches)
    func checkFailsOnTheDefectiveKernel(check: String, defect: Defect) {
        let mutant = ConformanceSuite.run(on: NetBSDKcovBackend(kernel: MutantNetBSDKernel(defect)), checks: [Self.check(check)])
        #expect(mutant.first?.status == .fail, "\(check) did not catch \(defect.rawValue): \(mutant.first?.detail ?? "")")
        // The same check passes on the faithful model: the failure is the defect's doing.
        let faithful = ConformanceSuite.run(on: NetBSDKcovBackend(kernel: NetBSDKcovModel()), checks: [Self.check(check)])
        #expect(faithful.first?.status == .pass, "\(faithful.first?.detail ?? "")")
    }

    @Test func everyNetBSDCheckHasADefectItCatches() {
        #expect(Set(NetBSDChecks.all.map(\.id)) == Set(Self.catches.map(\.check)))
        // And no defect is left without a check that catches it.
        #expect(Set(Self.catches.map(\.defect)) == Set(Defect.allCases))
    }
}
