import CoverageAPI
import KernelSeam
import Synchronization
import TestSupport
import Testing

/// A kcov driver with one deliberate defect, over a real backend.
struct MutantDriver: KcovDriver {
    enum Defect: Sendable {
        /// Forgets to close the descriptor when mapping its buffer failed: the leak on an error
        /// path that the sweep exists to find.
        case leaksDescriptorWhenMapFails
        /// Throws errors without the failed call and errno.
        case dropsTheSyscall
        /// Swallows ENABLE's and DISABLE's errors: collection "succeeds" with nothing recorded.
        case swallowsEnableAndDisableErrors
        /// Traps when mapping its buffer failed: a crash on an error path.
        case trapsWhenMapFails
    }

    let base: any KcovDriver
    let defect: Defect
    /// Descriptors whose mapping failed.
    private let mapFailed = Descriptors()

    final class Descriptors: Sendable {
        private let set = Mutex<Set<Int32>>([])
        func insert(_ fd: Int32) { set.withLock { _ = $0.insert(fd) } }
        func contains(_ fd: Int32) -> Bool { set.withLock { $0.contains(fd) } }
    }

    init(_ base: any KcovDriver, _ defect: Defect) {
        self.base = base
        self.defect = defect
    }

    var name: String { base.name }
    var capabilities: BackendCapabilities { base.capabilities }
    func availability() -> Availability { base.availability() }
    func currentThreadID() -> Int32 { base.currentThreadID() }
    func probe() { base.probe() }

    /// `body`'s error, without its syscall and errno under ``Defect/dropsTheSyscall``.
    private func pass<T>(_ body: () throws(CoverageError) -> T) throws(CoverageError) -> T {
        do throws(CoverageError) {
            return try body()
        } catch {
            guard defect == .dropsTheSyscall else { throw error }
            throw CoverageError(error.code, error.message)
        }
    }

    func openDevice() throws(CoverageError) -> Int32 { try pass { () throws(CoverageError) in try base.openDevice() } }

    func closeDevice(_ fd: Int32) {
        if defect == .leaksDescriptorWhenMapFails && mapFailed.contains(fd) { return }
        base.closeDevice(fd)
    }

    func initialize(_ fd: Int32, words: Int) throws(CoverageError) { try pass { () throws(CoverageError) in try base.initialize(fd, words: words) } }

    func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        do throws(CoverageError) {
            return try pass { () throws(CoverageError) in try base.mapBuffer(fd, words: words) }
        } catch {
            precondition(defect != .trapsWhenMapFails, "the mutant driver traps on a failed mmap")
            mapFailed.insert(fd)
            throw error
        }
    }

    func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) { base.unmapBuffer(address, words: words) }

    func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        if defect == .swallowsEnableAndDisableErrors {
            try? base.enable(fd, mode: mode)
            return
        }
        try pass { () throws(CoverageError) in try base.enable(fd, mode: mode) }
    }

    func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        try pass { () throws(CoverageError) in try base.enableRemote(fd, mode: mode, request) }
    }

    func disable(_ fd: Int32) throws(CoverageError) {
        if defect == .swallowsEnableAndDisableErrors {
            try? base.disable(fd)
            return
        }
        try pass { () throws(CoverageError) in try base.disable(fd) }
    }

    func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) { try pass { () throws(CoverageError) in try base.sendUndefinedRequest(fd) } }

    func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit {
        try pass { () throws(CoverageError) in try base.runEnabled(fd, mode: mode, buffer: buffer, words: words, command: command) }
    }

    func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        try pass { () throws(CoverageError) in try base.runForked(fd, mode: mode, buffer: buffer, words: words, timeout: timeout, body: body) }
    }
}

/// The sweep finds what it exists to find: a leak on one error path, named by its (scenario,
/// call, n, errno), and errors that do not name the failed call; and it finds nothing else.
@Suite struct FaultSweepCanFailTests {
    static func mutantScenario(_ defect: MutantDriver.Defect) -> FaultScenario {
        FaultScenario("mutant linux collect pc", errnos: Errnos.kcov) { plan in
            let world = Kernels.linux.make(plan)
            let backend = MutantDriver(world.backend, defect)
            return FaultRun(body: { world.onThread { Scenarios.collect(backend, mode: .pc) } }, held: world.held)
        }
    }

    @Test func aDescriptorLeakedWhenMappingFailsIsReportedForEveryMmapFaultAndNothingElse() {
        let report = FaultSweep.run(Self.mutantScenario(.leaksDescriptorWhenMapFails))
        // The collector's only mmap on Linux is the first: each errno leaves the descriptor open,
        // and with it the buffer INIT_TRACE allocated; nothing else leaks.
        #expect(report.calls["mmap"] == 1)
        let expected = Errnos.kcov[.mmap]!.flatMap { code in
            ["buffers", "fds"].map { "mutant linux collect pc, mmap #1 with \(errnoName(code)): leaked 1 \($0)" }
        }
        #expect(report.problems == expected)
    }

    @Test func anErrorThatDropsTheFailedCallIsReported() {
        let report = FaultSweep.run(Self.mutantScenario(.dropsTheSyscall))
        #expect(report.thrown > 0)
        #expect(report.problems.count == report.thrown, "every typed error of the mutant lacks its call")
        #expect(report.problems.allSatisfy { $0.contains("does not name the failed call") })
    }

    @Test func aCollectionThatSucceedsWithNothingRecordedIsReported() {
        let report = FaultSweep.run(Self.mutantScenario(.swallowsEnableAndDisableErrors))
        // Linux's collect makes INIT_TRACE, then ENABLE (#2), DISABLE, ENABLE (#4), DISABLE.
        #expect(report.calls["ioctl"] == 5)
        for n in [2, 4] {
            for code in Errnos.kcov[.ioctl]! {
                let fault = "mutant linux collect pc, ioctl #\(n) with \(errnoName(code))"
                #expect(
                    report.problems.contains { $0.hasPrefix(fault + ":") && $0.contains("silent partial result") },
                    "\(fault): the empty trace is reported")
            }
        }
    }

    @Test func aCrashOnAnErrorPathEndsTheProcessNamingTheRun() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = FaultSweep.run(FaultSweepCanFailTests.mutantScenario(.trapsWhenMapFails))
        }
        let errors = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        // EINVAL is the first mmap errno swept.
        #expect(errors.contains("fault sweep crashed during: mutant linux collect pc, mmap #1 with EINVAL\n"), "\(errors)")
        #expect(errors.contains("the mutant driver traps on a failed mmap"))
    }

    @Test func theSameSweepOverTheRealDriverFindsNothing() {
        let report = FaultSweep.run(FaultScenario("linux collect pc", errnos: Errnos.kcov) { plan in
            let world = Kernels.linux.make(plan)
            return FaultRun(body: { world.onThread { Scenarios.collect(world.backend, mode: .pc) } }, held: world.held)
        })
        #expect(report.pairs > 0)
        #expect(report.problems.isEmpty, "\(report.problems)")
    }
}
