import Conformance
import CoverageAPI
import KprobeBackend
import KprobeConformanceSupport
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
        let liar = FunctionBackendOverride(capabilities: { $0.supportedModes = [] })
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("function.mode-unsupported")])
        #expect(result.first?.status == .fail, "\(result.first?.detail ?? "")")
    }

    @Test func remoteCheckCatchesCapabilitiesThatListRemoteKinds() {
        let liar = FunctionBackendOverride(capabilities: { $0.remote = [.commonHandle] })
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("function.remote-unsupported")])
        #expect(result.first?.status == .fail, "\(result.first?.detail ?? "")")
    }

    @Test func newCoverageCheckCatchesCountersWithoutABaseline() {
        let forgetful = FunctionBackendOverride(forgetsBaseline: true)
        let result = ConformanceSuite.run(on: forgetful, checks: [Self.check("function.new-coverage")])
        #expect(result.first?.status == .fail, "\(result.first?.detail ?? "")")
        // The wrapper alone changes nothing else.
        let faithful = ConformanceSuite.run(on: FunctionBackendOverride(), checks: FunctionChecks.all)
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

/// The kprobe backend over its model, with altered capabilities (a backend that does not enforce
/// what it advertises) or counters that forget their baseline.
struct FunctionBackendOverride: FunctionCoverageOperations {
    let real = KprobeBackend(kernel: KprobePMUModel())
    let change: @Sendable (inout BackendCapabilities) -> Void
    let forgetsBaseline: Bool

    init(capabilities change: @escaping @Sendable (inout BackendCapabilities) -> Void = { _ in }, forgetsBaseline: Bool = false) {
        self.change = change
        self.forgetsBaseline = forgetsBaseline
    }

    var name: String { real.name }
    var capabilities: BackendCapabilities {
        var capabilities = real.capabilities
        change(&capabilities)
        return capabilities
    }
    func availability() -> Availability { real.availability() }
    func openDevice() throws(CoverageError) -> Int32 { try real.openDevice() }
    func closeDevice(_ fd: Int32) { real.closeDevice(fd) }
    func initialize(_ fd: Int32, words: Int) throws(CoverageError) { try real.initialize(fd, words: words) }
    func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer { try real.mapBuffer(fd, words: words) }
    func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) { real.unmapBuffer(address, words: words) }
    func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) { try real.enable(fd, mode: mode) }
    func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) { try real.enableRemote(fd, mode: mode, request) }
    func disable(_ fd: Int32) throws(CoverageError) { try real.disable(fd) }
    func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) { try real.sendUndefinedRequest(fd) }
    func currentThreadID() -> Int32 { real.currentThreadID() }
    func probe() { real.probe() }
    func runEnabled(_ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command) throws(CoverageError) -> CommandExit {
        try real.runEnabled(fd, mode: mode, buffer: buffer, words: words, command: command)
    }

    var probeFunctions: [String] { real.probeFunctions }
    var functionsOffProbePath: [String] { real.functionsOffProbePath }
    func openCounters(_ functions: [String], mode: CoverageMode) throws(CoverageError) -> any FunctionCounters {
        let counters = try real.openCounters(functions, mode: mode)
        return forgetsBaseline ? ForgetfulCounters(counters) : counters
    }
    func heldProbes() -> Int { real.heldProbes() }
}

/// Counters whose every count is "new": no baseline.
final class ForgetfulCounters: FunctionCounters {
    let real: any FunctionCounters
    init(_ real: any FunctionCounters) { self.real = real }

    var probedFunctions: [String] { real.probedFunctions }
    func enable() throws(CoverageError) { try real.enable() }
    func disable() throws(CoverageError) { try real.disable() }
    func counts() throws(CoverageError) -> [FunctionCount] { try real.counts() }
    func newFunctions() throws(CoverageError) -> [FunctionCount] { try real.counts() }
    func close() { real.close() }
}
