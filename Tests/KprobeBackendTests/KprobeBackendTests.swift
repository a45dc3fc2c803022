import CoverageAPI
import Foundation
@testable import KprobeBackend
import ReferenceModels
import Synchronization
import Testing

@Suite struct KprobeSelectionTests {
    @Test func namesGlobsAndFilesResolveToKallsymsAddresses() throws {
        let model = KprobePMUModel()
        model.setFile("/tmp/fns", "# VFS\nvfs_open\n\n  ksys_read  \n")
        var session = try CoverageCollector(backend: KprobeBackend(kernel: model), functions: FunctionSelection(patterns: ["vfs_r*", "__x64_sys_read"], files: ["/tmp/fns"]))
        #expect(session.probedFunctions == [
            ProbedFunction(name: "vfs_read", pc: 0xffff_ffff_8110_0200),
            ProbedFunction(name: "__x64_sys_read", pc: 0xffff_ffff_8110_0100),
            ProbedFunction(name: "vfs_open", pc: 0xffff_ffff_8110_0400),
            ProbedFunction(name: "ksys_read", pc: 0xffff_ffff_8110_0010),
        ])
        #expect(session.skippedFunctions.isEmpty)
        #expect(model.liveProbes == 4)
    }

    @Test func unprobeableFunctionsAreSkippedWithReasons() throws {
        let model = KprobePMUModel()
        model.refusals["nmi_handler"] = EINVAL
        let session = try CoverageCollector(
            backend: KprobeBackend(kernel: model), functions: FunctionSelection(patterns: ["ksys_read", "inlined_helper", "do_int3", "nmi_handler", "nosuch_*", "__pfx_ksys_read", "modfunc", "some_data"]))
        #expect(session.probedFunctions.map(\.name) == ["ksys_read"])
        let reasons = Dictionary(uniqueKeysWithValues: session.skippedFunctions.map { ($0.name, $0.reason) })
        #expect(reasons["inlined_helper"]?.contains("not in /proc/kallsyms") == true)
        #expect(reasons["do_int3"]?.contains("blacklist") == true)
        #expect(reasons["nmi_handler"]?.contains("notrace") == true)
        #expect(reasons["nosuch_*"]?.contains("matches no") == true)
        #expect(reasons["__pfx_ksys_read"] != nil, "padding symbols are not functions")
        #expect(reasons["modfunc"] != nil, "module symbols are not offered")
        #expect(reasons["some_data"] != nil, "data symbols are not functions")
        #expect(model.liveProbes == 1)
    }

    @Test("Static functions that share a name are each probed at their own address and counted apart")
    func sharedNamesAreProbedByAddress() throws {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["dup_static"]))
        #expect(session.probedFunctions == [
            ProbedFunction(name: "dup_static", pc: 0xffff_ffff_8110_0700), ProbedFunction(name: "dup_static", pc: 0xffff_ffff_8110_0800),
        ])
        #expect(session.skippedFunctions.isEmpty)
        let coverage = try session.collect {
            for _ in 0..<2 { model.enter(address: 0xffff_ffff_8110_0800, thread: backend.currentThreadID()) }
        }
        #expect(coverage.functions == [FunctionHit(name: "dup_static", pc: 0xffff_ffff_8110_0800, hits: 2)], "only the copy entered counts")
    }

    @Test("The blacklist is by address: one of two functions that share a name can be on it alone")
    func theBlacklistSkipsOneCopyOfASharedName() throws {
        let model = KprobePMUModel()
        model.setFile("/sys/kernel/debug/kprobes/blacklist", "0xffffffff81100800-0xffffffff81100850\tdup_static\n")
        let session = try CoverageCollector(backend: KprobeBackend(kernel: model), functions: FunctionSelection(patterns: ["dup_static"]))
        #expect(session.probedFunctions == [ProbedFunction(name: "dup_static", pc: 0xffff_ffff_8110_0700)])
        #expect(session.skippedFunctions.count == 1 && session.skippedFunctions[0].reason.contains("blacklist"))
        #expect(model.liveProbes == 1)
    }

    @Test("A blacklist line whose range ends before it starts is a name, in the backend and the model alike (a fuzzing finding: the model trapped)")
    func anInvertedBlacklistRangeIsNoRange() throws {
        let model = KprobePMUModel()
        model.setFile("/sys/kernel/debug/kprobes/blacklist", "0xffffffff81100850-0xffffffff81100800\tdup_static\n")
        let session = try CoverageCollector(backend: KprobeBackend(kernel: model), functions: FunctionSelection(patterns: ["dup_static", "ksys_read"]))
        #expect(session.probedFunctions.map(\.name) == ["ksys_read"], "dup_static is blacklisted by name")
        #expect(session.skippedFunctions.count == 2 && session.skippedFunctions.allSatisfy { $0.reason.contains("blacklist") })
        #expect(model.liveProbes == 1)
    }

    @Test func anEmptySelectionIsAnError() {
        #expect(throws: CoverageError.self) { try KprobeSession(backend: KprobeBackend(kernel: KprobePMUModel()), selection: FunctionSelection()) }
    }
}

