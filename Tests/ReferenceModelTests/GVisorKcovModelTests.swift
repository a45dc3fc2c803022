import CoverageAPI
import Dispatch
import Glibc
import KernelSeam
import ReferenceModels
import Synchronization
import Testing

// MARK: Helpers

private typealias Model = GVisorKcovModel
private typealias Request = GVisorKcovModel.Request

private let device = linuxKcovDevice
/// gVisor's page: INIT_TRACE wants a multiple of 512 words.
private let pageWords = 512
private let pageBytes = 4096
private let hostPage = Int(sysconf(Int32(_SC_PAGESIZE)))


/// What one return to user space writes for these pending sets.
private let probeWindow = Model.window(Model.probeBlocks)
private let syscallWindow = Model.window(Model.syscallBlocks)
private let enableWindow = Model.window(Model.ioctlExitBlocks)
private let allPCs = Set(Model.allBlocks.map(\.syntheticPC))


extension GVisorKcovModel {
    /// An fd enabled by the calling thread with its count reset: the portable recipe of Docs/kcov-gvisor.md#portable-usage.
    fileprivate func tracing(words: Int = pageWords) -> (fd: CInt, buffer: Words) {
        let (fd, buffer) = mapped(words: words)
        precondition(enable(fd) == 0)
        buffer.count = 0
        return (fd, buffer)
    }
}

/// A real thread that stays alive between jobs, so that it keeps its sentry task (and what it
/// owns) while other threads act; ``exit(_:)`` runs the model's exit path for it and ends it.
private final class Worker: @unchecked Sendable {
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var job: (() -> Void)?
    private var thread: POSIXThread?

    init() {
        thread = POSIXThread { [self] in loop() }
    }

    private func loop() {
        while true {
            wake.wait()
            guard let job else { return }
            job()
            self.job = nil
            finished.signal()
        }
    }

    /// Runs `body` on the worker thread and waits for it.
    func run<T>(_ body: @escaping () -> T) -> T {
        var result: T?
        job = { result = body() }
        wake.signal()
        finished.wait()
        return result!
    }

    /// The thread exits: the model's exit path runs for it, then the thread ends.
    func exit(_ model: GVisorKcovModel) {
        run { model.threadExited(SystemKernel().currentThreadID()) }
        job = nil
        wake.signal()
        thread!.join()
    }
}

// MARK: Device and open (Docs/kcov-gvisor.md#availability, Docs/kcov-gvisor.md#device-and-open)

@Suite("gVisor kcov model: device") struct GVisorKcovModelDeviceTests {
    @Test("each open is its own Kcov with an fd from 3000; unknown fds are EBADF")
    func openAndClose() {
        let model = Model()
        let first = model.openDevice()
        let second = model.openDevice()
        #expect(first >= 3000 && second >= 3000 && first != second)
        #expect(model.openDescriptorCount == 2)
        #expect(model.initTrace(first, UInt(pageWords)) == 0)
        #expect(model.descriptorState(first)?.mode == .initialized)
        #expect(model.descriptorState(second)?.mode == .disabled)
        #expect(errnoOf(model.close(first)) == 0)
        #expect(errnoOf(model.close(first)) == EBADF)
        #expect(errnoOf(model.close(3)) == EBADF)
        #expect(errnoOf(model.ioctl(999, Request.initTrace, value: 512)) == EBADF)
        #expect(model.map(999, bytes: pageBytes) == nil && errno == EBADF)
        #expect(model.openDevice() == first)
        #expect(model.close(first) == 0 && model.close(second) == 0)
        #expect(model.isClean)
    }

    @Test("open fails with ENOENT in a release build or with a coverage report, EACCES without permission")
    func openFailures() {
        #expect(errnoOf(Model().open("/dev/kcov", flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(coverageBuild: false).open(device, flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(coverageReportConfigured: true).open(device, flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(accessAllowed: false).open(device, flags: O_RDWR)) == EACCES)
        // Missing beats forbidden.
        #expect(errnoOf(Model(coverageBuild: false, accessAllowed: false).open(device, flags: O_RDWR)) == ENOENT)
        let custom = Model(devicePath: "/sys/kernel/debug/kcov2")
        #expect(errnoOf(custom.open(device, flags: O_RDWR)) == ENOENT)
        #expect(custom.open("/sys/kernel/debug/kcov2", flags: O_RDWR) >= 3000)
        // Open flags are not checked.
        let model = Model()
        #expect(model.open(device, flags: O_WRONLY | O_APPEND | O_NONBLOCK) >= 3000)
    }

    @Test("errno is left alone on success and set on failure")
    func errnoConvention() {
        let model = Model()
        errno = EAGAIN
        let fd = model.open(device, flags: O_RDWR)
        #expect(fd >= 3000 && errno == EAGAIN)
        #expect(model.ioctl(fd, Request.initTrace, value: UInt(pageWords)) == 0 && errno == EAGAIN)
        #expect(model.map(fd, bytes: pageBytes) != nil && errno == EAGAIN)
        #expect(model.ioctl(fd, Request.enable, value: 0) == 0 && errno == EAGAIN)
        #expect(model.currentThreadID() == model.tid && errno == EAGAIN)
        #expect(model.ioctl(fd, Request.initTrace, value: UInt(pageWords)) == -1 && errno == EBUSY)
        #expect(model.map(fd, bytes: pageBytes) == nil && errno == EINVAL)
        model.probeSyscall()
        #expect(errno == EBADF)  // read(-1, …) fails, as the real probe does
        #expect(model.close(fd) == 0)
    }

    @Test("/proc/mounts has no debugfs; /proc/version is gVisor's; other files are ENOENT")
    func procFiles() {
        let model = Model()
        let mounts = model.readTextFile("/proc/mounts")
        #expect(mounts?.contains("debugfs") == false)
        #expect(mounts?.split(separator: "\n").contains { $0.hasPrefix("none /sys sysfs") } == true)
        #expect(model.readTextFile("/proc/version")?.hasPrefix("Linux version 4.4.0 ") == true)
        errno = 0
        #expect(model.readTextFile("/proc/nonexistent") == nil)
        #expect(errno == ENOENT)
    }

