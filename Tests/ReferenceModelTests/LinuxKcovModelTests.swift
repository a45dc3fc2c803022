import CoverageAPI
import Dispatch
import Glibc
import KernelSeam
import ReferenceModels
import Synchronization
import Testing

// MARK: Helpers

private typealias Model = LinuxKcovModel
private typealias Request = LinuxKcovModel.Request

private let device = linuxKcovDevice
private let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
/// The smallest mappable buffer.
private let pageWords = pageBytes / 8


private func usb(_ instance: UInt64) -> UInt64 { Model.subsystemUSB | instance }


extension LinuxKcovModel {
    /// KCOV_REMOTE_ENABLE with the uapi layout; `count` overrides num_handles.
    fileprivate func remoteEnable(
        _ fd: CInt, mode: UInt32 = 0, areaWords: UInt32 = 64, common: UInt64 = 0, handles: [UInt64] = []
    ) -> CInt {
        var argument = [UInt64](repeating: 0, count: 3 + handles.count)
        argument[0] = UInt64(mode) | UInt64(areaWords) << 32
        argument[1] = UInt64(handles.count)
        argument[2] = common
        for (index, handle) in handles.enumerated() { argument[3 + index] = handle }
        return argument.withUnsafeMutableBytes { errnoOf(ioctl(fd, Request.remoteEnable, pointer: $0.baseAddress!)) }
    }
}

private let tailPCs = Model.ioctlExitPath.pcs
private let headPCs = Model.ioctlEntryPath.pcs

// MARK: Device and open (Docs/kcov-linux.md#device-and-open)

@Suite("Linux kcov model: device") struct LinuxKcovModelDeviceTests {
    @Test("each open is its own instance with a high fd; close of an unknown fd is EBADF")
    func openAndClose() {
        let model = Model()
        let first = model.openDevice()
        let second = model.openDevice()
        #expect(first >= 1000 && second >= 1000 && first != second)
        #expect(model.openDescriptorCount == 2)
        #expect(model.initTrace(first, UInt(pageWords)) == 0)
        #expect(model.descriptorState(first)?.mode == .initialized)
        #expect(model.descriptorState(second)?.mode == .disabled)
        #expect(errnoOf(model.close(first)) == 0)
        #expect(errnoOf(model.close(first)) == EBADF)
        #expect(errnoOf(model.close(3)) == EBADF)
        // The lowest free number is reused, as the kernel does.
        #expect(model.openDevice() == first)
        #expect(model.close(first) == 0 && model.close(second) == 0)
        #expect(model.isClean)
    }

    @Test("open fails with ENOENT, EACCES or EPERM as the knobs say")
    func openFailures() {
        #expect(errnoOf(Model().open("/dev/kcov", flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(deviceExists: false).open(device, flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(debugfsMounted: false).open(device, flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(accessAllowed: false).open(device, flags: O_RDWR)) == EACCES)
        #expect(errnoOf(Model(lockedDown: true).open(device, flags: O_RDWR)) == EPERM)
        // Missing beats forbidden.
        #expect(errnoOf(Model(deviceExists: false, accessAllowed: false).open(device, flags: O_RDWR)) == ENOENT)
        let custom = Model(devicePath: "/mnt/dbg/kcov")
        #expect(errnoOf(custom.open(device, flags: O_RDWR)) == ENOENT)
        let fd = custom.open("/mnt/dbg/kcov", flags: O_RDWR)
        #expect(fd >= 1000)
        #expect(custom.openDescriptorCount == 1)
    }

    @Test("errno is left alone on success and set on failure")
    func errnoConvention() {
        let model = Model()
        errno = EAGAIN
        let fd = model.open(device, flags: O_RDWR)
        #expect(fd >= 1000 && errno == EAGAIN)
        #expect(model.ioctl(fd, Request.initTrace, value: UInt(pageWords)) == 0 && errno == EAGAIN)
        #expect(model.map(fd, bytes: pageBytes) != nil && errno == EAGAIN)
        #expect(model.ioctl(fd, Request.initTrace, value: UInt(pageWords)) == -1 && errno == EBUSY)
        model.probeSyscall()
        #expect(errno == EBADF)  // read(-1, …) fails, as the real probe does
    }

    @Test("/proc/mounts lists debugfs at the device's directory only when it is mounted")
    func procMounts() {
        let mounted = Model().readTextFile("/proc/mounts")
        #expect(mounted?.split(separator: "\n").contains("debugfs /sys/kernel/debug debugfs rw 0 0") == true)
        let unmounted = Model(debugfsMounted: false).readTextFile("/proc/mounts")
        #expect(unmounted != nil)
        #expect(unmounted?.contains("debugfs") == false)
        let custom = Model(devicePath: "/mnt/dbg/kcov").readTextFile("/proc/mounts")
        #expect(custom?.split(separator: "\n").contains("debugfs /mnt/dbg debugfs rw 0 0") == true)
        errno = 0
        #expect(Model().readTextFile("/proc/nonexistent") == nil)
        #expect(errno == ENOENT)
    }
}

// MARK: ioctls (Docs/kcov-linux.md#ioctls)