@Suite struct KprobeCollectionTests {
    @Test func collectCountsTheEnablingThreadsEntries() throws {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read", "vfs_*", "__x64_sys_ioctl"]))
        let coverage = try session.collect { for _ in 0..<3 { backend.probe() } }
        #expect(coverage.hits("ksys_read") == 3)
        #expect(coverage.hits("vfs_open") == 0)
        #expect(coverage.hits("__x64_sys_ioctl") == 1, "DISABLE's own ioctl entry is counted once")
        #expect(coverage.pcs.contains(0xffff_ffff_8110_0010))
        #expect(coverage.pcKind == .kernelAddress)
        // A second collection starts from zero.
        let again = try session.collect { backend.probe() }
        #expect(again.hits("ksys_read") == 1)
    }

    @Test func anotherThreadsEntriesAreNotCounted() throws {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read"]))
        try session.enable()
        let done = DispatchSemaphore(value: 0)
        Thread {
            for _ in 0..<10 { backend.probe() }
            done.signal()
        }.start()
        done.wait()
        try session.disable()
        #expect(try session.read().hits("ksys_read") == 0)
    }

    @Test func enablingFromAnotherThreadRebindsTheProbes() throws {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read"]))
        let result = Mutex<UInt64?>(nil)
        let live = Mutex(0)
        let done = DispatchSemaphore(value: 0)
        let handoff = try CollectorHandoff(session)
        Thread {
            var collector = handoff.take()
            let coverage = try? collector?.collect { backend.probe() }
            result.withLock { $0 = coverage?.hits("ksys_read") }
            live.withLock { $0 = model.liveProbes }
            collector = nil
            done.signal()
        }.start()
        done.wait()
        #expect(result.withLock { $0 } == 1)
        #expect(live.withLock { $0 } == 1, "the old thread's probes were closed")
        #expect(model.liveProbes == 0, "the worker's collector released its probe")
    }

    @Test func baselineReportsFirstEntriesOnly() throws {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read", "vfs_read"]))
        var baseline = FunctionBaseline()
        let first = try session.collect { backend.probe() }
        #expect(baseline.merge(first.functions).map(\.name) == ["ksys_read"])
        #expect(baseline.merge(try session.collect { backend.probe() }.functions).isEmpty)
        let third = try session.collect {
            backend.probe()
            model.enter("vfs_read", thread: backend.currentThreadID())
        }
        #expect(baseline.merge(third.functions).map(\.name) == ["vfs_read"])
    }

    @Test func openProbesAreCountedAndReleased() throws {
        let model = KprobePMUModel()
        let backend = KprobeBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read", "vfs_*"]))
        #expect(backend.kernel.openPerfEventCount() == 4)
        _ = consume session
        #expect(backend.kernel.openPerfEventCount() == 0)
    }

    @Test func aCommandsEntriesAreCountedFromItsExec() throws {
        let model = KprobePMUModel()
        model.programs["/bin/cat"] = ["vfs_open", "vfs_read", "vfs_read", "vfs_write"]
        var session = try CoverageCollector(backend: KprobeBackend(kernel: model), functions: FunctionSelection(patterns: ["vfs_*", "ksys_read"]))
        let result = try session.run(Command(path: "/bin/cat", arguments: ["cat"], environment: []))
        #expect(result.exit == .exited(0))
        #expect(result.trace.hits("vfs_read") == 2)
        #expect(result.trace.hits("vfs_open") == 1)
        #expect(model.liveProbes == session.probedFunctions.count, "the command's probes are gone; the session's stay")
        #expect(throws: CoverageError.self) { try session.run(Command(path: "/nonexistent", arguments: ["x"], environment: [])) }
        #expect(model.liveProbes == session.probedFunctions.count)
    }

    @Test func closeRemovesEveryProbe() throws {
        let model = KprobePMUModel()
        var session = try CoverageCollector(backend: KprobeBackend(kernel: model), functions: FunctionSelection(patterns: ["*"]))
        #expect(model.liveProbes == session.probedFunctions.count)
        _ = consume session
        #expect(model.liveProbes == 0)
    }
}