    @Test("only a coverage build has coverage counters")
    func countersNeedCoverageBuild() {
        let release = Model(coverageBuild: false)
        release.probeSyscall()
        #expect(release.pendingBlockCount == 0)
        let coverage = Model()
        coverage.probeSyscall()
        #expect(coverage.pendingBlocks == Model.probeBlocks)
        // With a coverage report the counters exist, but there is no kcov file.
        let reporting = Model(coverageReportConfigured: true)
        reporting.probeSyscall()
        #expect(reporting.pendingBlockCount == 8)
    }
}

// MARK: ioctls (Docs/kcov-gvisor.md#ioctls)

@Suite("gVisor kcov model: ioctls") struct GVisorKcovModelIoctlTests {
    @Test("INIT_TRACE: state first, then page alignment, then range; nothing allocated (Docs/kcov-gvisor.md#kcov_init_trace)")
    func initTraceOrder() {
        let model = Model()
        let fd = model.openDevice()
        let unaligned: [UInt] = [1, 2, 100, 511, 513, 1000, .max]
        for words in unaligned { #expect(model.initTrace(fd, words) == EINVAL, "\(words)") }
        // Aligned but out of range; 8 * 2^61 wraps to 0, which is aligned.
        let outOfRange: [UInt] = [0, UInt(Model.maxWords) + 512, 1 << 61, (1 << 61) + 512]
        for words in outOfRange { #expect(model.initTrace(fd, words) == EINVAL, "\(words)") }
        #expect(model.descriptorState(fd)?.mode == .disabled)
        #expect(model.initTrace(fd, UInt(pageWords)) == 0)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized && state?.sizeWords == pageWords && state?.hasBuffer == false)
        #expect(model.liveBufferCount == 0)
        // State is checked first: any size on an initialised fd is EBUSY, where Linux says EINVAL.
        for words: UInt in [0, 1, 2, 512, .max] { #expect(model.initTrace(fd, words) == EBUSY, "\(words)") }
        #expect(model.descriptorState(fd)?.sizeWords == pageWords)
        let largest = model.openDevice()
        #expect(model.initTrace(largest, UInt(Model.maxWords)) == 0)
        #expect(model.liveBufferCount == 0)
        _ = model.close(largest)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("requests are compared as uint32; unknown ones are ENOTTY; FIOCLEX succeeds")
    func requestNumbers() {
        let model = Model()
        let fd = model.openDevice()
        let unknown: [UInt] = [0x6399, 0x8004_6301, Request.remoteEnable, 0x4008_6367, 0x6368, 0, 0x6366]
        for request in unknown { #expect(errnoOf(model.ioctl(fd, request, value: 0)) == ENOTTY, "\(request)") }
        #expect(errnoOf(model.ioctl(fd, Request.closeOnExec, value: 0)) == 0)
        #expect(errnoOf(model.ioctl(fd, Request.noCloseOnExec, value: 0)) == 0)
        // The upper 32 bits of the request are ignored.
        #expect(errnoOf(model.ioctl(fd, 1 << 32 | Request.enable, value: 0)) == EINVAL)
        #expect(errnoOf(model.ioctl(fd, 1 << 40 | Request.initTrace, value: UInt(pageWords))) == 0)
        #expect(model.descriptorState(fd)?.mode == .initialized)
        #expect(errnoOf(model.ioctl(fd, 0xffff_ffff_0000_0000 | Request.initTrace, value: 0)) == EBUSY)
        // By pointer, INIT_TRACE sees the address as the size.
        let fresh = model.openDevice()
        var word: UInt64 = 512
        #expect(errnoOf(model.ioctl(fresh, Request.initTrace, pointer: &word)) == EINVAL)
        #expect(model.descriptorState(fresh)?.mode == .disabled)
    }

    @Test("ENABLE: state and buffer, then the 8-bit trace kind; errors leave the fd in INIT (Docs/kcov-gvisor.md#kcov_enable)")
    func enableOrder() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.enable(fd) == EINVAL)  // not initialised
        #expect(model.initTrace(fd, UInt(pageWords)) == 0)
        #expect(model.enable(fd) == EINVAL)  // not mapped
        #expect(model.enable(fd, 1) == EINVAL)  // state before kind
        let buffer = model.map(fd, bytes: pageBytes)!
        let cases: [(UInt, CInt)] = [
            (1, EOPNOTSUPP), (2, EINVAL), (3, EINVAL), (7, EINVAL), (255, EINVAL),
            (257, EOPNOTSUPP), (1 << 32 | 1, EOPNOTSUPP), (1 << 32 | 2, EINVAL),
        ]
        for (argument, expected) in cases {
            #expect(model.enable(fd, argument) == expected, "argument \(argument)")
            #expect(model.descriptorState(fd)?.mode == .initialized)
            #expect(model.descriptorState(fd)?.owner == nil)
        }
        #expect(EOPNOTSUPP == 95)
        #expect(model.enable(fd) == 0)
        #expect(model.descriptorState(fd)?.mode == .tracePC)
        #expect(model.descriptorState(fd)?.owner == model.tid)
        #expect(model.enable(fd) == EINVAL)  // twice
        #expect(model.enable(fd, 1) == EINVAL)  // state before kind, also while enabled
        #expect(model.runOnNewThread { model.enable(fd) } == EINVAL)
        #expect(model.disable(fd) == 0)
        _ = model.munmap(buffer, length: pageBytes)
    }

    @Test("ENABLE by pointer sees the address's low byte")
    func enableByPointer() {
        let model = Model()
        let (fd, _) = model.mapped()
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 256)
        defer { scratch.deallocate() }
        #expect(errnoOf(model.ioctl(fd, Request.enable, pointer: scratch + 1)) == EOPNOTSUPP)
        #expect(errnoOf(model.ioctl(fd, Request.enable, pointer: scratch + 2)) == EINVAL)
        #expect(errnoOf(model.ioctl(fd, Request.enable, pointer: scratch)) == 0)
        #expect(model.descriptorState(fd)?.mode == .tracePC)
        #expect(model.disable(fd) == 0)
    }

    @Test("DISABLE: argument, then owner; INIT with the buffer dropped and Task.kcov kept (Docs/kcov-gvisor.md#kcov_disable)")
    func disableRules() {
        let model = Model()
        let (fd, _) = model.mapped()
        #expect(model.disable(fd) == EINVAL)  // not enabled
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd, 1) == EINVAL)
        #expect(model.descriptorState(fd)?.mode == .tracePC)
        #expect(model.runOnNewThread { model.disable(fd) } == EINVAL)
        #expect(model.runOnNewThread { model.disable(fd, 1) } == EINVAL)
        #expect(model.descriptorState(fd)?.owner == model.tid)
        #expect(model.disable(fd) == 0)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized && state?.owner == nil && state?.hasBuffer == false)
        // The mapping keeps the old buffer alive.
        #expect(model.liveBufferCount == 1 && model.liveMappingCount == 1)
        #expect(model.threadState(model.tid)?.kcovDescriptor == fd)
        #expect(model.disable(fd) == EINVAL)
        #expect(model.enable(fd) == EINVAL)
        #expect(model.initTrace(fd, UInt(pageWords)) == EBUSY)
    }

