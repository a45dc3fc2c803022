import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import ReferenceModels
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized)
struct RealKernelCollectionTests {
    let backend = LinuxKcovBackend()

    @Test func probeSyscallCoverageHoldsKernelAddresses() throws {
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 16)
        let trace = try session.collect { backend.probe() }
        #expect(trace.pcs.count > 0)
        #expect(!trace.truncated)
        #expect(trace.pcs.allSatisfy { $0 >= kernelTextStart }, "every PC is a kernel text address")
    }

    @Test func sameSyscallGivesTheSameTraceTwice() throws {
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 16)
        // read(-1) takes one short path: two collections in a row record it alone within a few
        // rounds, though any one round may also record a page fault or an interrupt's return.
        let path = try repeatedPath { try session.collect { backend.probe() }.pcs }
        #expect(path != nil, "no two collections in a row recorded the same PCs in 8 rounds")
        #expect(path.map { !$0.isEmpty } == true)
    }

    /// syzkaller's pattern through the front door: opened, sized and mapped on this thread, taken
    /// and enabled by a worker, which records its own probe's path, the same as this thread's.
    @Test func aCollectorHandedToAWorkerRecordsTheWorkersSyscall() throws {
        // Each side's path is what two collections in a row agree on: one collection can also hold
        // a page fault of the thread's own code or an interrupt's return to user space (a soak run
        // once saw 1,217 PCs of a page fault served over 9p beside the probe's 11 here).
        var own = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 16)
        let expected = try #require(try repeatedPath { try own.collect { backend.probe() }.pcs }, "this thread's probe path repeats")
        let driver = backend
        let handoff = try CollectorHandoff(CoverageCollector(backend: driver, mode: .pc, bufferWords: 1 << 16))
        let result = Mutex<(pcs: Set<UInt64>?, tid: Int32)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            defer { done.signal() }
            guard var collector = handoff.take() else { return }
            let pcs = try? repeatedPath { try collector.collect { driver.probe() }.pcs }
            result.withLock { $0 = (pcs, driver.currentThreadID()) }
        }.start()
        done.wait()
        let worker = try #require(result.withLock { $0 })
        #expect(worker.tid != backend.currentThreadID())
        let workerPath = try #require(worker.pcs, "the worker's probe path repeats")
        #expect(workerPath == expected, "the worker's read(-1) took another path: \(workerPath.symmetricDifference(expected).count) PCs differ")
    }

    @Test func comparisonModeYieldsDecodableRecords() throws {
        var session = try CoverageCollector(backend: backend, mode: .comparisons, bufferWords: 1 << 16)
        let trace = try session.collect {
            _ = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        }
        #expect(trace.comparisons.count > 0)
        #expect(trace.comparisons.allSatisfy { $0.isWellFormed })
        #expect(trace.comparisons.allSatisfy { [1, 2, 4, 8].contains($0.operandSize) })
        #expect(trace.comparisons.allSatisfy { $0.pc >= kernelTextStart })
        #expect(trace.comparisons.contains { $0.isConstant })
    }

    @Test func anotherThreadsSyscallsNeverAppear() throws {
        // uname's own code, located through kallsyms.
        let unameCode = try kernelSymbolRanges(containing: "sys_newuname")
        try #require(!unameCode.isEmpty, "sys_newuname is in /proc/kallsyms")
        let inUname: @Sendable (UInt64) -> Bool = { pc in unameCode.contains { $0.contains(pc) } }

        // Control: a thread tracing its own uname calls does record that code.
        let control = POSIXThread.run {
            var session = try! CoverageCollector(backend: LinuxKcovBackend(), mode: .pc, bufferWords: 1 << 16)
            var name = utsname()
            let trace = try! session.collect { for _ in 0..<50 { uname(&name) } }
            return trace.pcs.count { inUname($0) }
        }
        #expect(control >= 50, "each traced uname call passes through sys_newuname")

        // The worker exists before coverage is enabled and is released through an atomic, so this
        // thread makes no syscall of its own while the worker calls uname 2000 times.
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 16)
        let go = Atomic<Bool>(false)
        let finished = Atomic<Bool>(false)
        let worker = Thread {
            while !go.load(ordering: .acquiring) {}
            var name = utsname()
            for _ in 0..<2000 { uname(&name) }
            finished.store(true, ordering: .releasing)
        }
        worker.start()
        try session.enable()
        go.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring) {}
        try session.disable()
        let leaked = try session.read().pcs.filter(inUname)
        #expect(leaked.isEmpty, "another thread's uname PCs in this thread's trace: \(leaked.map { "0x" + String($0, radix: 16) })")
    }

    @Test func disableStopsCollection() throws {
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 16)
        try session.enable()
        backend.probe()
        try session.disable()
        let afterDisable = try session.read()
        for _ in 0..<20 { backend.probe() }
        #expect(try session.read() == afterDisable)
        #expect(afterDisable.pcs.count > 0)
    }

    @Test func reenableAfterDisableCollectsAgain() throws {
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 16)
        let first = try session.collect { backend.probe() }
        let second = try session.collect { backend.probe() }
        #expect(first.pcs.count > 0 && second.pcs.count > 0)
    }

    @Test func smallestMappableBufferOverflowsAsTruncated() throws {
        // 512 words is the smallest buffer a 4 KiB-page kernel can map; 100 probes need ~10x more.
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 512)
        let trace = try session.collect { for _ in 0..<100 { backend.probe() } }
        #expect(trace.truncated)
        #expect(trace.pcs.count == 511, "the kernel saturates the count at size - 1")
    }

    @Test func comparisonOverflowIsTruncated() throws {
        var session = try CoverageCollector(backend: backend, mode: .comparisons, bufferWords: 512)
        let trace = try session.collect {
            for _ in 0..<20 { _ = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) }
        }
        #expect(trace.truncated)
        #expect(trace.comparisons.count == (512 - 1) / 4)
    }

    /// The one kcov difference between the two test kernels (Docs/kcov-linux.md#version-differences):
    /// this kernel treats a user-written comparison count of 2^61 as the Linux model of its own
    /// release does. The model's tests pin what each release does; this ties the data to the kernel.
    /// (2^61 is safe on both: 6.1 wraps the record into the buffer; a count that would make 6.1
    /// write before the buffer is never tried here.)
    @Test func forgedComparisonCountIsHandledAsTheModelOfThisReleaseDoes() throws {
        var name = utsname()
        try #require(uname(&name) == 0)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let version = try #require(LinuxKcovModel.KernelVersion(release: release), "the Linux model has no data for kernel \(release)")
        // GuestSuiteTests names the kernel it booted: the guest must be running that one.
        if let booted = ProcessInfo.processInfo.environment["KCOV_TEST_KERNEL"] {
            #expect(version.release == booted, "booted \(booted), running \(release)")
        }
        let kernel = try forgedComparisonCount(on: backend)
        let model = try forgedComparisonCount(on: LinuxKcovBackend(kernel: LinuxKcovModel(version: version)))
        #expect(kernel == model, "kernel \(release): \(kernel); the \(version) model: \(model)")
    }

    @Test func sixtyFourWordBufferCannotBeMapped() throws {
        // INIT_TRACE accepts 64 words, but mmap needs whole pages: the kernel refuses the mapping.
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 64)
            let error = coverageError { _ = try backend.mapBuffer(fd, words: 64) }
            #expect(error?.code == .bufferSize)
            #expect(error?.errno == EINVAL)
        }
        // The session refuses it before any syscall, with the same code.
        let early = coverageError { _ = try CoverageCollector(backend: backend, bufferWords: 64) }
        #expect(early?.code == .bufferSize)
    }

    @Test func remoteEnableWithCommonHandle() throws {
        let instance = UInt32.random(in: 1...0x7fff_ffff)
        let request = RemoteRequest(targets: [.common(instance: instance)], sectionWords: 512)
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 12)
        try session.enableRemote(request)
        // The same handle from another fd on another thread is taken.
        let second = POSIXThread.run {
            var other = try! CoverageCollector(backend: LinuxKcovBackend(), mode: .pc, bufferWords: 1 << 12)
            return coverageError { try other.enableRemote(request) }
        }
        #expect(second?.code == .handleInUse)
        #expect(second?.errno == EEXIST)
        // The remote-enabled thread's own syscalls are not recorded.
        for _ in 0..<10 { backend.probe() }
        #expect(try session.read().pcs.isEmpty)
        try session.disable()
    }

    @Test func forkedChildTracesTheCommand() throws {
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 18)
        let result = try session.run(Command(path: "/bin/true", arguments: ["true"], environment: []))
        #expect(result.exit == .exited(0))
        #expect(result.trace.pcs.count > 1000, "exec and the dynamic loader run a lot of kernel code")
        #expect(result.trace.pcs.allSatisfy { $0 >= kernelTextStart })
        // After the child exited its enable is gone: this thread may enable the same fd.
        let again = try session.collect { backend.probe() }
        #expect(again.pcs.count > 0)
    }

    @Test func missingCommandIsACommandError() throws {
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 12)
        let error = coverageError { _ = try session.run(Command(path: "/nonexistent/tool", arguments: ["tool"], environment: [])) }
        #expect(error?.code == .commandFailed)
        #expect(error?.errno == ENOENT)
    }

    @Test func sessionsReleaseDescriptorAndMappingOnEveryPath() throws {
        let before = try processResources()
        for _ in 0..<5 {
            var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 12)
            _ = try session.collect { backend.probe() }
        }
        // Fails after open (the kernel refuses to map 64 words): the fd must still be closed.
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 64)
            _ = coverageError { _ = try backend.mapBuffer(fd, words: 64) }
        }
        // Dropped while enabled.
        do {
            var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 12)
            try session.enable()
        }
        let after = try processResources()
        #expect(after.kcovFDs == before.kcovFDs)
        #expect(after.kcovMappings == 0)
        // And the thread is free to enable again: the dropped session disabled itself.
        var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 1 << 12)
        try session.enable()
        try session.disable()
    }
}

