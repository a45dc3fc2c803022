import Conformance
import CoverageAPI
import GVisorBackend
import Glibc
import KernelSeam
import LinuxBackend
import ReferenceModels
import Testing

/// The backend against the reference model of gVisor's kcov: conformance, and each errno's code.
@Suite struct GVisorBackendModelTests {
    /// A backend over a fresh model, told it is inside gVisor.
    static func backend(_ model: GVisorKcovModel = GVisorKcovModel()) -> GVisorKcovBackend {
        GVisorKcovBackend(kernel: model) { GVisorDetection.Verdict(insideGVisor: true, explanation: "test") }
    }

    @Test func sharedSuitePassesOnTheModel() {
        let results = ConformanceSuite.run(on: Self.backend())
        #expect(results.count == ConformanceSuite.checks.count)
        for result in results where result.status == .fail {
            Issue.record("\(result.id): \(result.detail)")
        }
        let notApplicable = results.filter { $0.status == .notApplicable }.map(\.id)
        #expect(notApplicable == ["cmp.decoding", "remote.common-handle"], "PC only, no remote: \(notApplicable)")
    }

    @Test func gVisorChecksPassOnTheModel() {
        let results = ConformanceSuite.run(on: Self.backend(), checks: GVisorChecks.all)
        #expect(results.count == GVisorChecks.all.count)
        for result in results where result.status != .pass {
            Issue.record("\(result.id): \(result.status.rawValue) \(result.detail)")
        }
    }