    @Test("ENABLE keeps area[0], writes its own return, and wipes everyone's pending blocks")
    func enableClearsPending() {
        let model = Model()
        let (fd, words) = model.mapped()
        words.count = 5
        model.runOnNewThread { model.probeSyscall() }
        #expect(model.pendingBlockCount > 0)
        #expect(model.enable(fd) == 0)
        #expect(words.count == 5 + UInt64(enableWindow.count))
        #expect(words.slice(6..<(6 + enableWindow.count)) == enableWindow)
        #expect(model.pendingBlockCount == 0)
    }

    @Test("a failed ENABLE does not clear the pending blocks")
    func failedEnableKeepsPending() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        model.runOnNewThread { model.probeSyscall() }
        #expect(model.enable(fd) == EINVAL)
        // Still pending: the probe, plus this thread's own syscalls (nobody traces).
        #expect(Set(model.pendingBlocks).isSuperset(of: Model.probeBlocks))
    }
}

// MARK: mmap (Docs/kcov-gvisor.md#mmap)

@Suite("gVisor kcov model: mmap") struct GVisorKcovModelMmapTests {
    @Test("mmap only in INIT; the first allocates a zeroed buffer that later mappings share")
    func mmapInInitOnly() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.map(fd, bytes: 2 * pageBytes) == nil && errno == EINVAL)  // before INIT_TRACE
        #expect(model.initTrace(fd, UInt(2 * pageWords)) == 0)
        #expect(model.liveBufferCount == 0)
        let first = model.map(fd, bytes: 2 * pageBytes)!
        #expect(model.liveBufferCount == 1)
        #expect(model.descriptorState(fd)?.hasBuffer == true)
        #expect(Int(bitPattern: first) % hostPage == 0)
        let one = Words(first)
        #expect(one.slice(0..<(2 * pageWords)).allSatisfy { $0 == 0 })
        let second = model.map(fd, bytes: 2 * pageBytes)!
        #expect(second != first)
        let two = Words(second)
        one[700] = 0x1234
        #expect(two[700] == 0x1234)
        #expect(model.bufferContents(fd, words: 701)?.last == 0x1234)
        #expect(model.liveBufferCount == 1 && model.liveMappingCount == 2)
        #expect(model.enable(fd) == 0)
        #expect(model.map(fd, bytes: 2 * pageBytes) == nil && errno == EINVAL)
        #expect(model.liveMappingCount == 2)
        #expect(model.disable(fd) == 0)
        #expect(model.munmap(first, length: 2 * pageBytes) == 0)
        #expect(model.munmap(second, length: 2 * pageBytes) == 0)
        #expect(model.liveBufferCount == 0)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("length and offset are not checked: short, long and offset mappings all view the buffer")
    func mmapLengthAndOffset() {
        let model = Model()
        let fd = model.initialized(words: 2 * pageWords)
        let short = model.map(fd, bytes: 1)!
        let long = model.map(fd, bytes: 8 * pageBytes)!
        let window = model.map(fd, bytes: pageBytes, offset: pageBytes)!
        // Entirely past the end of the buffer: accepted (touching it would be SIGBUS).
        let beyond = model.map(fd, bytes: pageBytes, offset: 16 * pageBytes)!
        #expect(model.liveMappingCount == 4 && model.liveBufferCount == 1)
        // Only the bytes within the buffer are touched.
        Words(long)[pageWords + 3] = 0xabc
        #expect(Words(window)[3] == 0xabc)
        #expect(model.enable(fd) == 0)
        model.probeSyscall()
        let count = Words(short).count
        #expect(count == UInt64(enableWindow.count + probeWindow.count))
        #expect(Words(long).pcs() == enableWindow + probeWindow)
        #expect(model.disable(fd) == 0)
        // munmap wants one whole mapping.
        #expect(errnoOf(model.munmap(long, length: 2 * pageBytes)) == EINVAL)
        #expect(model.munmap(long, length: 8 * pageBytes) == 0)
        #expect(model.munmap(short, length: 1) == 0)
        #expect(model.munmap(window, length: pageBytes) == 0)
        #expect(model.munmap(beyond, length: pageBytes) == 0)
        #expect(errnoOf(model.munmap(beyond, length: pageBytes)) == EINVAL)
        let elsewhere = UnsafeMutableRawPointer.allocate(byteCount: hostPage, alignment: hostPage)
        defer { elsewhere.deallocate() }
        #expect(errnoOf(model.munmap(elsewhere, length: hostPage)) == EINVAL)
        #expect(errnoOf(model.munmap(elsewhere + 8, length: hostPage)) == EINVAL)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("generic checks come first, kcov's next, the memory manager's last (and those still allocate)")
    func mmapCheckOrder() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        // Map type, fd, readability: before kcov, so nothing is allocated.
        #expect(model.map(fd, bytes: pageBytes, flags: 0) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, flags: MAP_SHARED | MAP_PRIVATE) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, flags: MAP_SHARED | MAP_ANONYMOUS) == nil && errno == EINVAL)
        #expect(model.map(999, bytes: pageBytes) == nil && errno == EBADF)
        #expect(model.descriptorState(fd)?.hasBuffer == false)
        // Length 0 fails in the memory manager, after kcov allocated the buffer.
        #expect(model.map(fd, bytes: 0) == nil && errno == EINVAL)
        #expect(model.descriptorState(fd)?.hasBuffer == true)
        #expect(model.liveBufferCount == 1 && model.liveMappingCount == 0)
        #expect(model.map(fd, bytes: pageBytes, offset: 100) == nil && errno == EINVAL)
        let wrapping = Int(bitPattern: UInt.max - UInt(hostPage) + 1)
        #expect(model.map(fd, bytes: 2 * hostPage, offset: wrapping) == nil && errno == EOVERFLOW)
        // So ENABLE works with no mapping at all.
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd) == 0)
        #expect(model.liveBufferCount == 0)

        // Read-only fd: a writable shared mapping is EACCES, after the allocation.
        let readOnly = model.initialized(words: pageWords, flags: O_RDONLY)
        #expect(model.map(readOnly, bytes: pageBytes) == nil && errno == EACCES)
        #expect(model.descriptorState(readOnly)?.hasBuffer == true)
        #expect(model.map(readOnly, bytes: pageBytes, protection: PROT_READ) != nil)
        #expect(model.map(readOnly, bytes: pageBytes, flags: MAP_PRIVATE) != nil)
        #expect(model.enable(readOnly) == 0)  // ioctls need no write access
        #expect(model.disable(readOnly) == 0)
        // Write-only fd: not readable, refused before kcov; also before the state check.
        let writeOnly = model.initialized(words: pageWords, flags: O_WRONLY)
        #expect(model.map(writeOnly, bytes: pageBytes, protection: PROT_READ) == nil && errno == EACCES)
        #expect(model.descriptorState(writeOnly)?.hasBuffer == false)
        let uninitialised = model.openDevice(flags: O_WRONLY)
        #expect(model.map(uninitialised, bytes: pageBytes) == nil && errno == EACCES)
    }

    @Test("MAP_PRIVATE copies on write: the sentry's later writes stop showing")
    func privateMapping() {
        let model = Model()
        let (fd, shared) = model.mapped()
        let privateView = Words(model.map(fd, bytes: pageBytes, flags: MAP_PRIVATE)!)
        #expect(model.enable(fd) == 0)
        #expect(privateView.count == UInt64(enableWindow.count))
        privateView.count = 0  // the page is copied
        model.probeSyscall()
        #expect(shared.count == UInt64(enableWindow.count + probeWindow.count))
        #expect(privateView.count == 0)
        #expect(model.disable(fd) == 0)
    }
}