/// What a kernel does with a comparison count of 2^61 written by the user (Docs/kcov-linux.md#cmp-mode).
enum ForgedCountOutcome: Equatable, CustomStringConvertible {
    /// The count is kept and nothing is recorded (6.12's early return).
    case ignored
    /// Records go on at word 1 while the count goes on from 2^61 (6.1's wrapped offset).
    case wrappedToStart
    case other(String)

    var description: String {
        switch self {
        case .ignored: "count kept, nothing recorded"
        case .wrappedToStart: "records written from word 1, count going on from 2^61"
        case .other(let what): what
        }
    }
}

/// Enables comparison mode on a one-page buffer, stores 2^61 as the count, makes the probe
/// syscall, and classifies what the kernel did.
func forgedComparisonCount(on backend: LinuxKcovBackend) throws -> ForgedCountOutcome {
    let words = 512
    let forged: UInt64 = 1 << 61
    var outcome = ForgedCountOutcome.other("not run")
    try withDevice(backend) { fd in
        try backend.initialize(fd, words: words)
        let address = try backend.mapBuffer(fd, words: words)
        defer { backend.unmapBuffer(address, words: words) }
        let slots = address.assumingMemoryBound(to: Atomic<UInt64>.self)
        try backend.enable(fd, mode: .comparisons)
        slots[0].store(forged, ordering: .relaxed)
        backend.probe()
        let count = slots[0].load(ordering: .relaxed)
        let first = ComparisonRecord(
            type: slots[1].load(ordering: .relaxed), first: slots[2].load(ordering: .relaxed),
            second: slots[3].load(ordering: .relaxed), pc: slots[4].load(ordering: .relaxed))
        try backend.disable(fd)
        if count == forged {
            outcome = .ignored
        } else if count > forged, count - forged <= UInt64((words - 1) / 4), first.isWellFormed, first.pc >= kernelTextStart {
            outcome = .wrappedToStart
        } else {
            outcome = .other("count 2^61 + \(count &- forged), word 1 type \(first.type), PC 0x\(String(first.pc, radix: 16))")
        }
    }
    return outcome
}