@Suite struct KprobeErrorTests {
    @Test func aKernelWithoutTheKprobePMUNamesTheConfigOptions() {
        let model = KprobePMUModel(pmu: false)
        let backend = KprobeBackend(kernel: model)
        let error = #expect(throws: CoverageError.self) { try KprobeSession(backend: backend, selection: FunctionSelection(patterns: ["ksys_read"])) }
        #expect(error?.code == .deviceMissing)
        #expect(error?.message.contains("CONFIG_KPROBE_EVENTS") == true)
        #expect(!backend.availability().available)
        model.setFile("/proc/sys/kernel/perf_event_paranoid", nil)
        #expect(backend.availability().reason.contains("CONFIG_PERF_EVENTS"))
    }

    @Test func anUnprivilegedUserIsToldTheCapability() {
        let model = KprobePMUModel()
        model.openFailure = EACCES
        // What such a user sees in kallsyms: the privilege, not kptr_restrict, is what to fix.
        model.setFile("/proc/kallsyms", "0000000000000000 T ksys_read\n")
        let backend = KprobeBackend(kernel: model)
        let error = #expect(throws: CoverageError.self) { try KprobeSession(backend: backend, selection: FunctionSelection(patterns: ["ksys_read"])) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("CAP_PERFMON") == true)
        #expect(error?.message.contains("perf_event_paranoid says (it is 2 here)") == true)
        #expect(error?.errno == EACCES)
        #expect(!backend.availability().available)
        #expect(backend.availability().reason.contains("CAP_PERFMON"))
    }

    @Test func paranoidLevelThreeAsksForCapSysAdmin() {
        let model = KprobePMUModel()
        model.openFailure = EACCES
        model.setFile("/proc/sys/kernel/perf_event_paranoid", "3\n")
        let error = #expect(throws: CoverageError.self) {
            try KprobeSession(backend: KprobeBackend(kernel: model), selection: FunctionSelection(patterns: ["ksys_read"]))
        }
        #expect(error?.message.contains("CAP_SYS_ADMIN here") == true)
    }

    @Test func aPolicyRefusalNamesThePolicy() {
        let model = KprobePMUModel()
        model.openFailure = EPERM
        let error = #expect(throws: CoverageError.self) {
            try KprobeSession(backend: KprobeBackend(kernel: model), selection: FunctionSelection(patterns: ["ksys_read"]))
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("lockdown") == true)
    }

    @Test func comparisonModeIsRefusedBeforeAnySyscall() {
        let model = KprobePMUModel(pmu: false)
        let error = #expect(throws: CoverageError.self) {
            try KprobeSession(backend: KprobeBackend(kernel: model), selection: FunctionSelection(patterns: ["ksys_read"]), mode: .comparisons)
        }
        #expect(error?.code == .unsupportedMode)
        #expect(error?.syscall == nil)
    }

    @Test func hiddenKallsymsAddressesAreAPermissionError() {
        let model = KprobePMUModel()
        model.setFile("/proc/kallsyms", "0000000000000000 T ksys_read\n0000000000000000 T vfs_read\n")
        let error = #expect(throws: CoverageError.self) {
            try KprobeSession(backend: KprobeBackend(kernel: model), selection: FunctionSelection(patterns: ["ksys_read"]))
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("kptr_restrict") == true)
    }

    @Test func runningOutOfDescriptorsMidwayLeavesNoProbe() {
        let model = KprobePMUModel()
        model.fdLimit = 3
        let error = #expect(throws: CoverageError.self) {
            try KprobeSession(backend: KprobeBackend(kernel: model), selection: FunctionSelection(patterns: ["*"]))
        }
        #expect(error?.message.contains("ulimit -n") == true)
        #expect(model.liveProbes == 0)
    }

    @Test func capabilitiesHaveNoBufferAndACollectorNeedsFunctions() {
        let backend = KprobeBackend(kernel: KprobePMUModel())
        let capabilities = backend.capabilities
        #expect(capabilities.granularity == .function)
        #expect(capabilities.perThread)
        #expect(capabilities.supportedModes == [.pc])
        #expect(capabilities.remote.isEmpty)
        #expect(!capabilities.orderedTrace)
        #expect(backend.availability().available)
        #expect(capabilities.buffer == nil, "no shared buffer: one counter per probed function")
        let error = #expect(throws: CoverageError.self) { _ = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 2) }
        #expect(error?.code == .invalidArgument, "a collector without functions to probe")
        #expect(error?.message.contains("FunctionSelection") == true)
    }
}