// MARK: Synthetic PCs (Docs/kcov-gvisor.md#synthetic-pcs)

@Suite("gVisor kcov model: synthetic PCs") struct GVisorKcovModelPCTests {
    @Test("current format: ~(block | func << 8 | pkg << 20), above 0xffffffff7fffffff below package 2048")
    func currentFormula() {
        #expect(Model.syntheticPC(packageIndex: 0, functionIndex: 0, blockIndex: 0) == .max)
        #expect(Model.syntheticPC(packageIndex: 1, functionIndex: 2, blockIndex: 3) == 0xffff_ffff_ffef_fdfc)
        #expect(Model.syntheticPC(packageIndex: 5, functionIndex: 40, blockIndex: 6) == ~UInt64(0x0050_2806))
        for packageIndex: UInt64 in [0, 1, 5, 1000, 2047] {
            #expect(Model.syntheticPC(packageIndex: packageIndex, functionIndex: 4095, blockIndex: 255) > 0xffff_ffff_7fff_ffff)
        }
        // Package 2048 is the first that leaves the range.
        #expect(Model.syntheticPC(packageIndex: 2048, functionIndex: 0, blockIndex: 0) == 0xffff_ffff_7fff_ffff)
        #expect(allPCs.allSatisfy { $0 > 0xffff_ffff_7fff_ffff })
    }

    @Test("decoding round-trips every in-range index, and overflowing fields collide as in gVisor")
    func decode() {
        for block in Model.allBlocks {
            #expect(Model.decodeSyntheticPC(block.syntheticPC) == block.indexes)
            #expect(Model.decodeLegacyPC(block.legacyPC) == block.legacy)
        }
        for packageIndex: UInt64 in [0, 7, 2047, 5000] {
            for functionIndex: UInt64 in [0, 1, 4095] {
                for blockIndex: UInt64 in [0, 17, 255] {
                    let indexes = Model.BlockIndexes(packageIndex: packageIndex, functionIndex: functionIndex, blockIndex: blockIndex)
                    #expect(Model.decodeSyntheticPC(Model.syntheticPC(indexes)) == indexes)
                }
            }
        }
        // Not masked: block 256 of function 0 is block 0 of function 1.
        let spilled = Model.syntheticPC(packageIndex: 3, functionIndex: 0, blockIndex: 256)
        #expect(spilled == Model.syntheticPC(packageIndex: 3, functionIndex: 1, blockIndex: 0))
        #expect(Model.decodeSyntheticPC(spilled) == Model.BlockIndexes(packageIndex: 3, functionIndex: 1, blockIndex: 0))
        #expect(Model.syntheticPC(packageIndex: 0, functionIndex: 4096, blockIndex: 0)
            == Model.syntheticPC(packageIndex: 1, functionIndex: 0, blockIndex: 0))
    }

    @Test("legacy format: (file << 16) + block, small numbers")
    func legacyFormula() {
        #expect(Model.legacyPC(fileIndex: 3, blockIndex: 31) == 0x3_001f)
        #expect(Model.legacyPC(fileIndex: 0, blockIndex: 0) == 0)
        #expect(Model.legacyPC(fileIndex: 1, blockIndex: 65536) == Model.legacyPC(fileIndex: 2, blockIndex: 0))
        #expect(Model.decodeLegacyPC(0x7_0009) == Model.LegacyBlockIndexes(fileIndex: 7, blockIndex: 9))
        #expect(Model.allBlocks.allSatisfy { $0.legacyPC < 1 << 32 })
    }

    @Test("the block catalogue: sizes, emission order, no collisions, two different orders")
    func catalogue() {
        #expect(Model.probeBlocks.count == 8)
        #expect(Model.syscallBlocks.count == 5)
        #expect(Model.ioctlEntryBlocks.count == 5)
        #expect(Model.ioctlExitBlocks.count == 4)
        for list in [Model.probeBlocks, Model.syscallBlocks, Model.ioctlEntryBlocks, Model.ioctlExitBlocks] {
            #expect(list.map(\.indexes) == list.map(\.indexes).sorted())
            #expect(Model.window(list) == list.map(\.syntheticPC))
        }
        #expect(allPCs.count == Model.allBlocks.count)
        #expect(Set(Model.allBlocks.map(\.legacyPC)).count == Model.allBlocks.count)
        // The probe and any other syscall share all but one block.
        #expect(Model.window(Model.probeBlocks, Model.syscallBlocks).count == 9)
        let legacy = Model.window(Model.probeBlocks, legacy: true)
        #expect(legacy == legacy.sorted())
        #expect(Set(legacy.map { Model.decodeLegacyPC($0) }) == Set(Model.probeBlocks.map(\.legacy)))
        #expect(legacy != Model.probeBlocks.map(\.legacyPC))  // the orders differ
    }
}