@Suite("Linux kcov model: ioctls") struct LinuxKcovModelIoctlTests {
    @Test("INIT_TRACE checks the size before the state (Docs/kcov-linux.md#kcov_init_trace)")
    func initTraceOrder() {
        let model = Model()
        let fd = model.openDevice()
        for bad: UInt in [0, 1, 268_435_456, UInt(Int32.max), .max] {
            #expect(model.initTrace(fd, bad) == EINVAL, "size \(bad)")
        }
        #expect(model.descriptorState(fd)?.mode == .disabled)
        #expect(model.liveBufferCount == 0)
        #expect(model.initTrace(fd, 2) == 0)
        #expect(model.descriptorState(fd)?.mode == .initialized)
        #expect(model.descriptorState(fd)?.sizeWords == 2)
        // A bad size on an initialised fd is EINVAL, not EBUSY; a good one is EBUSY.
        #expect(model.initTrace(fd, 1) == EINVAL)
        #expect(model.initTrace(fd, UInt(pageWords)) == EBUSY)
        #expect(model.descriptorState(fd)?.sizeWords == 2)
        // The buffer allocated before the EBUSY check was freed.
        #expect(model.liveBufferCount == 1)
        let largest = model.openDevice()
        #expect(model.initTrace(largest, 268_435_455) == 0)
        #expect(model.descriptorState(largest)?.sizeWords == 268_435_455)
        _ = model.close(largest)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("unknown requests are ENOTTY, unknown fds EBADF, FIOCLEX succeeds")
    func unknownRequests() {
        let model = Model()
        let fd = model.openDevice()
        for request: UInt in [0x6399, 0x8004_6301, 0x4008_6367, 0x6368, 0] {
            #expect(errnoOf(model.ioctl(fd, request, value: 0)) == ENOTTY, "request \(request)")
        }
        #expect(errnoOf(model.ioctl(999, Request.initTrace, value: 64)) == EBADF)
        #expect(errnoOf(model.ioctl(fd, Request.closeOnExec, value: 0)) == 0)
        // By pointer, INIT_TRACE sees the address as the size.
        var word: UInt64 = 512
        #expect(errnoOf(model.ioctl(fd, Request.initTrace, pointer: &word)) == EINVAL)
        #expect(model.descriptorState(fd)?.mode == .disabled)
    }

    @Test("ENABLE: state, then busy, then mode (Docs/kcov-linux.md#kcov_enable)")
    func enableOrder() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.enable(fd) == EINVAL)  // not initialised
        #expect(model.initTrace(fd, UInt(pageWords)) == 0)
        for bad: UInt in [2, 7, 256, 1 << 32] {
            #expect(model.enable(fd, bad) == EINVAL, "mode \(bad)")
            #expect(model.descriptorState(fd)?.mode == .initialized)
        }
        #expect(model.enable(fd) == 0)
        #expect(model.descriptorState(fd)?.owner == model.tid)
        #expect(model.descriptorState(fd)?.mode == .tracePC)
        #expect(model.enable(fd) == EINVAL)  // twice, same thread
        let fromOther = model.runOnNewThread { model.enable(fd) }
        #expect(fromOther == EINVAL)
        // A second fd on the same thread: uninitialised is EINVAL (state first), else EBUSY,
        // even with a bad mode (busy before mode).
        let second = model.openDevice()
        #expect(model.enable(second) == EINVAL)
        #expect(model.initTrace(second, UInt(pageWords)) == 0)
        #expect(model.enable(second) == EBUSY)
        #expect(model.enable(second, 7) == EBUSY)
        #expect(model.descriptorState(second)?.mode == .initialized)
        // Another thread may enable the second fd.
        let otherThread = model.runOnNewThread { model.enable(second) }
        #expect(otherThread == 0)
        #expect(model.disable(fd) == 0)
        _ = model.close(fd)
        _ = model.close(second)
        #expect(model.isClean)
    }

    @Test("ENABLE(CMP) is 524 without CONFIG_KCOV_ENABLE_COMPARISONS, and CMP works with it")
    func comparisonsConfig() {
        let without = Model(comparisonsBuiltIn: false)
        let fd = without.initialized(words: pageWords)
        #expect(without.enable(fd, 1) == 524)
        #expect(without.descriptorState(fd)?.mode == .initialized)
        #expect(without.enable(fd, 0) == 0)
        #expect(without.disable(fd) == 0)

        let with = Model()
        let cmp = with.initialized(words: pageWords)
        #expect(with.enable(cmp, 1) == 0)
        #expect(with.descriptorState(cmp)?.mode == .traceCMP)
        #expect(with.disable(cmp) == 0)
    }

    @Test("DISABLE needs argument 0 and the owning thread; the fd returns to INIT with its buffer (Docs/kcov-linux.md#kcov_disable)")
    func disableRules() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        #expect(model.disable(fd) == EINVAL)  // not enabled
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd, 1) == EINVAL)
        #expect(model.descriptorState(fd)?.mode == .tracePC)
        let fromOther = model.runOnNewThread { model.disable(fd) }
        #expect(fromOther == EINVAL)
        // A thread whose enabled kcov is another fd.
        let other = model.initialized(words: pageWords)
        let wrongFD = model.runOnNewThread {
            let enabled = model.enable(other)
            return (enabled, model.disable(fd))
        }
        #expect(wrongFD == (0, EINVAL))
        model.probeSyscall()
        let recorded = words.count
        let sequence = model.descriptorState(fd)!.sequence
        #expect(model.disable(fd) == 0)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized)
        #expect(state?.owner == nil)
        #expect(state?.sequence == sequence + 1)
        // The buffer is kept, with DISABLE's own start appended.
        #expect(words.count == recorded + UInt64(headPCs.count))
        #expect(model.initTrace(fd, UInt(pageWords)) == EBUSY)
        // Any thread may enable it again, without a new mapping.
        let again = model.runOnNewThread { (model.enable(fd), model.disable(fd)) }
        #expect(again == (0, 0))
        #expect(model.threadState(model.tid) == nil)
    }

    @Test("ENABLE does not reset area[0] and records its own tail; DISABLE records its start")
    func enableTailAndDisableHead() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        words.count = 5
        #expect(model.enable(fd) == 0)
        #expect(words.count == 5 + UInt64(tailPCs.count))
        #expect(words.slice(6..<(6 + tailPCs.count)) == tailPCs)
        words.count = 0
        model.probeSyscall()
        #expect(words.pcs() == Model.probePCs)
        #expect(model.disable(fd) == 0)
        #expect(words.pcs() == Model.probePCs + headPCs)
        model.probeSyscall()
        #expect(words.pcs() == Model.probePCs + headPCs)
    }

    @Test("the probe path is nine kernel-looking PCs with a repeat")
    func probePath() {
        #expect(Model.probePCs.count == 9)
        #expect(Set(Model.probePCs).count < Model.probePCs.count)
        #expect(Model.probePCs.allSatisfy { $0 >> 24 == 0xff_ffff_ff81 })
        #expect(Model.probeComparisons.count == 4)
    }

    @Test("syscalls of a tracing thread are recorded; ioctls record entry and exit")
    func otherSyscallsRecorded() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        #expect(model.enable(fd) == 0)
        words.count = 0
        _ = model.currentThreadID()
        #expect(words.pcs() == Model.syscallPath.pcs)
        words.count = 0
        #expect(errnoOf(model.ioctl(fd, 0x6399, value: 0)) == ENOTTY)
        #expect(words.pcs() == headPCs + tailPCs)
    }
}

