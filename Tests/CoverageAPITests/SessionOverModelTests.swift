import CoverageAPI
import KernelSeam
import LinuxBackend
import ReferenceModels
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// CoverageCollector and the Linux backend over the Linux reference model: the paths a host
/// without kcov cannot reach for real (missing device, no permission, no CMP, leaks).
@Suite struct SessionOverModelTests {
    typealias Model = LinuxKcovModel

    func expectNothingLeft(_ model: Model, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(model.openDescriptorCount == 0, "descriptors left open", sourceLocation: sourceLocation)
        #expect(model.liveMappingCount == 0, "mappings left", sourceLocation: sourceLocation)
        #expect(model.liveBufferCount == 0, "buffers not freed", sourceLocation: sourceLocation)
    }

    @Test func collectReturnsExactlyTheProbePath() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        do {
            var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 512)
            let trace = try session.collect { backend.probe() }
            #expect(trace.pcs == Model.probePCs, "ENABLE's tail is reset away; DISABLE's start is not read")
            #expect(!trace.truncated)
            let twice = try session.collect { backend.probe(); backend.probe() }
            #expect(twice.pcs == Model.probePCs + Model.probePCs)
        }
        expectNothingLeft(model)
    }

    @Test func comparisonsDecodeFromTheModel() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, mode: .comparisons, bufferWords: 512)
        let trace = try session.collect { backend.probe() }
        #expect(trace.comparisons.map(\.pc) == Model.probeComparisons.map(\.pc))
        #expect(trace.comparisons.map(\.type) == Model.probeComparisons.map(\.type))
        #expect(trace.comparisons.map(\.first) == Model.probeComparisons.map(\.first))
    }

    @Test func overflowIsTruncatedAtSizeMinusOne() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 512)
        let trace = try session.collect { for _ in 0..<100 { backend.probe() } }
        #expect(trace.truncated)
        #expect(trace.pcs.count == 511)
        #expect(Array(trace.pcs.prefix(9)) == Model.probePCs)
    }

    @Test func missingDebugfsSaysToMountIt() {
        let model = Model(debugfsMounted: false, deviceExists: false)
        let error = coverageError { _ = try CoverageCollector(backend: LinuxKcovBackend(kernel: model)) }
        #expect(error?.code == .deviceMissing)
        #expect(error?.errno == ENOENT)
        #expect(error?.message.contains("mount -t debugfs none /sys/kernel/debug") == true)
        #expect(LinuxKcovBackend(kernel: model).availability().available == false)
        expectNothingLeft(model)
    }

    @Test func kernelWithoutKcovNamesTheConfigOption() {
        let model = Model(debugfsMounted: true, deviceExists: false)
        let error = coverageError { _ = try CoverageCollector(backend: LinuxKcovBackend(kernel: model)) }
        #expect(error?.code == .deviceMissing)
        #expect(error?.message.contains("CONFIG_KCOV") == true)
        #expect(error?.meansUnavailable == true)
    }

    @Test func permissionAndLockdown() {
        let denied = coverageError { _ = try CoverageCollector(backend: LinuxKcovBackend(kernel: Model(accessAllowed: false))) }
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.errno == EACCES)
        #expect(denied?.message.contains("root") == true)
        let locked = coverageError { _ = try CoverageCollector(backend: LinuxKcovBackend(kernel: Model(lockedDown: true))) }
        #expect(locked?.code == .permissionDenied)
        #expect(locked?.errno == EPERM)
        #expect(locked?.message.contains("lockdown") == true)
    }

    @Test func kernelWithoutComparisonsRefusesCMPMode() throws {
        let model = Model(comparisonsBuiltIn: false)
        do {
            var session = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), mode: .comparisons, bufferWords: 512)
            let error = coverageError { try session.enable() }
            #expect(error?.code == .unsupportedMode)
            #expect(error?.errno == 524)
            #expect(error?.message.contains("CONFIG_KCOV_ENABLE_COMPARISONS") == true)
            let enabled = session.isEnabled
            #expect(!enabled)
        }
        expectNothingLeft(model)
    }

    @Test func failedMappingClosesTheDevice() {
        let model = Model()
        let error = coverageError { _ = try CoverageCollector(backend: WrongSizeMapping(real: LinuxKcovBackend(kernel: model)), bufferWords: 512) }
        #expect(error?.code == .invalidState)
        #expect(error?.errno == EINVAL)
        expectNothingLeft(model)
    }

    @Test func droppedWhileEnabledDisablesAndReleases() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        do {
            var session = try CoverageCollector(backend: backend, bufferWords: 512)
            try session.enable()
        }
        expectNothingLeft(model)
        // The thread holds no kcov any more: a new session enables without EBUSY.
        var session = try CoverageCollector(backend: backend, bufferWords: 512)
        try session.enable()
        try session.disable()
    }

    @Test func sessionRefusesEnableTwiceAndDisableWhenOff() throws {
        var session = try CoverageCollector(backend: LinuxKcovBackend(kernel: Model()), bufferWords: 512)
        let off = coverageError { try session.disable() }
        #expect(off?.code == .invalidState && off?.syscall == nil)
        try session.enable()
        let twice = coverageError { try session.enable() }
        #expect(twice?.code == .invalidState && twice?.syscall == nil)
        try session.disable()
    }

    @Test func secondSessionOnOneThreadIsBusy() throws {
        let backend = LinuxKcovBackend(kernel: Model())
        var first = try CoverageCollector(backend: backend, bufferWords: 512)
        var second = try CoverageCollector(backend: backend, bufferWords: 512)
        try first.enable()
        let error = coverageError { try second.enable() }
        #expect(error?.code == .busy && error?.errno == EBUSY)
        try first.disable()
        try second.enable()
        try second.disable()
    }

    @Test func threadsCollectOnlyTheirOwnCoverage() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        let results = Mutex<[[UInt64]]>([])
        let threads = (0..<4).map { index in
            model.runOnNewThread {
                var session = try! CoverageCollector(backend: backend, bufferWords: 512)
                let trace = try! session.collect { for _ in 0...index { backend.probe() } }
                results.withLock { $0.append(trace.pcs) }
                return index
            }
        }
        #expect(threads == [0, 1, 2, 3])
        let traces = results.withLock { $0 }.sorted { $0.count < $1.count }
        for (index, pcs) in traces.enumerated() {
            #expect(pcs == Array(repeating: Model.probePCs, count: index + 1).flatMap { $0 })
        }
    }

    @Test func runTracesTheChildAndReleases() throws {
        let model = Model()
        do {
            var session = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), bufferWords: 512)
            let result = try session.run(Command(path: "/bin/sh", arguments: ["sh"], environment: []))
            #expect(result.exit == .exited(0))
            #expect(result.trace.pcs == Model.ioctlExitPath.pcs + Model.syscallPath.pcs + Model.probePCs + Model.syscallPath.pcs)
            let missing = coverageError { _ = try session.run(Command(path: "/nonexistent/tool", arguments: ["tool"], environment: [])) }
            #expect(missing?.code == .commandFailed && missing?.errno == ENOENT)
        }
        expectNothingLeft(model)
    }

    @Test func childEnableFailureIsTyped() throws {
        let model = Model(comparisonsBuiltIn: false)
        var session = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), mode: .comparisons, bufferWords: 512)
        let error = coverageError { _ = try session.run(Command(path: "/bin/sh", arguments: ["sh"], environment: [])) }
        #expect(error?.code == .unsupportedMode && error?.errno == 524)
    }

    @Test func remoteCoverageFromACommonHandle() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, bufferWords: 512)
        try session.enableRemote(RemoteRequest(targets: [.common(instance: 7)], sectionWords: 512))
        backend.probe()
        #expect(try session.read().pcs.isEmpty, "the remote-enabled thread's own syscalls are not recorded")
        #expect(model.runRemoteSection(handle: 7) == Model.remoteSectionPath.pcs.count)
        #expect(try session.read().pcs == Model.remoteSectionPath.pcs)
        let taken = Mutex<CoverageError?>(nil)
        model.runOnNewThread {
            var other = try! CoverageCollector(backend: backend, bufferWords: 512)
            do { try other.enableRemote(RemoteRequest(targets: [.common(instance: 7)], sectionWords: 512)) } catch let error as CoverageError { taken.withLock { $0 = error } } catch {}
        }
        #expect(taken.withLock { $0 }?.code == .handleInUse)
        try session.disable()
        #expect(model.registeredRemoteHandles.isEmpty)
    }

    @Test func remoteTargetsLinuxDoesNotHave() throws {
        var session = try CoverageCollector(backend: LinuxKcovBackend(kernel: Model()), bufferWords: 512)
        let vhci = coverageError { try session.enableRemote(RemoteRequest(targets: [.vhciPort(bus: 0, port: 1)], sectionWords: 512)) }
        #expect(vhci?.code == .unsupportedOperation && vhci?.syscall == nil)
        let twoCommon = coverageError {
            try session.enableRemote(RemoteRequest(targets: [.common(instance: 1), .common(instance: 2)], sectionWords: 512))
        }
        #expect(twoCommon?.code == .invalidArgument)
        let zeroCommon = coverageError { try session.enableRemote(RemoteRequest(targets: [.common(instance: 0)], sectionWords: 512)) }
        #expect(zeroCommon?.code == .invalidArgument && zeroCommon?.syscall == nil)
        let enabled = session.isEnabled
        #expect(!enabled)
    }

    @Test func unmappableSizeIsRefusedBeforeAnySyscall() {
        let model = Model()
        let error = coverageError { _ = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), bufferWords: 100) }
        #expect(error?.code == .bufferSize && error?.syscall == nil)
        #expect(model.openDescriptorCount == 0)
    }
}

/// The Linux backend over the model, mapping one page more than the buffer: the kernel refuses.
struct WrongSizeMapping: KcovDriver {
    let real: LinuxKcovBackend
    var name: String { real.name }
    var capabilities: BackendCapabilities { real.capabilities }
    func availability() -> Availability { real.availability() }
    func openDevice() throws(CoverageError) -> Int32 { try real.openDevice() }
    func closeDevice(_ fd: Int32) { real.closeDevice(fd) }
    func initialize(_ fd: Int32, words: Int) throws(CoverageError) { try real.initialize(fd, words: words) }
    func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer { try real.mapBuffer(fd, words: words + 512) }
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
    func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        try real.runForked(fd, mode: mode, buffer: buffer, words: words, timeout: timeout, body: body)
    }
}