// MARK: Recording (Docs/kcov-gvisor.md#buffer-layout)

@Suite("gVisor kcov model: recording") struct GVisorKcovModelRecordingTests {
    @Test("the owner's own probe is in its buffer when the probe returns")
    func ownProbe() {
        let model = Model()
        let (_, words) = model.tracing()
        model.probeSyscall()
        #expect(words.pcs() == probeWindow)
        #expect(words.pcs().allSatisfy { $0 > 0xffff_ffff_7fff_ffff })
        #expect(model.pendingBlockCount == 0)
    }

    @Test("every window is written again: repeats across windows, a user reset is honoured")
    func windowsAndReset() {
        let model = Model()
        let (_, words) = model.tracing()
        model.probeSyscall()
        model.probeSyscall()
        _ = model.currentThreadID()
        #expect(words.pcs() == probeWindow + probeWindow + syscallWindow)
        words.count = 0
        model.probeSyscall()
        #expect(words.pcs() == probeWindow)
        words.count = 100
        model.probeSyscall()
        #expect(words.count == 100 + UInt64(probeWindow.count))
        #expect(words.slice(101..<109) == probeWindow)
    }

    @Test("the count saturates at size-1 and the blocks that did not fit are lost")
    func saturation() {
        let model = Model()
        let (_, words) = model.tracing()
        words.count = UInt64(pageWords - 4)
        model.probeSyscall()
        #expect(words.count == UInt64(pageWords - 1))
        #expect(words.slice((pageWords - 3)..<pageWords) == Array(probeWindow.prefix(3)))
        #expect(model.pendingBlockCount == 0)
        model.probeSyscall()
        #expect(words.count == UInt64(pageWords - 1))
        #expect(model.pendingBlockCount == 0)
        // A count past the end: nothing written, the count kept, the blocks consumed anyway.
        words.count = 600
        model.probeSyscall()
        #expect(words.count == 600)
        #expect(model.pendingBlockCount == 0)
    }

    @Test("a user count near 2^61 wraps the write offset to the start of the buffer [inferred]")
    func wrappedCount() {
        let model = Model()
        let (_, words) = model.tracing()
        words.count = (1 << 61) - 1
        model.probeSyscall()
        // 8 * (1 + count) wraps to 0: the PCs go to words 0…7, then the count is stored.
        #expect(words.count == (1 << 61) - 1 + UInt64(probeWindow.count))
        #expect(words.slice(1..<probeWindow.count) == Array(probeWindow.dropFirst()))
    }

    @Test("with legacyPCs the PCs are (file << 16) + block in file order")
    func legacyKnob() {
        let model = Model(legacyPCs: true)
        let (fd, words) = model.mapped()
        #expect(model.enable(fd) == 0)
        #expect(words.pcs() == Model.window(Model.ioctlExitBlocks, legacy: true))
        words.count = 0
        model.probeSyscall()
        #expect(words.pcs() == Model.window(Model.probeBlocks, legacy: true))
        #expect(words.pcs() != probeWindow)
        #expect(words.pcs().allSatisfy { $0 < 1 << 32 })
    }

    @Test("coverage is global: any thread's blocks go to whichever tracer returns first; ENABLE wipes them")
    func globalCoverage() {
        let model = Model()
        let (fdA, wordsA) = model.tracing()
        let worker = Worker()
        let (fdB, wordsB) = worker.run { model.tracing() }
        #expect(wordsB.count == 0)
        // A probe by this thread goes to this thread's buffer, not to the other tracer's.
        wordsA.count = 0
        model.probeSyscall()
        #expect(wordsA.pcs() == probeWindow)
        #expect(wordsB.count == 0)
        // And the other way round.
        worker.run { model.probeSyscall() }
        #expect(wordsB.pcs() == probeWindow)
        #expect(wordsA.pcs() == probeWindow)
        // A third, untraced thread's probe is stolen by the tracer that returns first.
        wordsA.count = 0
        wordsB.count = 0
        model.runOnNewThread { model.probeSyscall() }
        #expect(wordsA.count == 0 && wordsB.count == 0)
        _ = worker.run { model.currentThreadID() }
        #expect(wordsB.pcs() == Model.window(Model.probeBlocks, Model.syscallBlocks))
        _ = model.currentThreadID()
        #expect(wordsA.pcs() == syscallWindow)
        // Anyone's ENABLE wipes everyone's pending blocks.
        wordsA.count = 0
        model.runOnNewThread { model.probeSyscall() }
        #expect(model.pendingBlockCount == 8)
        let third = model.runOnNewThread { () -> [UInt64] in
            let (fd, words) = model.mapped()
            guard model.enable(fd) == 0 else { return [] }
            let written = words.pcs()
            _ = model.disable(fd)
            return written
        }
        #expect(third == enableWindow)  // not the probe
        _ = model.currentThreadID()
        // This thread gets only its own syscall (and the third thread's unreturned teardown).
        #expect(!wordsA.pcs().contains(Model.probeBlocks[0].syntheticPC))
        #expect(worker.run { model.disable(fdB) } == 0)
        worker.exit(model)
        #expect(model.disable(fdA) == 0)
    }