// MARK: mmap (Docs/kcov-linux.md#mmap)

@Suite("Linux kcov model: mmap") struct LinuxKcovModelMmapTests {
    @Test("mmap needs a buffer, offset 0 and exactly the buffer's page-rounded size")
    func mmapChecks() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.map(fd, bytes: pageBytes) == nil && errno == EINVAL)  // before INIT_TRACE
        #expect(model.initTrace(fd, UInt(pageWords)) == 0)
        #expect(model.map(fd, bytes: 2 * pageBytes) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, offset: pageBytes) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, offset: 1) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: 0) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, flags: 0) == nil && errno == EINVAL)
        #expect(model.map(999, bytes: pageBytes) == nil && errno == EBADF)
        #expect(model.liveMappingCount == 0)
        // A length that rounds up to the buffer is accepted; every mapping is the same memory.
        let first = model.map(fd, bytes: pageBytes - 100)
        let second = model.map(fd, bytes: pageBytes)
        #expect(first != nil && first == second)
        #expect(model.liveMappingCount == 2)
        #expect(Int(bitPattern: first) % pageBytes == 0)
        // Allowed while enabled too (6.12 has no mode check).
        #expect(model.enable(fd) == 0)
        let third = model.map(fd, bytes: pageBytes)
        #expect(third == first)
        #expect(model.disable(fd) == 0)
        // munmap: unknown address or partial length is EINVAL; each mapping is dropped once.
        let elsewhere = UnsafeMutableRawPointer.allocate(byteCount: pageBytes, alignment: pageBytes)
        defer { elsewhere.deallocate() }
        #expect(errnoOf(model.munmap(elsewhere, length: pageBytes)) == EINVAL)
        #expect(errnoOf(model.munmap(first!, length: 2 * pageBytes)) == EINVAL)
        for _ in 0..<3 { #expect(errnoOf(model.munmap(first!, length: pageBytes)) == 0) }
        #expect(errnoOf(model.munmap(first!, length: pageBytes)) == EINVAL)
        #expect(model.liveMappingCount == 0)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("a buffer whose byte size is not a page multiple can be initialised but never mapped")
    func unmappableSizes() {
        let model = Model()
        for words in [2, 100, pageWords + 1] {
            let fd = model.initialized(words: words)
            for bytes in [words * 8, pageBytes, (words * 8 + pageBytes - 1) / pageBytes * pageBytes] {
                #expect(model.map(fd, bytes: bytes) == nil && errno == EINVAL, "\(words) words, \(bytes) bytes")
            }
            _ = model.close(fd)
        }
        #expect(model.isClean)
    }

    @Test("a writable shared mapping needs O_RDWR; a write-only fd cannot be mapped")
    func mmapAccessMode() {
        let model = Model()
        let readOnly = model.initialized(words: pageWords, flags: O_RDONLY)
        #expect(model.map(readOnly, bytes: pageBytes) == nil && errno == EACCES)
        #expect(model.map(readOnly, bytes: pageBytes, protection: PROT_READ) != nil)
        #expect(model.map(readOnly, bytes: pageBytes, flags: MAP_PRIVATE) != nil)
        // ioctls need no write access.
        #expect(model.enable(readOnly) == 0)
        #expect(model.disable(readOnly) == 0)
        let writeOnly = model.initialized(words: pageWords, flags: O_WRONLY)
        #expect(model.map(writeOnly, bytes: pageBytes, protection: PROT_READ) == nil && errno == EACCES)
        // Access is checked before kcov's own checks.
        let uninitialised = model.openDevice(flags: O_RDONLY)
        #expect(model.map(uninitialised, bytes: pageBytes) == nil && errno == EACCES)
    }
}

