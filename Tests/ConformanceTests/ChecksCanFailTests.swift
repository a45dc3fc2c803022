import Conformance
import CoverageAPI
import LinuxBackend
import ReferenceModels
import Testing

/// Every check fails against a kernel or backend that breaks the behaviour it proves: a check
/// that cannot fail is a defect.
@Suite struct ChecksCanFailTests {
    typealias Defect = MutantKernel.Defect

    /// Which defect each check must catch.
    static let catches: [(check: String, defect: Defect)] = [
        ("lifecycle.instances-independent", .sharedBufferAcrossInstances),
        ("lifecycle.init-size-range", .acceptsTinyBuffers),
        ("lifecycle.init-twice", .initTwiceSucceeds),
        ("lifecycle.init-after-disable", .initTwiceSucceeds),
        ("lifecycle.enable-before-init", .enableBeforeInitIsBusy),
        ("lifecycle.map-before-init", .mapBeforeInitIsENOMEM),
        ("lifecycle.enable-twice", .enableTwiceSucceeds),
        ("lifecycle.enable-without-map", .enableNeedsMapping),
        ("mmap.wrong-size", .anyMappingLength),
        ("ioctl.unknown", .unknownRequestIsEINVAL),
        ("isolation.enable-from-other-thread", .secondThreadMayEnable),
        ("isolation.disable-from-other-thread", .anyThreadMayDisable),
        ("isolation.disable-not-enabled", .disableWhenOffIsENOENT),
        ("isolation.thread-busy", .secondInstanceIsInvalid),
        ("isolation.other-thread", .leaksAcrossThreads),
        ("collect.probe-recorded", .probeRecordsNothing),
        ("collect.same-path-twice", .probeVaries),
        ("collect.disable-stops", .disableKeepsRecording),
        ("collect.reenable", .reenableIsIgnored),
        ("overflow.truncated", .neverFillsLastSlot),
        ("close.while-enabled", .closeStopsCollection),
        ("fork.child-enable", .childEnableUsesWrongRequest),
        ("cmp.decoding", .comparisonTypeHasUndefinedBits),
        ("remote.common-handle", .duplicateHandleAccepted),
    ]

    static func check(_ id: String) -> ConformanceCheck {
        ConformanceSuite.checks.first { $0.id == id }!
    }

    @Test(arguments: catches)
    func checkFailsOnTheDefectiveKernel(check: String, defect: Defect) {
        let mutant = ConformanceSuite.run(on: LinuxKcovBackend(kernel: MutantKernel(defect)), checks: [Self.check(check)])
        #expect(mutant.first?.status == .fail, "\(check) did not catch \(defect.rawValue): \(mutant.first?.detail ?? "")")
        // The same check passes on the faithful model: the failure is the defect's doing.
        let faithful = ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel()), checks: [Self.check(check)])
        #expect(faithful.first?.status == .pass, "\(faithful.first?.detail ?? "")")
    }

    @Test func modeCheckCatchesABackendThatIgnoresItsCapabilities() {
        let liar = CapabilityOverride(real: LinuxKcovBackend(kernel: LinuxKcovModel())) { $0.supportedModes = [.pc] }
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("mode.unsupported")])
        #expect(result.first?.status == .fail)
    }

    @Test func remoteCheckCatchesABackendThatAsksTheKernel() {
        let liar = CapabilityOverride(real: LinuxKcovBackend(kernel: LinuxKcovModel())) { $0.remote = [] }
        let result = ConformanceSuite.run(on: liar, checks: [Self.check("remote.unsupported-target")])
        #expect(result.first?.status == .fail)
    }

    @Test func everyCheckHasADefectItCatches() {
        let covered = Set(Self.catches.map(\.check)).union(["mode.unsupported", "remote.unsupported-target"])
        #expect(Set(ConformanceSuite.checks.map(\.id)) == covered)
    }
}

/// A backend that passes every call to `real` but reports altered capabilities — a backend that
/// does not enforce what it advertises. Function-level backends may also have their counters
/// replaced (`wrapCounters`), to break one behaviour of theirs.
struct CapabilityOverride<Base: CoverageBackend>: CoverageBackend {
    let real: Base
    let change: @Sendable (inout BackendCapabilities) -> Void
    var wrapCounters: @Sendable (any FunctionCounters) -> any FunctionCounters = { $0 }

    init(real: Base, _ change: @escaping @Sendable (inout BackendCapabilities) -> Void) {
        self.real = real
        self.change = change
    }

    var name: String { real.name }
    var capabilities: BackendCapabilities {
        var capabilities = real.capabilities
        change(&capabilities)
        return capabilities
    }
    func availability() -> Availability { real.availability() }
    func currentThreadID() -> Int32 { real.currentThreadID() }
    func probe() { real.probe() }
    /// This wrapper as the driver `real` is, so its overrides are the ones called.
    var driver: BackendDriver {
        if let kcov = self as? any KcovDriver { return .kcovBuffer(kcov) }
        if let counters = self as? any FunctionCounterDriver { return .functionCounters(counters) }
        return real.driver
    }
}

extension CapabilityOverride: KcovDriver where Base: KcovDriver {
    func openDevice() throws(CoverageError) -> Int32 { try real.openDevice() }
    func closeDevice(_ fd: Int32) { real.closeDevice(fd) }
    func initialize(_ fd: Int32, words: Int) throws(CoverageError) { try real.initialize(fd, words: words) }
    func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer { try real.mapBuffer(fd, words: words) }
    func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) { real.unmapBuffer(address, words: words) }
    func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) { try real.enable(fd, mode: mode) }
    func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) { try real.enableRemote(fd, mode: mode, request) }
    func disable(_ fd: Int32) throws(CoverageError) { try real.disable(fd) }
    func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) { try real.sendUndefinedRequest(fd) }
    func runEnabled(_ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command) throws(CoverageError) -> CommandExit {
        try real.runEnabled(fd, mode: mode, buffer: buffer, words: words, command: command)
    }
    func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        try real.runForked(fd, mode: mode, buffer: buffer, words: words, timeout: timeout, body: body)
    }
}

extension CapabilityOverride: FunctionCounterDriver where Base: FunctionCounterDriver {
    func openCounters(_ selection: FunctionSelection, mode: CoverageMode) throws(CoverageError) -> any FunctionCounters {
        guard capabilities.supportedModes.contains(mode) || real.capabilities.supportedModes.contains(mode) else {
            return try real.openCounters(selection, mode: mode)
        }
        return wrapCounters(try real.openCounters(selection, mode: mode))
    }
}

extension CapabilityOverride: FunctionCoverageOperations where Base: FunctionCoverageOperations {
    var probeFunctions: [String] { real.probeFunctions }
    var functionsOffProbePath: [String] { real.functionsOffProbePath }
    func heldProbes() -> Int { real.heldProbes() }
}