    @Test("several threads tracing at once each get only whole, sorted blocks of the catalogue")
    func concurrentTracers() {
        let model = Model()
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let tid = model.tid
            let (fd, words) = model.tracing(words: 4 * pageWords)
            for _ in 0..<50 { model.probeSyscall() }
            var ok = words.pcs().allSatisfy { allPCs.contains($0) }
            ok = ok && words.count <= UInt64(4 * pageWords - 1)
            ok = ok && model.disable(fd) == 0
            ok = ok && model.munmap(words.raw, length: 4 * pageBytes) == 0
            ok = ok && model.close(fd) == 0
            model.threadExited(tid)
            if !ok { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(model.isClean)
    }
}

// MARK: Lifecycle (Docs/kcov-gvisor.md#threads-and-lifecycle)

@Suite("gVisor kcov model: lifecycle") struct GVisorKcovModelLifecycleTests {
    @Test("thread exit: the fd goes to INIT with its mapping; another thread enables without a new mmap")
    func threadExit() {
        let model = Model()
        let (fd, words) = model.mapped()
        let childTid = model.runOnNewThread { () -> CInt in
            _ = model.enable(fd)
            model.probeSyscall()
            return model.tid
        }
        #expect(childTid != model.tid)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized && state?.owner == nil && state?.hasBuffer == true)
        #expect(model.threadState(childTid) == nil)
        #expect(words.pcs() == enableWindow + probeWindow)
        #expect(model.enable(fd) == 0)
        // Exit of a thread that never enabled this fd changes nothing.
        model.threadExited(childTid)
        #expect(model.descriptorState(fd)?.owner == model.tid)
        #expect(model.disable(fd) == 0)
    }

    @Test("a former owner's exit resets the fd although another thread owns it now (Docs/kcov-gvisor.md#a-former-owners-exit) [inferred]")
    func formerOwnerExit() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        _ = model.map(fd, bytes: pageBytes)!
        let former = Worker()
        #expect(former.run { model.enable(fd) } == 0)
        #expect(former.run { model.disable(fd) } == 0)
        #expect(former.run { model.threadState(model.tid)?.kcovDescriptor } == fd)
        // This thread re-maps (DISABLE dropped the buffer) and enables.
        let words = Words(model.map(fd, bytes: pageBytes)!)
        #expect(model.enable(fd) == 0)
        words.count = 0
        model.probeSyscall()
        #expect(words.pcs() == probeWindow)
        former.exit(model)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized && state?.owner == nil && state?.hasBuffer == true)
        // Collection has silently stopped; DISABLE now fails; the fd can be enabled again.
        model.probeSyscall()
        #expect(words.pcs() == probeWindow)
        #expect(model.disable(fd) == EINVAL)
        #expect(model.threadState(model.tid)?.taskWorkCount == 0)
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd) == 0)
    }

    @Test("spawn: the parent resets the count; the child enables, execs, probes; exit_group is never written")
    func spawnRuns() {
        let model = Model()
        let (fd, words) = model.mapped()
        words.count = 77
        let outcome = spawn(model, "/bin/sh", fd: fd, counter: words.raw)
        guard case .running(let pid) = outcome else {
            Issue.record("unexpected \(outcome)")
            return
        }
        #expect(model.waitForExit(pid) == .exited(0))
        #expect(words.pcs() == enableWindow + syscallWindow + probeWindow)
        let state = model.descriptorState(fd)
        #expect(state?.mode == .initialized && state?.owner == nil && state?.hasBuffer == true)
        // exit_group ran its blocks but never returned; the parent's wait added the same ones.
        #expect(model.pendingBlocks == Model.syscallBlocks)
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd) == 0)
    }

    @Test("a fork child does not inherit collection: the parent's buffer never gets the child's blocks")
    func spawnDoesNotInherit() {
        let model = Model()
        let (parentFD, parentWords) = model.tracing()
        let (childFD, childWords) = model.mapped()
        // The parent's own fd is enabled: a child cannot enable it.
        #expect(spawn(model, "/bin/sh", fd: parentFD, counter: childWords.raw) == .enableFailed(errno: EINVAL))
        _ = model.currentThreadID()  // collect what the failed child left pending
        parentWords.count = 0
        guard case .running(let pid) = spawn(model, "/bin/sh", fd: childFD, counter: childWords.raw) else {
            Issue.record("spawn failed")
            return
        }
        #expect(childWords.pcs() == enableWindow + syscallWindow + probeWindow)
        // The parent wrote its fork return; the child's ENABLE then wiped everything pending.
        #expect(parentWords.pcs() == syscallWindow)
        _ = model.waitForExit(pid)
        #expect(parentWords.pcs() == syscallWindow + syscallWindow)
        #expect(!parentWords.pcs().contains(Model.probeBlocks[0].syntheticPC))
        #expect(model.disable(parentFD) == 0)
    }

    @Test("spawn failures: ENABLE before exec (no buffer, CMP, bad kind); exec ENOENT and EACCES")
    func spawnFailures() throws {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(spawn(model, "/nonexistent/program", fd: fd, counter: words.raw) == .execFailed(errno: ENOENT))
        // The child wrote its ENABLE, the failed execve and the report; its _exit never returned.
        #expect(words.pcs() == enableWindow + syscallWindow + syscallWindow)
        #expect(spawn(model, "/tmp", fd: fd, counter: words.raw) == .execFailed(errno: EACCES))
        var template = Array("/tmp/kcov-gvisor-model-XXXXXX".utf8CString)
        let file = mkstemp(&template)
        try #require(file >= 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(path) }
        Glibc.close(file)
        chmod(path, 0o644)
        #expect(spawn(model, path, fd: fd, counter: words.raw) == .execFailed(errno: EACCES))
        #expect(model.descriptorState(fd)?.mode == .initialized)
        #expect(spawn(model, "/bin/sh", fd: fd, counter: words.raw, mode: 1) == .enableFailed(errno: EOPNOTSUPP))
        #expect(spawn(model, "/bin/sh", fd: fd, counter: words.raw, mode: 5) == .enableFailed(errno: EINVAL))
        // 256 is PC mode.
        guard case .running(let pid) = spawn(model, "/bin/sh", fd: fd, counter: words.raw, mode: 256) else {
            Issue.record("mode 256 did not run")
            return
        }
        _ = model.waitForExit(pid)
        let uninitialised = model.openDevice()
        #expect(spawn(model, "/nonexistent/program", fd: uninitialised, counter: words.raw) == .enableFailed(errno: EINVAL))
        // Initialised but never mapped in this Kcov: EINVAL.
        let unmapped = model.initialized(words: pageWords)
        #expect(spawn(model, "/bin/sh", fd: unmapped, counter: words.raw) == .enableFailed(errno: EINVAL))
    }

    @Test("leak counters return to zero after every path")
    func leakCounters() {
        let model = Model()
        let (fd, words) = model.mapped()
        let second = model.map(fd, bytes: pageBytes)!
        #expect(model.enable(fd) == 0)
        model.probeSyscall()
        #expect(model.disable(fd) == 0)
        let renewed = model.map(fd, bytes: pageBytes)!
        #expect(model.liveBufferCount == 2 && model.liveMappingCount == 3)
        #expect(model.enable(fd) == 0)
        #expect(model.close(fd) == 0)
        #expect(model.openDescriptorCount == 0 && model.liveBufferCount == 2)
        #expect(model.munmap(words.raw, length: pageBytes) == 0)
        #expect(model.liveBufferCount == 2)
        #expect(model.munmap(second, length: pageBytes) == 0)
        #expect(model.liveBufferCount == 1)
        #expect(model.munmap(renewed, length: pageBytes) == 0)
        #expect(model.isClean)
        // A buffer allocated by a failed mmap goes with the close.
        let failed = model.initialized(words: pageWords)
        #expect(model.map(failed, bytes: 0) == nil)
        #expect(model.liveBufferCount == 1)
        #expect(model.close(failed) == 0)
        #expect(model.isClean)
    }

    @Test("the model's end frees every task and Kcov, though a task and the Kcov it enabled refer to each other")
    func objectsAreFreed() {
        var model: Model? = Model()
        let objects = model!.liveObjects
        do {
            let model = model!
            // This thread enables one Kcov and keeps it enabled (Task.kcov and owningTask).
            let (fd, _) = model.tracing()
            model.probeSyscall()
            // A second thread enables another and disables it (its Task.kcov stays until it exits).
            let other = Worker()
            let (second, _) = model.mapped()
            #expect(other.run { model.enable(second) } == 0)
            #expect(other.run { model.disable(second) } == 0)
            // A third enables a third Kcov and exits, its task gone with it.
            let (third, _) = model.mapped()
            _ = model.runOnNewThread { model.enable(third) }
            #expect(model.descriptorState(fd)?.owner == model.tid)
            // Three Kcov instances, and this thread's and the second thread's tasks at least.
            #expect(objects.live >= 5, "the count sees the model's objects")
            other.exit(model)
        }
        model = nil
        #expect(objects.live == 0, "\(objects.live) tasks and Kcov instances outlived the model")
    }
}