// MARK: Recording (Docs/kcov-linux.md#buffer-layout)

@Suite("Linux kcov model: recording") struct LinuxKcovModelRecordingTests {
    @Test("PC count saturates at size-1 and drops the rest")
    func pcSaturation() {
        let model = Model()
        let fd = model.initialized(words: 16)
        #expect(model.enable(fd) == 0)
        for _ in 0..<3 { model.probeSyscall() }
        let expected = Array((tailPCs + Model.probePCs + Model.probePCs + Model.probePCs).prefix(15))
        let contents = model.bufferContents(fd)!
        #expect(contents.count == 16)
        #expect(contents[0] == 15)
        #expect(Array(contents[1...]) == expected)
        model.probeSyscall()
        #expect(model.bufferContents(fd)! == contents)

        let (big, words) = model.mapped(words: pageWords)
        let bigRun = model.runOnNewThread {
            guard model.enable(big) == 0 else { return false }
            words.count = 0
            for _ in 0..<100 { model.probeSyscall() }
            return true
        }
        #expect(bigRun)
        #expect(words.count == UInt64(pageWords - 1))
        let repeated = Array(repeating: Model.probePCs, count: 100).flatMap { $0 }
        #expect(words.pcs() == Array(repeated.prefix(pageWords - 1)))
    }

