import Conformance
import CoverageAPI
import KprobeBackend
import KprobeConformance
import LinuxBackend
import ReferenceModels
import Testing

/// The `function.*` checks: they pass on the kprobe model, do not apply to kcov backends, and each
/// fails against a kernel or backend with the defect it exists to catch.
@Suite struct FunctionChecksTests {
    typealias Defect = MutantKprobeKernel.Defect

    /// Which defect of the kprobe PMU each check must catch.
    static let catches: [(check: String, defect: Defect)] = [
        ("function.probe-recorded", .probeEntersNothing),
        ("function.hit-counts", .countSaturatesAtOne),
        ("function.same-path-twice", .probeVaries),
        ("function.disable-stops", .disableKeepsCounting),
        ("function.reenable", .reenableIsIgnored),
        ("function.other-thread", .countsEveryThread),
        ("function.release-on-close", .closeKeepsProbes),
    ]

    static func check(_ id: String) -> ConformanceCheck {
        FunctionChecks.all.first { $0.id == id }!
    }

    @Test func everyCheckPassesOnTheKprobeModel() {
        let results = ConformanceSuite.run(on: KprobeBackend(kernel: KprobePMUModel()), checks: FunctionChecks.all)
        for result in results where result.status != .pass {
            Issue.record("\(result.id): \(result.status.rawValue) \(result.detail)")
        }
    }

    @Test func noCheckAppliesToAKcovBackend() {
        let results = ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel()), checks: FunctionChecks.all)
        #expect(results.allSatisfy { $0.status == .notApplicable && $0.detail.contains("granularity is basicBlock") })
    }

    @Test func aFunctionGranularityBackendWithoutCountersFails() {
        let liar = CapabilityOverride(real: LinuxKcovBackend(kernel: LinuxKcovModel())) { $0.granularity = .function }
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("function.probe-recorded")])
        #expect(result.first?.status == .fail)
        #expect(result.first?.detail.contains("FunctionCoverageOperations") == true)
    }

    @Test(arguments: catches)
    func checkFailsOnTheDefectiveKernel(check: String, defect: Defect) {
        let mutant = ConformanceSuite.run(on: KprobeBackend(kernel: MutantKprobeKernel(defect)), checks: [Self.check(check)])
        #expect(mutant.first?.status == .fail, "\(check) did not catch \(defect.rawValue): \(mutant.first?.detail ?? "")")
    }

    @Test func modeCheckCatchesABackendThatIgnoresItsCapabilities() {
        let liar = CapabilityOverride(real: KprobeBackend(kernel: KprobePMUModel())) { $0.supportedModes = [] }
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("function.mode-unsupported")])
        #expect(result.first?.status == .fail, "\(result.first?.detail ?? "")")
    }

    @Test func remoteCheckCatchesCapabilitiesThatListRemoteKinds() {
        let liar = CapabilityOverride(real: KprobeBackend(kernel: KprobePMUModel())) { $0.remote = [.commonHandle] }
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("function.remote-unsupported")])
        #expect(result.first?.status == .fail, "\(result.first?.detail ?? "")")
    }

    @Test func newCoverageCheckCatchesCountersThatReportFunctionsNotEntered() {
        let unchanged = CapabilityOverride(real: KprobeBackend(kernel: KprobePMUModel())) { _ in }
        var phantom = unchanged
        phantom.wrapCounters = { PhantomCounters($0) }
        let result = ConformanceSuite.run(on: phantom, checks: [Self.check("function.new-coverage")])
        #expect(result.first?.status == .fail, "\(result.first?.detail ?? "")")
        // The wrapper alone changes nothing else.
        let faithful = ConformanceSuite.run(on: unchanged, checks: FunctionChecks.all)
        #expect(faithful.allSatisfy { $0.status == .pass }, "\(faithful.filter { $0.status != .pass })")
    }

    @Test func everyCheckHasADefectItCatches() {
        let covered = Set(Self.catches.map(\.check)).union(["function.mode-unsupported", "function.remote-unsupported", "function.new-coverage"])
        #expect(Set(FunctionChecks.all.map(\.id)) == covered)
        let ids = FunctionChecks.all.map(\.id)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.hasPrefix("function.") && $0 == $0.lowercased() })
    }
}

/// Counters that report every probed function as entered, zero counts included.
final class PhantomCounters: FunctionCounters {
    let real: any FunctionCounters
    init(_ real: any FunctionCounters) { self.real = real }

    var probedFunctions: [ProbedFunction] { real.probedFunctions }
    var skipped: [SkippedFunction] { real.skipped }
    func enable() throws(CoverageError) { try real.enable() }
    func disable() throws(CoverageError) { try real.disable() }
    func reset() throws(CoverageError) { try real.reset() }
    func read() throws(CoverageError) -> [FunctionHit] {
        let entered = try real.read()
        return real.probedFunctions.map { function in
            FunctionHit(name: function.name, pc: function.pc, hits: max(1, entered.first { $0.pc == function.pc }?.hits ?? 0))
        }
    }
    func run(_ command: Command) throws(CoverageError) -> (exit: CommandExit, functions: [FunctionHit]) { try real.run(command) }
    func close() { real.close() }
}