private func spawn(_ model: Model, _ path: String, fd: CInt, counter: UnsafeMutableRawPointer, mode: UInt = 0) -> SpawnOutcome {
    model.spawnEnabled(
        Command(path: path, arguments: [path], environment: []), fd: fd,
        enable: EnableCall(request: Request.enable, argument: mode, byPointer: false),
        buffer: counter, bufferBytes: pageBytes)
}

// MARK: rows of Docs/kcov-gvisor.md#differences-from-linux that separate gVisor from Linux

@Suite("gVisor kcov model: rows of Docs/kcov-gvisor.md#differences-from-linux") struct GVisorKcovModelPartDTests {
    @Test("D7: INIT_TRACE with a size that is not a whole page is EINVAL (the fingerprint: INIT_TRACE(2))")
    func d7() {
        let model = Model()
        for words: UInt in [2, 64, 100, 511, 513, 1000] {
            let fd = model.openDevice()
            #expect(model.initTrace(fd, words) == EINVAL, "\(words)")
            #expect(model.descriptorState(fd)?.mode == .disabled)
            _ = model.close(fd)
        }
        for words: UInt in [512, 1024, 524_288] {
            let fd = model.openDevice()
            #expect(model.initTrace(fd, words) == 0, "\(words)")
            _ = model.close(fd)
        }
    }