    @Test func gVisorChecksDoNotApplyToLinux() {
        let results = ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel()), checks: GVisorChecks.all)
        #expect(results.allSatisfy { $0.status == .notApplicable }, "\(results.filter { $0.status != .notApplicable })")
    }

    @Test func gVisorChecksFailOnLinuxRulesWithGVisorCapabilities() {
        // A backend claiming gVisor's capabilities over a Linux kernel: the checks that ask the
        // kernel must notice.
        let results = ConformanceSuite.run(on: GVisorKcovBackend(kernel: LinuxKcovModel()), checks: GVisorChecks.all)
        let failed = Set(results.filter { $0.status == .fail }.map(\.id))
        for id in ["gvisor.init-size-whole-pages", "gvisor.map-after-enable", "gvisor.new-buffer-after-disable", "gvisor.enable-needs-map", "gvisor.set-not-trace"] {
            #expect(failed.contains(id), "\(id) passed on Linux rules")
        }
    }

    @Test func capabilities() {
        let capabilities = Self.backend().capabilities
        #expect(capabilities.supportedModes == [.pc])
        #expect(capabilities.pcKind == .synthetic)
        #expect(!capabilities.perThread && !capabilities.orderedTrace && capabilities.remote.isEmpty)
        #expect(capabilities.requiresMapBeforeEnable && capabilities.remapAfterDisable && !capabilities.mapLengthMustMatch)
        #expect(!capabilities.oneEnabledInstancePerThread && !capabilities.collectsAfterClose)
        #expect(capabilities.buffer?.words == 512...10_485_760 && capabilities.buffer?.wordMultiple == 512 && capabilities.buffer?.wordSize == 8)
    }

    // MARK: errno → code

    func expectError(
        _ code: CoverageError.Code, errno expected: Int32?, _ body: () throws(CoverageError) -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> CoverageError? {
        do {
            try body()
            Issue.record("expected \(code), but it succeeded", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            #expect(error.errno == expected, "\(error)", sourceLocation: sourceLocation)
            return error
        }
    }

    @Test func initTraceRules() throws {
        let backend = Self.backend()
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        for words in [0, 1, 2, 100, 513, 10_485_760 + 512] {
            let error = expectError(.bufferSize, errno: EINVAL) { () throws(CoverageError) in try backend.initialize(fd, words: words) }
            #expect(error?.message.contains("multiple of 512") == true)
            #expect(error?.message.contains("10485760") == true)
        }
        try backend.initialize(fd, words: 1024)
        // gVisor checks the state first: even a bad size is EBUSY now.
        _ = expectError(.busy, errno: EBUSY) { () throws(CoverageError) in try backend.initTrace(fd, words: 1) }
    }

    @Test func maxSizeIsAccepted() throws {
        let backend = Self.backend()
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        try backend.initialize(fd, words: 10_485_760)
    }

    @Test func enableRules() throws {
        let backend = Self.backend()
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        _ = expectError(.invalidState, errno: EINVAL) { () throws(CoverageError) in try backend.enable(fd, mode: .pc) }
        try backend.initialize(fd, words: 512)
        _ = expectError(.invalidState, errno: EINVAL) { () throws(CoverageError) in try backend.enable(fd, mode: .pc) }
        let mapping = try backend.mapBuffer(fd, words: 512)
        defer { backend.unmapBuffer(mapping, words: 512) }
        // Comparison mode: refused before any syscall through the protocol, EOPNOTSUPP from the kernel.
        let refused = expectError(.unsupportedMode, errno: nil) { () throws(CoverageError) in try backend.enable(fd, mode: .comparisons) }
        #expect(refused?.syscall == nil)
        let kernelRefused = expectError(.unsupportedMode, errno: EOPNOTSUPP) { () throws(CoverageError) in try backend.enable(fd, rawMode: 1) }
        #expect(kernelRefused?.syscall != nil)
        _ = expectError(.invalidArgument, errno: EINVAL) { () throws(CoverageError) in try backend.enable(fd, rawMode: 2) }
        // D25: the argument is truncated to 8 bits, so 256 is PC mode.
        try backend.enable(fd, rawMode: 256)
        _ = expectError(.invalidState, errno: EINVAL) { () throws(CoverageError) in _ = try backend.mapBuffer(fd, words: 512) }
        try backend.disable(fd)
        _ = expectError(.notOwner, errno: EINVAL) { () throws(CoverageError) in try backend.disable(fd) }
    }

    @Test func remoteAndUnknownRequests() throws {
        let backend = Self.backend()
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        let refused = expectError(.unsupportedOperation, errno: nil) { () throws(CoverageError) in
            try backend.enableRemote(fd, mode: .pc, RemoteRequest(targets: [.common(instance: 1)], sectionWords: 512))
        }
        #expect(refused?.syscall == nil)
        _ = expectError(.unsupportedOperation, errno: ENOTTY) { () throws(CoverageError) in try backend.sendRemoteEnable(fd) }
        _ = expectError(.unsupportedOperation, errno: ENOTTY) { () throws(CoverageError) in try backend.sendUndefinedRequest(fd) }
    }

    @Test func releaseBuildHasNoDeviceAndSaysWhichBuildHasIt() {
        for model in [GVisorKcovModel(coverageBuild: false), GVisorKcovModel(coverageReportConfigured: true)] {
            let backend = Self.backend(model)
            let error = expectError(.deviceMissing, errno: ENOENT) { () throws(CoverageError) in _ = try backend.openDevice() }
            for phrase in ["release build", "//runsc:runsc_coverage", "-cover", "kcov", "coverage report"] {
                #expect(error?.message.contains(phrase) == true, "\(phrase) missing from: \(error?.message ?? "")")
            }
            let availability = backend.availability()
            #expect(!availability.available)
            #expect(availability.reason.contains("//runsc:runsc_coverage"))
        }
    }

    @Test func permissionDenied() {
        let backend = Self.backend(GVisorKcovModel(accessAllowed: false))
        _ = expectError(.permissionDenied, errno: EACCES) { () throws(CoverageError) in _ = try backend.openDevice() }
    }

    @Test func availabilityNeedsGVisor() {
        let inside = Self.backend()
        #expect(inside.availability().available)
        // Detection from the seam alone: the model's INIT_TRACE fingerprint and /proc/version.
        #expect(GVisorKcovBackend(kernel: GVisorKcovModel()).availability().available)
        // Over Linux's kcov the gVisor backend is not available, though the file opens.
        let overLinux = GVisorKcovBackend(kernel: LinuxKcovModel())
        let availability = overLinux.availability()
        #expect(!availability.available)
        #expect(availability.reason.contains("not running inside gVisor"), "\(availability.reason)")
    }

    // MARK: Sessions and traces

    @Test func sessionCollectsASetOfCurrentFormatPCs() throws {
        let backend = Self.backend()
        var session = try CoverageCollector(backend: backend, bufferWords: 4096)
        let trace = try session.collect { backend.probe() }
        let expected = GVisorKcovModel.window(GVisorKcovModel.probeBlocks)
        #expect(trace.pcs == expected)
        #expect(GVisorKcovBackend.pcFormat(of: trace) == .current)
        let blocks = try #require(GVisorKcovBackend.blocks(of: trace))
        #expect(blocks.first == .current(package: 5, function: 17, block: 0))
        // The session re-maps after DISABLE (remapAfterDisable), so a second collection works.
        let again = try session.collect { backend.probe() }
        #expect(again.pcs == expected)
    }

    @Test func legacyFormatIsReported() throws {
        let backend = Self.backend(GVisorKcovModel(legacyPCs: true))
        var session = try CoverageCollector(backend: backend, bufferWords: 512)
        let trace = try session.collect { backend.probe() }
        #expect(GVisorKcovBackend.pcFormat(of: trace) == .legacy)
        #expect(GVisorKcovBackend.blocks(of: trace)?.first == .legacy(file: 1, block: 44))
    }

    @Test func sessionRefusesComparisons() {
        #expect(throws: CoverageError.self) { _ = try CoverageCollector(backend: Self.backend(), mode: .comparisons, bufferWords: 512) }
    }

    @Test func runEnabledRecordsTheChild() throws {
        let backend = Self.backend()
        var session = try CoverageCollector(backend: backend, bufferWords: 512)
        let result = try session.run(Command(path: "/bin/true", arguments: ["true"], environment: []))
        #expect(result.exit == .exited(0))
        #expect(!result.trace.pcs.isEmpty)
        #expect(GVisorKcovBackend.pcFormat(of: result.trace) == .current)
    }
}