    @Test("a user-written count is trusted: appended after, and UInt64.max wraps to slot 0")
    func pcCorruptedCount() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        #expect(model.enable(fd) == 0)
        words.count = 100
        model.probeSyscall()
        #expect(words.count == 109)
        #expect(words.slice(101..<110) == Model.probePCs)
        words.count = .max
        words[1] = 0x1234
        model.probeSyscall()
        // pos wraps to 0: the count is set to 0, then overwritten by the first PC; the next
        // position is then far beyond the buffer, so everything else is dropped.
        #expect(words.count == Model.probePCs[0])
        #expect(words[1] == 0x1234)
    }

    @Test("CMP records are four words and bounded by floor((size-1)/4), with the early return")
    func comparisonBound() {
        let model = Model()
        let small = model.initialized(words: 16)
        #expect(model.enable(small, 1) == 0)
        let tail = Model.ioctlExitPath.comparisons
        #expect(model.bufferContents(small)![0] == UInt64(tail.count))
        model.probeSyscall()
        model.probeSyscall()
        let contents = model.bufferContents(small)!
        #expect(contents[0] == 3)
        let records = (tail + Model.probeComparisons).prefix(3).flatMap(\.words)
        #expect(Array(contents[1..<13]) == records)
        #expect(Array(contents[13...]) == [0, 0, 0])
        #expect(model.disable(small) == 0)

        let nine = model.initialized(words: 9)
        let nineRun = model.runOnNewThread {
            guard model.enable(nine, 1) == 0 else { return UInt64.max }
            model.probeSyscall()
            return model.bufferContents(nine)![0]
        }
        #expect(nineRun == 2)

        let (fd, words) = model.mapped(words: pageWords)
        let run = model.runOnNewThread { () -> [UInt64] in
            guard model.enable(fd, 1) == 0 else { return [] }
            var counts: [UInt64] = []
            words.count = 0
            model.probeSyscall()
            counts.append(words.count)
            words.count = 126
            model.probeSyscall()
            counts.append(words.count)
            words.count = 128  // max_pos / 32: early return
            model.probeSyscall()
            counts.append(words.count)
            words.count = .max
            model.probeSyscall()
            counts.append(words.count)
            // (1 + 4 * 2^61 + 4) * 8 wraps to 40: only the early return keeps this out.
            words.count = 1 << 61
            model.probeSyscall()
            counts.append(words.count)
            return counts
        }
        #expect(run == [4, 127, 128, .max, 1 << 61])
        let capacity = (pageWords - 1) / 4
        #expect(capacity == 127)
        #expect(words.slice((1 + 4 * 126)..<(1 + 4 * 127)) == Model.probeComparisons[0].words)
        #expect(words.slice(1..<17) == Model.probeComparisons.flatMap(\.words))
    }

    /// What a user-written CMP count past the buffer does, per release (Docs/kcov-linux.md#cmp-mode,
    /// Docs/kcov-linux.md#version-differences): the expectations are written out here, not read
    /// from ``LinuxKcovModel/KernelVersion``, so wrong version data fails this test.
    @Test("a CMP count of 2^61 is ignored by 6.12's early return and wraps to word 1 on 6.1",
          arguments: [(Model.KernelVersion.v6_12, false), (Model.KernelVersion.v6_1, true)])
    func comparisonCountPastCapacity(version: LinuxKcovModel.KernelVersion, wraps: Bool) {
        let model = Model(version: version)
        let (fd, words) = model.mapped(words: pageWords)
        let run = model.runOnNewThread { () -> (count: UInt64, before: [UInt64], after: [UInt64])? in
            guard model.enable(fd, 1) == 0 else { return nil }
            words.count = 1 << 61
            let before = words.slice(1..<17)
            model.probeSyscall()
            return (words.count, before, words.slice(1..<17))
        }
        guard let run else {
            Issue.record("ENABLE(cmp) failed")
            return
        }
        let probe = Model.probeComparisons.flatMap(\.words)
        #expect(probe.count == 16)
        if wraps {
            // (1 + 4 * 2^61 + 4) * 8 wraps to 40 <= 4096, and &area[1 + 2^63] wraps to &area[1].
            #expect(run.count == (1 << 61) + 4)
            #expect(run.after == probe)
        } else {
            #expect(run.count == 1 << 61)
            #expect(run.after == run.before)
        }
    }

    @Test("a CMP count of 2^64 - 1: 6.12 returns early; 6.1 wraps the count to 0 and its first record's PC lands in word 0",
          arguments: [(Model.KernelVersion.v6_12, false), (Model.KernelVersion.v6_1, true)])
    func comparisonCountAtMaximum(version: LinuxKcovModel.KernelVersion, wraps: Bool) {
        let model = Model(version: version)
        let (fd, words) = model.mapped(words: pageWords)
        let run = model.runOnNewThread { () -> (count: UInt64, before: [UInt64], after: [UInt64])? in
            guard model.enable(fd, 1) == 0 else { return nil }
            words.count = .max
            let before = words.slice(1..<pageWords)
            model.probeSyscall()
            return (words.count, before, words.slice(1..<pageWords))
        }
        guard let run else {
            Issue.record("ENABLE(cmp) failed")
            return
        }
        // The record's other three words fall before the buffer (beyond the model); the PC, then
        // read as the count, puts every later record far past the end.
        #expect(run.count == (wraps ? Model.probeComparisons[0].pc : .max))
        #expect(run.after == run.before)
    }

    @Test("version data: each test kernel's release string finds its row, other releases none")
    func kernelVersionLookup() {
        #expect(Model.KernelVersion(release: "6.1") == .v6_1)
        #expect(Model.KernelVersion(release: "6.1.192") == .v6_1)
        #expect(Model.KernelVersion(release: "6.12.117") == .v6_12)
        #expect(Model.KernelVersion(release: "6.12.0-28-amd64") == .v6_12)
        #expect(Model.KernelVersion(release: "6.10") == nil)
        #expect(Model.KernelVersion(release: "6") == nil)
        #expect(Model.KernelVersion(release: "") == nil)
        #expect(Model().version == .v6_12)
    }

    @Test("another thread's syscalls never reach this thread's buffer")
    func perThreadIsolation() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        #expect(model.enable(fd) == 0)
        words.count = 0
        model.runOnNewThread { model.probeSyscall() }
        #expect(words.count == 0)
        let otherCount = model.runOnNewThread { () -> UInt64 in
            let (own, ownWords) = model.mapped(words: pageWords)
            guard model.enable(own) == 0 else { return 0 }
            ownWords.count = 0
            model.probeSyscall()
            model.probeSyscall()
            return ownWords.count
        }
        #expect(otherCount == 18)
        #expect(words.count == 0)
        model.probeSyscall()
        #expect(words.pcs() == Model.probePCs)
    }

    @Test("threads tracing concurrently each get exactly their own trace")
    func concurrentThreads() {
        let model = Model()
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let (fd, words) = model.mapped(words: pageWords)
            var ok = model.enable(fd) == 0
            words.count = 0
            for _ in 0..<40 { model.probeSyscall() }
            let expected = Array(repeating: Model.probePCs, count: 40).flatMap { $0 }
            ok = ok && words.pcs() == expected
            ok = ok && model.disable(fd) == 0
            ok = ok && model.munmap(UnsafeMutableRawPointer(words.base), length: pageBytes) == 0
            ok = ok && model.close(fd) == 0
            if !ok { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(model.isClean)
    }
}

// MARK: Lifecycle (Docs/kcov-linux.md#threads-and-lifecycle)