    @Test("D12: any mmap length is accepted")
    func d12() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        for bytes in [1, pageBytes - 1, pageBytes + 1, 2 * pageBytes, 100 * pageBytes] {
            let address = model.map(fd, bytes: bytes)
            #expect(address != nil, "\(bytes) bytes")
            if let address {
                #expect(Words(address)[pageWords - 1] == 0)  // the buffer's last word
                #expect(model.munmap(address, length: bytes) == 0)
            }
        }
    }

    @Test("D14: mmap after ENABLE is EINVAL")
    func d14() {
        let model = Model()
        let (fd, _) = model.mapped()
        #expect(model.enable(fd) == 0)
        #expect(model.map(fd, bytes: pageBytes) == nil && errno == EINVAL)
        #expect(model.runOnNewThread { model.map(fd, bytes: pageBytes) == nil && errno == EINVAL })
        #expect(model.disable(fd) == 0)
        #expect(model.map(fd, bytes: pageBytes) != nil)
    }

    @Test("D16: mmap after DISABLE gives a new, zeroed buffer; the old mapping is disconnected")
    func d16() {
        let model = Model()
        let (fd, old) = model.tracing()
        model.probeSyscall()
        #expect(model.disable(fd) == 0)
        let recorded = old.pcs()
        #expect(recorded == probeWindow)
        let renewed = Words(model.map(fd, bytes: pageBytes)!)
        #expect(renewed.raw != old.raw)
        #expect(renewed.slice(0..<pageWords).allSatisfy { $0 == 0 })
        #expect(model.liveBufferCount == 2)
        #expect(model.enable(fd) == 0)
        renewed.count = 0
        model.probeSyscall()
        #expect(renewed.pcs() == probeWindow)
        #expect(old.pcs() == recorded)  // the old memory is alive but no longer written
        old[5] = 42
        #expect(renewed[5] != 42)
        #expect(model.disable(fd) == 0)
    }

    @Test("D20: ENABLE without mmap is EINVAL; the buffer, not a mapping, is what counts")
    func d20() {
        let model = Model()
        let fd = model.initialized(words: pageWords)
        #expect(model.enable(fd) == EINVAL)
        #expect(model.descriptorState(fd)?.mode == .initialized)
        let address = model.map(fd, bytes: pageBytes)!
        #expect(model.munmap(address, length: pageBytes) == 0)
        // The Kcov still holds the buffer.
        #expect(model.liveBufferCount == 1 && model.liveMappingCount == 0)
        #expect(model.enable(fd) == 0)
        model.probeSyscall()
        #expect(model.bufferContents(fd)?[0] == UInt64(enableWindow.count + probeWindow.count))
        #expect(model.disable(fd) == 0)
        #expect(model.liveBufferCount == 0)
    }

    @Test("D23: a thread may enable two fds; it keeps only the last, the first is left with a dead owner")
    func d23() {
        let model = Model()
        let (first, firstWords) = model.mapped()
        let (second, secondWords) = model.mapped()
        let run = model.runOnNewThread { () -> [CInt] in
            var results = [model.enable(first)]
            firstWords.count = 0
            results.append(model.enable(second))  // no EBUSY
            results.append(model.threadState(model.tid)?.kcovDescriptor ?? -1)
            results.append(CInt(model.threadState(model.tid)?.taskWorkCount ?? -1))
            // Task work runs in registration order: the first fd gets everything.
            model.probeSyscall()
            return results
        }
        #expect(run == [0, 0, second, 2])
        #expect(firstWords.pcs() == enableWindow + probeWindow)
        #expect(secondWords.count == 0)
        // The exit reset only the last one.
        #expect(model.descriptorState(second)?.mode == .initialized)
        let stuck = model.descriptorState(first)
        #expect(stuck?.mode == .tracePC && stuck?.ownerExited == true)
        #expect(model.enable(first) == EINVAL)
        #expect(model.disable(first) == EINVAL)
        #expect(model.runOnNewThread { model.disable(first) } == EINVAL)
        #expect(model.enable(second) == 0)
        #expect(model.disable(second) == 0)
        #expect(model.close(first) == 0)
    }

    @Test("D24: ENABLE(KCOV_TRACE_CMP) is EOPNOTSUPP (95)")
    func d24() {
        let model = Model()
        let (fd, _) = model.mapped()
        #expect(model.enable(fd, 1) == 95)
        #expect(model.descriptorState(fd)?.mode == .initialized)
        #expect(model.enable(fd, 0) == 0)
        #expect(model.disable(fd) == 0)
    }

    @Test("D25: the ENABLE argument is truncated to 8 bits: 256 is PC mode")
    func d25() {
        let model = Model()
        let (fd, _) = model.mapped()
        #expect(model.enable(fd, 7) == EINVAL)
        #expect(model.enable(fd, 256) == 0)
        #expect(model.descriptorState(fd)?.mode == .tracePC)
        #expect(model.disable(fd) == 0)
        #expect(model.map(fd, bytes: pageBytes) != nil)
        #expect(model.enable(fd, 1 << 40) == 0)
        #expect(model.disable(fd) == 0)
    }

    @Test("D30: after DISABLE the buffer is dropped; re-ENABLE needs a new mmap, then any thread may")
    func d30() {
        let model = Model()
        let (fd, _) = model.mapped()
        #expect(model.enable(fd) == 0)
        #expect(model.disable(fd) == 0)
        #expect(model.descriptorState(fd)?.hasBuffer == false)
        #expect(model.enable(fd) == EINVAL)
        #expect(model.runOnNewThread { model.enable(fd) } == EINVAL)
        #expect(model.initTrace(fd, UInt(pageWords)) == EBUSY)
        #expect(model.map(fd, bytes: pageBytes) != nil)
        #expect(model.runOnNewThread { model.enable(fd) } == 0)
    }

    @Test("D33: KCOV_REMOTE_ENABLE is ENOTTY (the second fingerprint: even on a fresh fd)")
    func d33() {
        let model = Model()
        var argument = [UInt64](repeating: 0, count: 3)
        let fresh = model.openDevice()
        #expect(argument.withUnsafeMutableBytes { errnoOf(model.ioctl(fresh, Request.remoteEnable, pointer: $0.baseAddress!)) } == ENOTTY)
        let (fd, _) = model.mapped()
        argument[1] = 1
        #expect(argument.withUnsafeMutableBytes { errnoOf(model.ioctl(fd, Request.remoteEnable, pointer: $0.baseAddress!)) } == ENOTTY)
        #expect(model.descriptorState(fd)?.mode == .initialized)
    }

    @Test("D37: a window is a deduplicated set in (package, function, block) order; windows repeat")
    func d37() {
        let model = Model()
        let (_, words) = model.tracing()
        model.runOnNewThread {
            for _ in 0..<3 { model.probeSyscall() }
            _ = model.currentThreadID()
        }
        _ = model.currentThreadID()
        let window = words.pcs()
        #expect(window == Model.window(Model.probeBlocks, Model.syscallBlocks))
        #expect(window.count == 9 && Set(window).count == 9)
        let decoded = window.map { Model.decodeSyntheticPC($0) }
        #expect(decoded == decoded.sorted())
        model.probeSyscall()
        #expect(words.pcs() == window + probeWindow)
    }

    @Test("D38: written only when the owning thread returns to user space")
    func d38() {
        let model = Model()
        let owner = Worker()
        let (fd, words) = owner.run { model.tracing() }
        // The owner is in user space; this thread's syscalls never reach its buffer.
        model.probeSyscall()
        #expect(words.count == 0)
        #expect(model.pendingBlocks == Model.probeBlocks)
        model.runOnNewThread { model.probeSyscall() }
        #expect(words.count == 0)
        // The owner's next syscall returns: everything pending, once.
        _ = owner.run { model.currentThreadID() }
        #expect(words.pcs() == Model.window(Model.probeBlocks, Model.syscallBlocks))
        #expect(model.pendingBlockCount == 0)
        #expect(owner.run { model.disable(fd) } == 0)
        owner.exit(model)
    }

    @Test("D46: close while enabled stops collection at once")
    func d46() {
        let model = Model()
        let result = model.runOnNewThread { () -> [String] in
            var problems: [String] = []
            let (fd, words) = model.tracing()
            model.probeSyscall()
            if words.pcs() != probeWindow { problems.append("before close") }
            if model.close(fd) != 0 { problems.append("close") }
            model.probeSyscall()
            if words.pcs() != probeWindow { problems.append("after close: \(words.pcs())") }
            if model.threadState(model.tid)?.taskWorkCount != 0 { problems.append("task work") }
            if model.liveBufferCount != 1 { problems.append("mapping should hold the buffer") }
            // Nothing keeps this thread busy: it can trace another fd.
            let (other, otherWords) = model.tracing()
            model.probeSyscall()
            if otherWords.pcs() != probeWindow { problems.append("second fd") }
            _ = model.close(other)
            _ = model.munmap(otherWords.raw, length: pageBytes)
            _ = model.munmap(words.raw, length: pageBytes)
            return problems
        }
        #expect(result == [])
        #expect(model.isClean)
    }
}
