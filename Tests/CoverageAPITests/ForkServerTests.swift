import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import ReferenceModels
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The fork server (``CoverageCollector/runForked(timeout:_:)``) over the Linux model, and the real
/// fork, report and timed wait of ``SystemKernel`` on this host (which has no kcov: its ENABLE
/// fails, which is exactly the report path).
@Suite struct ForkServerTests {
    typealias Model = LinuxKcovModel

    @Test func theChildsEnableBodyAndExitAreTracedAndItsStatusReturned() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        do {
            var collector = try CoverageCollector(backend: backend, bufferWords: 512)
            let parent = backend.currentThreadID()
            let first = try collector.runForked {
                #expect(backend.currentThreadID() != parent, "the body runs in the child")
                backend.probe()
                return 3
            }
            #expect(first.child.exit == .exited(3))
            // ENABLE's return, the body's gettid and probe, then exit_group.
            #expect(first.trace.pcs == Model.ioctlExitPath.pcs + Model.syscallPath.pcs + Model.probePCs + Model.syscallPath.pcs)
            // The child's exit disabled the fd: the server forks again with the same buffer.
            let second = try collector.runForked { 0x1_07 }
            #expect(second.child.exit == .exited(7), "the status is the low 8 bits, as _exit passes it on")
            #expect(second.trace.pcs == Model.ioctlExitPath.pcs + Model.syscallPath.pcs)
            #expect(second.child.pid != first.child.pid)
        }
        #expect(model.openDescriptorCount == 0 && model.liveMappingCount == 0 && model.liveBufferCount == 0)
    }

    @Test func aFailedEnableInTheChildIsTheBackendsTypedError() throws {
        let model = Model(comparisonsBuiltIn: false)
        var collector = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), mode: .comparisons, bufferWords: 512)
        var ran = false
        let error = coverageError { _ = try collector.runForked { ran = true; return 0 } }
        #expect(error?.code == .unsupportedMode && error?.errno == 524)
        #expect(error?.syscall == "ioctl(KCOV_ENABLE) in the child")
        #expect(!ran, "the body never runs untraced")
    }

    @Test func misuseIsRefusedBeforeForking() throws {
        let backend = LinuxKcovBackend(kernel: Model())
        var collector = try CoverageCollector(backend: backend, bufferWords: 512)
        #expect(coverageError { _ = try collector.runForked(timeout: .zero) { 0 } }?.code == .invalidArgument)
        #expect(coverageError { _ = try collector.runForked(timeout: .seconds(-1)) { 0 } }?.code == .invalidArgument)
        try collector.enable()
        #expect(coverageError { _ = try collector.runForked { 0 } }?.code == .invalidState)
        try collector.disable()
    }

    @Test func timeoutsRoundUpToWholeMillisecondsAndClamp() throws {
        #expect(try Command.milliseconds(of: nil) == nil)
        #expect(try Command.milliseconds(of: .milliseconds(250)) == 250)
        #expect(try Command.milliseconds(of: .microseconds(1)) == 1)
        #expect(try Command.milliseconds(of: .seconds(2) + .nanoseconds(1)) == 2001)
        #expect(try Command.milliseconds(of: .seconds(Int64.max)) == Int32.max)
        #expect(throws: CoverageError.self) { try Command.milliseconds(of: .zero) }
    }

    /// A real fork on this host: ENABLE on an ordinary file fails with ENOTTY in the child, which
    /// reports it and exits before the body; the parent reaps it.
    @Test func aRealChildReportsItsEnableErrnoAndIsReaped() throws {
        var template = Array("/tmp/kcov-fork-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        unlink(template)
        defer { close(fd) }
        var count: UInt64 = 99
        let outcome = withUnsafeMutableBytes(of: &count) { buffer in
            SystemKernel().forkEnabled(
                fd: fd, enable: EnableCall(request: LinuxKcovABI.enable, argument: 0, byPointer: false),
                buffer: buffer.baseAddress!, timeoutMilliseconds: 5000) { 42 }
        }
        #expect(outcome == .enableFailed(errno: ENOTTY))
        #expect(count == 0, "the count word is reset before the fork")
    }

    /// The timed wait kills a child that outlives its time and reports it; one that ends in time
    /// is not reported.
    @Test func theTimedWaitKillsOnlyAChildThatOutlivesItsTime() throws {
        func spawn(_ arguments: [String]) throws -> pid_t {
            var pid: pid_t = 0
            var argv = arguments.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            try #require(posix_spawn(&pid, arguments[0], nil, nil, &argv, environ) == 0)
            return pid
        }
        let kernel = SystemKernel()
        let started = ContinuousClock.now
        let sleeper = try spawn(["/bin/sleep", "30"])
        let slow = kernel.waitForExit(sleeper, milliseconds: 200)
        #expect(slow.timedOut && slow.status == .signaled(SIGKILL))
        #expect(ContinuousClock.now - started < .seconds(10), "killed at its timeout, not at its end")
        let quick = try spawn(["/bin/sh", "-c", "exit 4"])
        let fast = kernel.waitForExit(quick, milliseconds: 10_000)
        #expect(!fast.timedOut && fast.status == .exited(4))
    }
}