@Suite("Linux kcov model: lifecycle") struct LinuxKcovModelLifecycleTests {
    @Test("thread exit disables: the fd goes back to INIT with its buffer")
    func threadExit() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        let childTid = model.runOnNewThread { () -> CInt in
            _ = model.enable(fd)
            model.probeSyscall()
            return model.tid
        }
        #expect(childTid != model.tid)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized)
        #expect(state?.owner == nil)
        #expect(state?.sequence == 2)
        #expect(model.threadState(childTid) == nil)
        #expect(words.pcs() == tailPCs + Model.probePCs)
        #expect(model.enable(fd) == 0)
        // Exit of a thread that does not own the fd changes nothing.
        model.threadExited(childTid)
        #expect(model.descriptorState(fd)?.owner == model.tid)
        #expect(model.disable(fd) == 0)
    }

    @Test("close while enabled: collection continues until thread exit; the thread stays busy")
    func closeWhileEnabled() {
        let model = Model()
        let result = model.runOnNewThread { () -> [String] in
            var problems: [String] = []
            let (fd, words) = model.mapped(words: pageWords)
            guard model.enable(fd) == 0 else { return ["enable"] }
            words.count = 0
            guard model.close(fd) == 0 else { return ["close"] }
            if model.openDescriptorCount != 0 { problems.append("fd count") }
            if model.liveBufferCount != 1 { problems.append("buffer count") }
            model.probeSyscall()
            // close's own syscall path was recorded before the probe.
            if words.pcs() != Model.syscallPath.pcs + Model.probePCs { problems.append("trace \(words.pcs())") }
            let state = model.threadState(model.tid)
            if state?.descriptor != nil || state?.recording != .tracePC { problems.append("thread state") }
            let second = model.initialized(words: pageWords)
            if model.enable(second) != EBUSY { problems.append("second enable") }
            _ = model.close(second)
            return problems
        }
        #expect(result == [])
        // The thread exited; its mapping still holds the buffer.
        #expect(model.liveBufferCount == 1)
        #expect(model.liveMappingCount == 1)
        #expect(model.openDescriptorCount == 0)
    }

    @Test("a closed, disabled buffer is freed when its last mapping goes, exactly once")
    func bufferLifetime() {
        let model = Model()
        let unmapped = model.initialized(words: pageWords)
        #expect(model.liveBufferCount == 1)
        _ = model.close(unmapped)
        #expect(model.liveBufferCount == 0)

        let fd = model.initialized(words: pageWords)
        let first = model.map(fd, bytes: pageBytes)!
        let second = model.map(fd, bytes: pageBytes)!
        #expect(model.close(fd) == 0)
        #expect(model.liveBufferCount == 1)
        #expect(model.munmap(first, length: pageBytes) == 0)
        #expect(model.liveBufferCount == 1)
        #expect(model.liveMappingCount == 1)
        #expect(model.munmap(second, length: pageBytes) == 0)
        #expect(model.isClean)
        #expect(errnoOf(model.munmap(second, length: pageBytes)) == EINVAL)

        // Enabled, closed and unmapped: the thread's reference is the last; exit frees it.
        let stillLive = model.runOnNewThread { () -> Int in
            let (fd, words) = model.mapped(words: pageWords)
            _ = model.enable(fd)
            _ = model.munmap(UnsafeMutableRawPointer(words.base), length: pageBytes)
            _ = model.close(fd)
            return model.liveBufferCount
        }
        #expect(stillLive == 1)
        #expect(model.isClean)
    }
}

// MARK: Remote (Docs/kcov-linux.md#remote-coverage)

@Suite("Linux kcov model: remote") struct LinuxKcovModelRemoteTests {
    @Test("REMOTE_ENABLE checks the handle count before any state; a zeroed header on a fresh fd is EINVAL")
    func remoteOrder() {
        let model = Model()
        let fresh = model.openDevice()
        #expect(model.remoteEnable(fresh) == EINVAL)  // the Linux fingerprint
        #expect(errnoOf(model.ioctl(fresh, Request.remoteEnable, value: 0)) == EFAULT)
        // With this thread busy, 257 handles is EINVAL (count first), 256 valid ones EBUSY.
        let local = model.initialized(words: pageWords)
        #expect(model.enable(local) == 0)
        let target = model.initialized(words: pageWords)
        #expect(model.remoteEnable(target, handles: (0..<257).map { usb($0) }) == EINVAL)
        #expect(model.remoteEnable(target, handles: (0..<256).map { usb($0) }) == EBUSY)
        #expect(model.remoteEnable(target, mode: 9, handles: [usb(1)]) == EBUSY)  // busy before mode
        #expect(model.disable(local) == 0)
        #expect(model.remoteEnable(target, mode: 2, handles: [usb(1)]) == EINVAL)
        #expect(model.registeredRemoteHandles.isEmpty)
        #expect(model.remoteEnable(target, handles: (0..<256).map { usb($0) }) == 0)
        #expect(model.registeredRemoteHandles.count == 256)
        #expect(model.disable(target) == 0)
        #expect(model.registeredRemoteHandles.isEmpty)

        let noCMP = Model(comparisonsBuiltIn: false)
        let fd = noCMP.initialized(words: pageWords)
        #expect(noCMP.remoteEnable(fd, mode: 1, handles: [usb(1)]) == 524)
        #expect(noCMP.descriptorState(fd)?.mode == .initialized)
    }

