import Conformance
import CoverageAPI
import GVisorBackend
import KernelSeam
import ReferenceModels
import Testing

/// A defect of the gVisor model, or of the gVisor backend over the faithful model.
enum GVisorMutant: Sendable, Hashable, CustomTestStringConvertible {
    case kernel(MutantGVisorKernel.Defect)
    case backend(MutantGVisorBackend.Defect)

    var testDescription: String {
        switch self {
        case .kernel(let defect): "kernel: \(defect.rawValue)"
        case .backend(let defect): "backend: \(defect.rawValue)"
        }
    }

    /// A gVisor backend, told it is inside gVisor, with this defect.
    var backend: any CoverageBackend {
        switch self {
        case .kernel(let defect): GVisorChecksCanFailTests.backend(MutantGVisorKernel(defect))
        case .backend(let defect): MutantGVisorBackend(real: GVisorChecksCanFailTests.backend(GVisorKcovModel()), defect: defect)
        }
    }
}

/// Every gVisor check fails against a kernel or backend that breaks the rule it proves, and
/// passes on the faithful model: a check with no defective model that makes it fail is unproven.
@Suite struct GVisorChecksCanFailTests {
    static func backend(_ kernel: any KernelInterface) -> GVisorKcovBackend {
        GVisorKcovBackend(kernel: kernel) { GVisorDetection.Verdict(insideGVisor: true, explanation: "test") }
    }

    /// Which defect each check must catch.
    static let catches: [(check: String, defect: GVisorMutant)] = [
        ("gvisor.init-size-whole-pages", .kernel(.roundsSizeUpToWholePages)),
        ("gvisor.map-any-length", .kernel(.refusesOtherMapLengths)),
        ("gvisor.map-after-enable", .kernel(.mapsWhileEnabled)),
        ("gvisor.new-buffer-after-disable", .kernel(.disableKeepsBuffer)),
        ("gvisor.enable-needs-map", .kernel(.enableAllocatesBuffer)),
        ("gvisor.two-instances-one-thread", .kernel(.copiesCoverageToEveryInstance)),
        // Refused before any syscall: only a backend defect reaches them (see `backendOnly`).
        ("gvisor.cmp-refused-by-capabilities", .backend(.asksKernelForComparisons)),
        ("gvisor.no-remote", .backend(.asksKernelForRemote)),
        ("gvisor.set-not-trace", .kernel(.writesEveryExecution)),
        ("gvisor.written-at-return", .kernel(.writesAtAnyThreadsReturn)),
        ("gvisor.close-stops-and-frees-thread", .kernel(.closeKeepsCollecting)),
    ]

    /// Checks of rules the backend enforces from its capabilities before any syscall: no defect of
    /// the kernel can make them fail, only one of the backend.
    static let backendOnly = [
        "gvisor.cmp-refused-by-capabilities",
        "gvisor.no-remote",
    ]

    static func check(_ id: String) -> ConformanceCheck {
        GVisorChecks.all.first { $0.id == id }!
    }

    @Test(arguments: catches)
    func checkFailsOnTheDefectiveKernel(check: String, defect: GVisorMutant) {
        let mutant = ConformanceSuite.run(on: defect.backend, checks: [Self.check(check)])
        #expect(mutant.first?.status == .fail, "\(check) did not catch \(defect.testDescription): \(mutant.first?.detail ?? "")")
        // The same check passes on the faithful model: the failure is the defect's doing.
        let faithful = ConformanceSuite.run(on: Self.backend(GVisorKcovModel()), checks: [Self.check(check)])
        #expect(faithful.first?.status == .pass, "\(faithful.first?.detail ?? "")")
    }

    /// A finding, not a skip: the backend answers these before the kernel is asked, so every
    /// kernel defect passes them.
    @Test(arguments: backendOnly)
    func noKernelDefectReachesABackendOnlyCheck(check: String) {
        for defect in MutantGVisorKernel.Defect.allCases {
            let result = ConformanceSuite.run(on: Self.backend(MutantGVisorKernel(defect)), checks: [Self.check(check)])
            #expect(result.first?.status == .pass, "\(check) on \(defect.rawValue): \(result.first?.detail ?? "")")
        }
    }

    @Test func everyGVisorCheckHasADefectItCatches() {
        #expect(Set(GVisorChecks.all.map(\.id)) == Set(Self.catches.map(\.check)))
        // And no defect is left without a check that catches it.
        let used = Set(Self.catches.map(\.defect))
        let all = Set(MutantGVisorKernel.Defect.allCases.map(GVisorMutant.kernel) + MutantGVisorBackend.Defect.allCases.map(GVisorMutant.backend))
        #expect(used == all)
    }
}