    @Test("a remote-enabled thread records nothing itself, is busy, and DISABLE undoes everything")
    func remoteEnableCommon() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        #expect(model.remoteEnable(fd, common: 0x2a) == 0)
        let state = model.descriptorState(fd)
        #expect(state?.remote == true && state?.mode == .tracePC && state?.owner == model.tid)
        #expect(state?.remoteAreaWords == 64)
        let thread = model.threadState(model.tid)
        #expect(thread?.descriptor == fd && thread?.recording == nil && thread?.commonHandle == 0x2a)
        #expect(model.registeredRemoteHandles == [0x2a])
        #expect(words.count == 0)
        model.probeSyscall()
        #expect(words.count == 0)
        #expect(model.enable(fd) == EINVAL)
        let other = model.initialized(words: pageWords)
        #expect(model.enable(other) == EBUSY)
        #expect(model.remoteEnable(other, handles: [usb(1)]) == EBUSY)
        #expect(model.disable(fd) == 0)
        #expect(model.descriptorState(fd)?.remote == false)
        #expect(model.threadState(model.tid) == nil)
        #expect(model.registeredRemoteHandles.isEmpty)
        #expect(words.count == 0)  // the DISABLE itself was not traced either
    }

    @Test("handles must be USB in the list and COMMON with an instance as the common handle; failures roll back")
    func remoteHandleValidation() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        let invalid: [(common: UInt64, handles: [UInt64])] = [
            (0, [usb(1), Model.subsystemUSB | 1 << 40]),  // reserved bits
            (0, [usb(1), 7]),  // COMMON in the list
            (0, [usb(1), 2 << 56 | 1]),  // unknown subsystem
            (usb(3), [usb(1)]),  // USB as the common handle
            (1 << 32, [usb(1)]),  // reserved bits, instance 0
        ]
        var sequence = model.descriptorState(fd)!.sequence
        for (common, handles) in invalid {
            #expect(model.remoteEnable(fd, common: common, handles: handles) == EINVAL, "\(common) \(handles)")
            let state = model.descriptorState(fd)
            // Steps 9/10 failed after enabling: rolled back, with the sequence bumped.
            #expect(state?.mode == .initialized && state?.remote == false && state?.owner == nil)
            #expect(state?.sequence == sequence + 1)
            sequence += 1
            #expect(model.registeredRemoteHandles.isEmpty)
            #expect(model.threadState(model.tid) == nil)
        }
        // USB instance 0 is fine.
        #expect(model.remoteEnable(fd, handles: [usb(0)]) == 0)
        #expect(model.disable(fd) == 0)
    }

    @Test("a handle held anywhere, or listed twice, is EEXIST, in list order")
    func remoteDuplicates() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        #expect(model.remoteEnable(fd, handles: [usb(1), usb(2), usb(1)]) == EEXIST)
        #expect(model.registeredRemoteHandles.isEmpty)
        #expect(model.remoteEnable(fd, handles: [usb(1), usb(1), 7]) == EEXIST)  // duplicate before invalid
        #expect(model.remoteEnable(fd, handles: [7, usb(1), usb(1)]) == EINVAL)
        #expect(model.descriptorState(fd)?.mode == .initialized)
        // The same fd can be retried.
        #expect(model.remoteEnable(fd, common: 5, handles: [usb(1), usb(2)]) == 0)
        let other = model.initialized(words: pageWords)
        let results = model.runOnNewThread { () -> [CInt] in
            [
                model.remoteEnable(other, handles: [usb(3), usb(2)]),
                model.remoteEnable(other, common: 5, handles: [usb(3)]),
                model.remoteEnable(other, common: 6, handles: [usb(3)]),
            ]
        }
        #expect(results == [EEXIST, EEXIST, 0])
        // The other thread exited: its handles went with it.
        #expect(model.registeredRemoteHandles == [5, usb(1), usb(2)])
        #expect(model.disable(fd) == 0)
        #expect(model.registeredRemoteHandles.isEmpty)
    }

    @Test("remote sections append to the fd's buffer within its bounds and sequence")
    func remoteSections() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        #expect(model.runRemoteSection(handle: usb(3)) == nil)
        #expect(model.remoteEnable(fd, areaWords: 64, handles: [usb(3)]) == 0)
        #expect(model.runRemoteSection(handle: usb(3)) == 5)
        #expect(words.pcs() == Model.remoteSectionPath.pcs)
        #expect(model.runRemoteSection(handle: usb(4)) == nil)
        // Disabled and re-enabled between start and stop: nothing.
        let section = model.remoteSectionStart(handle: usb(3))!
        #expect(model.disable(fd) == 0)
        #expect(model.remoteEnable(fd, areaWords: 3, handles: [usb(3)]) == 0)
        #expect(model.remoteSectionStop(section) == 0)
        #expect(words.count == 5)
        // area_size 3: a task-context section keeps 2 PCs; a softirq section uses the IRQ area.
        #expect(model.runRemoteSection(handle: usb(3)) == 2)
        #expect(model.runRemoteSection(handle: usb(3), softirq: true) == 5)
        #expect(words.count == 12)
        // Truncated to the free space; nothing once the count is past the capacity.
        words.count = UInt64(pageWords - 3)
        #expect(model.runRemoteSection(handle: usb(3), softirq: true) == 2)
        #expect(words.count == UInt64(pageWords - 1))
        words.count = UInt64(pageWords)
        #expect(model.runRemoteSection(handle: usb(3), softirq: true) == 0)
        #expect(words.count == UInt64(pageWords))
        #expect(model.disable(fd) == 0)

        // CMP: whole records.
        let (cmp, cmpWords) = model.mapped(words: pageWords)
        #expect(model.remoteEnable(cmp, mode: 1, areaWords: 64, handles: [usb(9)]) == 0)
        #expect(model.runRemoteSection(handle: usb(9)) == 2)
        #expect(cmpWords.count == 2)
        #expect(cmpWords.slice(1..<9) == Model.remoteSectionPath.comparisons.flatMap(\.words))
        #expect(model.disable(cmp) == 0)
    }

    @Test("an in-flight section keeps a closed kcov's buffer alive")
    func sectionHoldsReference() {
        let model = Model()
        let section = model.runOnNewThread { () -> LinuxKcovModel.RemoteSection? in
            let fd = model.initialized(words: pageWords)
            guard model.remoteEnable(fd, handles: [usb(1)]) == 0 else { return nil }
            _ = model.close(fd)
            return model.remoteSectionStart(handle: usb(1))
        }
        #expect(section != nil)
        // The thread exit unregistered the handle, but the section still holds the buffer.
        #expect(model.registeredRemoteHandles.isEmpty)
        #expect(model.liveBufferCount == 1)
        #expect(model.remoteSectionStop(section!) == 0)
        #expect(model.isClean)
    }
}

// MARK: Simulated fork + exec

@Suite("Linux kcov model: spawn") struct LinuxKcovModelSpawnTests {
    private func spawn(_ model: Model, _ path: String, fd: CInt, counter: UnsafeMutableRawPointer, mode: UInt = 0, byPointer: Bool = false)
        -> SpawnOutcome
    {
        model.spawnEnabled(
            Command(path: path, arguments: [path], environment: []), fd: fd,
            enable: EnableCall(request: Request.enable, argument: mode, byPointer: byPointer),
            buffer: counter, bufferBytes: pageWords * 8)
    }

    @Test("the parent resets the count; a child enables, runs the probe and exits, disabling on exit")
    func spawnRuns() {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        words.count = 77
        let outcome = spawn(model, "/bin/sh", fd: fd, counter: UnsafeMutableRawPointer(words.base))
        guard case .running(let pid) = outcome else {
            Issue.record("unexpected \(outcome)")
            return
        }
        #expect(model.waitForExit(pid) == .exited(0))
        #expect(words.pcs() == Model.ioctlExitPath.pcs + Model.syscallPath.pcs + Model.probePCs + Model.syscallPath.pcs)
        #expect(model.descriptorState(fd)?.mode == .initialized)
        #expect(model.descriptorState(fd)?.owner == nil)
        // The parent recorded nothing of the child's: it can enable the fd itself now.
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd) == 0)
    }

    @Test("a child's ENABLE failure comes before exec; exec failures give ENOENT or EACCES")
    func spawnFailures() throws {
        let model = Model()
        let (fd, words) = model.mapped(words: pageWords)
        let counter = UnsafeMutableRawPointer(words.base)
        #expect(spawn(model, "/nonexistent/program", fd: fd, counter: counter) == .execFailed(errno: ENOENT))
        #expect(spawn(model, "/tmp", fd: fd, counter: counter) == .execFailed(errno: EACCES))
        var template = Array("/tmp/kcov-model-XXXXXX".utf8CString)
        let file = mkstemp(&template)
        try #require(file >= 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(path) }
        Glibc.close(file)
        chmod(path, 0o644)
        #expect(spawn(model, path, fd: fd, counter: counter) == .execFailed(errno: EACCES))
        // Each failed child still exited: the fd is back in INIT.
        #expect(model.descriptorState(fd)?.mode == .initialized)

        let uninitialised = model.openDevice()
        #expect(spawn(model, "/nonexistent/program", fd: uninitialised, counter: counter) == .enableFailed(errno: EINVAL))
        #expect(spawn(model, "/bin/sh", fd: fd, counter: counter, mode: 5) == .enableFailed(errno: EINVAL))
        #expect(spawn(model, "/bin/sh", fd: fd, counter: counter, byPointer: true) == .enableFailed(errno: EINVAL))
        let noCMP = Model(comparisonsBuiltIn: false)
        let (cmpFD, cmpWords) = noCMP.mapped(words: pageWords)
        #expect(spawn(noCMP, "/bin/sh", fd: cmpFD, counter: UnsafeMutableRawPointer(cmpWords.base), mode: 1) == .enableFailed(errno: 524))
        // The parent has the fd enabled: the child's ENABLE finds it not in INIT.
        #expect(model.enable(fd) == 0)
        #expect(spawn(model, "/bin/sh", fd: fd, counter: counter) == .enableFailed(errno: EINVAL))
        #expect(model.disable(fd) == 0)
    }
}
