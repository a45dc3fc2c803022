import CoverageAPI
import Glibc
import KernelSeam
import ReferenceModels
import Synchronization
import Testing

// Citations are anchors in Docs/kcov-netbsd.md.

// MARK: Helpers

private typealias Model = NetBSDKcovModel
private typealias Request = NetBSDKcovModel.Request
private typealias Comparison = NetBSDKcovModel.Comparison

private let device = "/dev/kcov"
private let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
/// PAGE_SIZE / KCOV_ENTRY_SIZE: the size NetBSD's own tests use.
private let pageEntries = pageBytes / 8
private let vhci = Model.RemoteTarget.vhci(bus: 0, port: 1)



/// A flag one thread raises and another waits for (spinning in user space, no model syscall).
private final class Signal: Sendable {
    private let raised = Atomic<Int>(0)
    func raise(_ value: Int = 1) { raised.store(value, ordering: .releasing) }
    func wait() -> Int {
        while raised.load(ordering: .acquiring) == 0 { sched_yield() }
        return raised.load(ordering: .acquiring)
    }
}

/// All threads wait until `count` have arrived, so they really run concurrently.
private final class Barrier: Sendable {
    private let arrived = Atomic<Int>(0)
    private let count: Int
    init(_ count: Int) { self.count = count }
    func arriveAndWait() {
        arrived.add(1, ordering: .acquiringAndReleasing)
        while arrived.load(ordering: .acquiring) < count { sched_yield() }
    }
}

extension NetBSDKcovModel {
    fileprivate func openDevice() -> CInt {
        let fd = open(device, flags: O_RDWR)
        precondition(fd >= 2000, "open failed: \(errno)")
        return fd
    }

    /// KCOV_IOC_SETBUFSIZE with a `uint64_t *`.
    fileprivate func setBufferSize(_ fd: CInt, _ entries: UInt64) -> CInt {
        var value = entries
        return withUnsafeMutableBytes(of: &value) { errnoOf(ioctl(fd, Request.setBufferSize, pointer: $0.baseAddress!)) }
    }

    /// KCOV_IOC_ENABLE with an `int *`.
    fileprivate func enable(_ fd: CInt, raw mode: Int32) -> CInt {
        var value = mode
        return withUnsafeMutableBytes(of: &value) { errnoOf(ioctl(fd, Request.enable, pointer: $0.baseAddress!)) }
    }

    fileprivate func enable(_ fd: CInt, _ mode: Mode) -> CInt { enable(fd, raw: mode.rawValue) }

    /// KCOV_IOC_DISABLE (no argument).
    fileprivate func disable(_ fd: CInt) -> CInt { errnoOf(ioctl(fd, Request.disable, value: 0)) }

    /// KCOV_IOC_REMOTE_ATTACH with a `struct kcov_ioc_remote_attach *`.
    fileprivate func attach(_ fd: CInt, _ target: RemoteTarget) -> CInt {
        var words = [target.subsystem, target.id]
        return words.withUnsafeMutableBytes { errnoOf(ioctl(fd, Request.remoteAttach, pointer: $0.baseAddress!)) }
    }

    fileprivate func detach(_ fd: CInt) -> CInt { errnoOf(ioctl(fd, Request.remoteDetach, value: 0)) }


    /// An open fd with a buffer of `entries` entries.
    fileprivate func sized(entries: Int = pageEntries) -> CInt {
        let fd = openDevice()
        precondition(setBufferSize(fd, UInt64(entries)) == 0)
        return fd
    }

    /// An open fd with a mapped buffer of `entries` entries.
    fileprivate func mapped(entries: Int = pageEntries) -> (fd: CInt, words: Words) {
        let fd = sized(entries: entries)
        return (fd, Words(map(fd, bytes: entries * 8)!))
    }

    /// munmap + close of a `mapped` pair.
    fileprivate func release(_ fd: CInt, _ words: Words, entries: Int = pageEntries) -> Bool {
        munmap(words.raw, length: entries * 8) == 0 && close(fd) == 0
    }

    /// Nothing left open, mapped, allocated or waiting for an LWP.
    var isClean: Bool {
        openDescriptorCount == 0 && liveMappingCount == 0 && liveBufferCount == 0 && liveKDCount == 0
    }
}

private let tailPCs = Model.ioctlExitPath.pcs
private let headPCs = Model.ioctlEntryPath.pcs

// MARK: ABI (Docs/kcov-netbsd.md#ioctl-encoding, Docs/kcov-netbsd.md#ioctls)

@Suite("NetBSD kcov model: ABI") struct NetBSDKcovModelABITests {
    @Test("request numbers are NetBSD's _IOW/_IO encodings, zero-extended")
    func requestNumbers() {
        #expect(Model.ioctlRequest(Model.iocIn, "K", 1, length: MemoryLayout<UInt64>.size) == 0x8008_4b01)
        #expect(Model.ioctlRequest(Model.iocIn, "K", 2, length: MemoryLayout<CInt>.size) == 0x8004_4b02)
        #expect(Model.ioctlRequest(Model.iocVoid, "K", 3, length: 0) == 0x2000_4b03)
        #expect(Model.ioctlRequest(Model.iocIn, "K", 10, length: 2 * MemoryLayout<UInt64>.size) == 0x8010_4b0a)
        #expect(Model.ioctlRequest(Model.iocVoid, "K", 11, length: 0) == 0x2000_4b0b)
        #expect(Request.setBufferSize == 0x8008_4b01)
        #expect(Request.enable == 0x8004_4b02)
        #expect(Request.disable == 0x2000_4b03)
        #expect(Request.remoteAttach == 0x8010_4b0a)
        #expect(Request.remoteDetach == 0x2000_4b0b)
        #expect(Request.setBufferSize >> 32 == 0)
    }

    @Test("modes, sizes and the vHCI id")
    func constants() {
        #expect(Model.Mode.none.rawValue == 0 && Model.Mode.tracePC.rawValue == 1 && Model.Mode.traceCMP.rawValue == 2)
        #expect(Model.maxEntries == 262_144)
        #expect(Model.entrySize == 8)
        #expect(Model.maxBufferBytes == 2 << 20)
        #expect(Model.RemoteTarget.vhci(bus: 3, port: 5) == Model.RemoteTarget(subsystem: 0, id: 3 << 32 | 5))
        #expect(Model.RemoteTarget.vhci(bus: 0xffff_ffff, port: 0xffff_ffff).id == .max)
    }

    @Test("the probe path is nine NetBSD-kernel-looking PCs with a repeat; CMP types decode")
    func probePath() {
        #expect(Model.probePCs.count == 9)
        #expect(Set(Model.probePCs).count < Model.probePCs.count)
        #expect(Model.probePCs.allSatisfy { $0 >> 24 == 0xff_ffff_ff80 })
        #expect(Model.probeComparisons.count == 5)
        #expect(Model.probeComparisons.allSatisfy { $0.type >> 1 <= 3 && $0.pc >> 24 == 0xff_ffff_ff80 })
        #expect(Comparison.type(bytes: 1, constant: false) == 0)
        #expect(Comparison.type(bytes: 2, constant: false) == 2)
        #expect(Comparison.type(bytes: 4, constant: true) == 5)
        #expect(Comparison.type(bytes: 8, constant: true) == 7)
        // The switch: one record per case, CONST set, case first, value second, one PC.
        let switchRecords = Array(Model.probeComparisons.suffix(2))
        #expect(switchRecords.allSatisfy { $0.type & Comparison.constantFlag != 0 && $0.second == 9 })
        #expect(switchRecords.map(\.first) == [0xffff_fffd, 0xffff_fffe])
        #expect(switchRecords[0].pc == switchRecords[1].pc)
    }
}

// MARK: Device, open, dup (Docs/kcov-netbsd.md#device-and-open)

@Suite("NetBSD kcov model: device") struct NetBSDKcovModelDeviceTests {
    @Test("each open is its own descriptor with a high fd; unknown fds are EBADF")
    func openAndClose() {
        let model = Model()
        let first = model.openDevice()
        let second = model.openDevice()
        #expect(first >= 2000 && second >= 2000 && first != second)
        #expect(model.openDescriptorCount == 2 && model.liveKDCount == 2)
        #expect(model.setBufferSize(first, UInt64(pageEntries)) == 0)
        #expect(model.descriptorState(first)?.entries == pageEntries)
        #expect(model.descriptorState(second)?.entries == 0)
        #expect(errnoOf(model.close(first)) == 0)
        #expect(errnoOf(model.close(first)) == EBADF)
        #expect(errnoOf(model.close(3)) == EBADF)
        #expect(errnoOf(model.ioctl(3, Request.disable, value: 0)) == EBADF)
        #expect(model.map(3, bytes: pageBytes) == nil && errno == EBADF)
        #expect(model.openDevice() == first)  // lowest free number
        #expect(model.close(first) == 0 && model.close(second) == 0)
        #expect(model.isClean)
    }

    @Test("open fails with ENOENT, EACCES, ENXIO or EMFILE as the knobs say, in that order")
    func openFailures() {
        #expect(errnoOf(Model().open("/sys/kernel/debug/kcov", flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(deviceExists: false).open(device, flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(accessAllowed: false).open(device, flags: O_RDWR)) == EACCES)
        #expect(errnoOf(Model(driverPresent: false).open(device, flags: O_RDWR)) == ENXIO)
        #expect(errnoOf(Model(deviceExists: false, accessAllowed: false).open(device, flags: O_RDWR)) == ENOENT)
        #expect(errnoOf(Model(accessAllowed: false, driverPresent: false).open(device, flags: O_RDWR)) == EACCES)
        let small = Model(descriptorLimit: 2)
        let fds = [small.openDevice(), small.openDevice()]
        #expect(errnoOf(small.open(device, flags: O_RDWR)) == EMFILE)
        #expect(errnoOf(small.dup(fds[0])) == EMFILE)
        #expect(small.liveKDCount == 2)
        let custom = Model(devicePath: "/dev/kcov1")
        #expect(errnoOf(custom.open(device, flags: O_RDWR)) == ENOENT)
        #expect(custom.open("/dev/kcov1", flags: O_RDONLY) >= 2000)
    }

    @Test("errno is left alone on success and set on failure")
    func errnoConvention() {
        let model = Model()
        errno = EAGAIN
        let fd = model.open(device, flags: O_RDWR)
        #expect(fd >= 2000 && errno == EAGAIN)
        var entries = UInt64(pageEntries)
        #expect(model.ioctl(fd, Request.setBufferSize, pointer: &entries) == 0 && errno == EAGAIN)
        #expect(model.map(fd, bytes: pageBytes) != nil && errno == EAGAIN)
        #expect(model.ioctl(fd, Request.setBufferSize, pointer: &entries) == -1 && errno == EEXIST)
        model.probeSyscall()
        #expect(errno == EBADF)  // read(-1, …) fails, as the real probe does
        errno = 0
        #expect(model.readTextFile("/proc/mounts") == nil && errno == ENOENT)
    }

    @Test("dup and dup2 share the file and its descriptor; the last close runs kcov's close")
    func dupSharesTheDescriptor() {
        let model = Model()
        let fd = model.openDevice()
        let copy = model.dup(fd)
        #expect(copy > fd)
        let target: CInt = 2500
        #expect(model.dup2(fd, target) == target)
        #expect(model.dup2(fd, fd) == fd)
        #expect(model.descriptorState(fd)?.descriptors == 3)
        #expect(model.setBufferSize(copy, UInt64(pageEntries)) == 0)
        #expect(model.setBufferSize(target, UInt64(pageEntries)) == EEXIST)
        #expect(model.enable(target, .tracePC) == 0)
        #expect(model.descriptorState(fd)?.enabled == true)
        #expect(model.disable(copy) == 0)
        // Out of the model's fd table, or an unknown source: EBADF.
        #expect(errnoOf(model.dup2(fd, 5)) == EBADF)
        #expect(errnoOf(model.dup2(fd, -1)) == EBADF)
        #expect(errnoOf(model.dup2(2999, 2998)) == EBADF)
        // dup2 onto an open kcov fd closes that file first.
        let other = model.openDevice()
        #expect(model.liveKDCount == 2)
        #expect(model.dup2(fd, other) == other)
        #expect(model.liveKDCount == 1)
        #expect(model.close(fd) == 0 && model.close(copy) == 0 && model.close(target) == 0)
        #expect(model.liveKDCount == 1 && model.liveBufferCount == 1)
        #expect(model.close(other) == 0)
        #expect(model.isClean)
    }
}

// MARK: ioctls (Docs/kcov-netbsd.md#ioctls)

@Suite("NetBSD kcov model: ioctls") struct NetBSDKcovModelIoctlTests {
    @Test("SETBUFSIZE: enabled, then size, then existing buffer")
    func setBufferSizeOrder() {
        let model = Model()
        let fd = model.openDevice()
        for bad: UInt64 in [0, 1, 262_145, 1 << 32, .max] {
            #expect(model.setBufferSize(fd, bad) == EINVAL, "size \(bad)")
        }
        #expect(model.liveBufferCount == 0)
        #expect(model.setBufferSize(fd, 3) == 0)
        #expect(model.descriptorState(fd)?.entries == 3)
        #expect(model.descriptorState(fd)?.bufferBytes == pageBytes)  // roundup(3 * 8, PAGE_SIZE)
        // A bad size on a sized fd is EINVAL (size before buffer); a good one EEXIST.
        #expect(model.setBufferSize(fd, 1) == EINVAL)
        #expect(model.setBufferSize(fd, 2) == EEXIST)
        #expect(model.descriptorState(fd)?.entries == 3)
        // Enabled: EBUSY before the size check.
        #expect(model.enable(fd, .none) == 0)
        #expect(model.setBufferSize(fd, 0) == EBUSY)
        #expect(model.setBufferSize(fd, 2) == EBUSY)
        #expect(model.disable(fd) == 0)
        let largest = model.openDevice()
        #expect(model.setBufferSize(largest, 262_144) == 0)
        #expect(model.descriptorState(largest)?.bufferBytes == 2 << 20)
        #expect(model.liveBufferCount == 2)
        #expect(model.close(largest) == 0 && model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("ENABLE (1.17): mode, then enabled, then the LWP's binding, then the buffer")
    func enableOrder() {
        let model = Model()
        let fd = model.openDevice()
        for bad: Int32 in [3, -1, 0x100, .max] {
            #expect(model.enable(fd, raw: bad) == EINVAL, "mode \(bad)")  // even without a buffer
        }
        #expect(model.enable(fd, .tracePC) == ENOBUFS)
        #expect(model.setBufferSize(fd, UInt64(pageEntries)) == 0)
        #expect(model.enable(fd, .tracePC) == 0)
        let state = model.descriptorState(fd)
        #expect(state?.enabled == true && state?.mode == .tracePC && state?.owner == model.tid)
        #expect(model.threadState(model.tid) == .init(descriptor: fd, enabled: true, mode: .tracePC))
        #expect(model.enable(fd, raw: 7) == EINVAL)  // mode before enabled
        #expect(model.enable(fd, .traceCMP) == EBUSY)
        #expect(model.runOnNewThread { model.enable(fd, .tracePC) } == EBUSY)
        // A second fd on this LWP: EBUSY, even without a buffer (binding before buffer).
        let second = model.openDevice()
        #expect(model.enable(second, .tracePC) == EBUSY)
        #expect(model.setBufferSize(second, UInt64(pageEntries)) == 0)
        #expect(model.enable(second, .none) == EBUSY)
        // Another LWP may enable the second fd; its exit (join) disables it.
        #expect(model.runOnNewThread { model.enable(second, .traceCMP) } == 0)
        #expect(model.descriptorState(second)?.enabled == false)
        #expect(model.descriptorState(second)?.mode == .traceCMP)  // stale
        #expect(model.disable(fd) == 0)
        #expect(model.close(fd) == 0 && model.close(second) == 0)
        #expect(model.isClean)
    }

    @Test("ENABLE (1.8, netbsd-9): enabled, binding, buffer, then mode; no remote ioctls")
    func enableOrderNetBSD9() {
        let model = Model(revision: .netbsd9)
        let fd = model.openDevice()
        #expect(model.enable(fd, raw: 7) == ENOBUFS)  // 1.17 says EINVAL here
        #expect(model.setBufferSize(fd, UInt64(pageEntries)) == 0)
        #expect(model.enable(fd, raw: 7) == EINVAL)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.enable(fd, raw: 7) == EBUSY)
        let second = model.openDevice()
        #expect(model.enable(second, raw: -1) == EBUSY)
        #expect(model.disable(fd) == 0)
        #expect(model.registeredRemotes.isEmpty)
        #expect(model.attach(second, vhci) == EINVAL)
        #expect(model.detach(second) == EINVAL)
        #expect(model.runRemoteSection(vhci) == nil)
    }

    @Test("DISABLE: not enabled, then not the owner; the mode stays stale")
    func disableRules() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.disable(fd) == ENOENT)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.runOnNewThread { model.disable(fd) } == ENOENT)
        // An LWP bound to another fd is not the owner either.
        let other = model.sized()
        #expect(model.runOnNewThread { (model.enable(other, .tracePC), model.disable(fd)) } == (0, ENOENT))
        words.count = 0
        #expect(model.disable(fd) == 0)
        #expect(words.pcs() == headPCs)  // DISABLE's own start was traced
        #expect(model.descriptorState(fd)?.enabled == false && model.descriptorState(fd)?.mode == .tracePC)
        #expect(model.threadState(model.tid) == nil)
        #expect(model.disable(fd) == ENOENT)
        // Any LWP may enable it again, without a new mapping.
        #expect(model.runOnNewThread { (model.enable(fd, .traceCMP), model.disable(fd)) } == (0, 0))
        #expect(model.release(fd, words) && model.close(other) == 0)
        #expect(model.isClean)
    }

    @Test("IOC_VOID requests ignore their argument, by value or by pointer")
    func voidRequestsIgnoreArguments() {
        let model = Model()
        let fd = model.sized()
        var junk: UInt64 = 0xdead_beef
        for call in 0..<3 {
            #expect(model.enable(fd, .tracePC) == 0)
            let result: CInt = switch call {
            case 0: model.ioctl(fd, Request.disable, value: 12345)
            case 1: model.ioctl(fd, Request.disable, value: .max)
            default: model.ioctl(fd, Request.disable, pointer: &junk)
            }
            #expect(errnoOf(result) == 0, "call \(call)")
        }
        #expect(errnoOf(model.ioctl(fd, Request.disable, pointer: &junk)) == ENOENT)
        #expect(errnoOf(model.ioctl(fd, Request.remoteDetach, value: 99)) == ENOENT)
        #expect(model.attach(fd, vhci) == 0)
        #expect(errnoOf(model.ioctl(fd, Request.remoteDetach, pointer: &junk)) == 0)
        #expect(junk == 0xdead_beef)
    }

    @Test("IOC_IN arguments are copied in from an address: a by-value integer is EFAULT")
    func argumentsByValue() {
        let model = Model()
        let fd = model.openDevice()
        // The Linux convention (size and mode by value) faults in copyin, before any check.
        #expect(errnoOf(model.ioctl(fd, Request.setBufferSize, value: UInt(pageEntries))) == EFAULT)
        #expect(errnoOf(model.ioctl(fd, Request.setBufferSize, value: 0)) == EFAULT)
        #expect(errnoOf(model.ioctl(fd, Request.setBufferSize, value: 0xffff_ffff_8000_0000)) == EFAULT)
        #expect(model.descriptorState(fd)?.entries == 0)
        #expect(errnoOf(model.ioctl(fd, Request.enable, value: 1)) == EFAULT)  // not ENOBUFS
        #expect(errnoOf(model.ioctl(fd, Request.remoteAttach, value: 1)) == EFAULT)
        // The address of a real variable, passed as a value, is what the kernel reads.
        let entries = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        defer { entries.deallocate() }
        entries.pointee = 64
        #expect(errnoOf(model.ioctl(fd, Request.setBufferSize, value: UInt(bitPattern: entries))) == 0)
        #expect(model.descriptorState(fd)?.entries == 64)
        entries.pointee = 1
        #expect(errnoOf(model.ioctl(fd, Request.setBufferSize, value: UInt(bitPattern: entries))) == EINVAL)
        // ENABLE reads exactly 4 bytes: an int.
        let mode = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        defer { mode.deallocate() }
        mode.pointee = 0xffff_ffff_0000_0002  // low int is TRACE_CMP
        #expect(errnoOf(model.ioctl(fd, Request.enable, pointer: mode)) == 0)
        #expect(model.descriptorState(fd)?.mode == .traceCMP)
        #expect(model.disable(fd) == 0)
    }

    @Test("unknown requests are EINVAL after the copy-in their direction bits ask for")
    func unknownRequests() {
        let model = Model()
        let fd = model.sized()
        var word: UInt64 = 2
        let unknown: [UInt] = [
            0, 0x6364, 0x8008_6301,  // Linux ENABLE and INIT_TRACE
            0x2000_4b02,  // the pre-2019 ENABLE without a mode
            0x8008_4b04,  // OpenBSD's KIOREMOTEATTACH
            0x2004_6302,  // FreeBSD's KIOENABLE
            0xffff_ffff_8008_4b01,  // SETBUFSIZE sign-extended
            0x1_8004_4b02,  // ENABLE with a high bit
        ]
        for request in unknown {
            #expect(errnoOf(model.ioctl(fd, request, pointer: &word)) == EINVAL, "request \(request)")
        }
        #expect(errnoOf(model.ioctl(fd, 0x2000_4b7f, value: 1)) == EINVAL)  // IOC_VOID: nothing copied
        #expect(errnoOf(model.ioctl(fd, 0x8004_4b7f, value: 1)) == EFAULT)  // IOC_IN: copyin first
        #expect(model.descriptorState(fd)?.enabled == false)
        #expect(model.close(fd) == 0)
    }

    @Test("ENABLE does not reset buf[0] and leaves its own tail; a tracing LWP's syscalls are traced")
    func enableTailAndSyscalls() {
        let model = Model()
        let (fd, words) = model.mapped()
        words.count = 5
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(words.count == 5 + UInt64(tailPCs.count))
        #expect(words.slice(6..<(6 + tailPCs.count)) == tailPCs)
        words.count = 0
        model.probeSyscall()
        #expect(words.pcs() == Model.probePCs)
        words.count = 0
        _ = model.currentThreadID()
        #expect(words.pcs() == Model.syscallPath.pcs)
        words.count = 0
        var junk: UInt64 = 0
        #expect(errnoOf(model.ioctl(fd, 0x1234, pointer: &junk)) == EINVAL)
        #expect(words.pcs() == headPCs + tailPCs)
        words.count = 0
        #expect(model.disable(fd) == 0)
        model.probeSyscall()
        #expect(words.pcs() == headPCs)
    }
}

// MARK: mmap (Docs/kcov-netbsd.md#mmap)

@Suite("NetBSD kcov model: mmap") struct NetBSDKcovModelMmapTests {
    @Test("kcov_fops_mmap's checks in order: EXEC, offset, size, offset bound, then buffer size")
    func mmapOrder() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.map(fd, bytes: pageBytes) == nil && errno == ENOMEM)  // before SETBUFSIZE
        #expect(model.map(fd, bytes: pageBytes, protection: PROT_READ | PROT_EXEC) == nil && errno == EACCES)
        #expect(model.map(fd, bytes: pageBytes, protection: PROT_EXEC, offset: -pageBytes) == nil && errno == EACCES)
        #expect(model.map(fd, bytes: 4 << 20, offset: -pageBytes) == nil && errno == EINVAL)
        #expect(model.setBufferSize(fd, UInt64(2 * pageEntries)) == 0)
        #expect(model.map(fd, bytes: 3 * pageBytes) == nil && errno == ENOMEM)
        #expect(model.map(fd, bytes: (2 << 20) + pageBytes) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, offset: (2 << 20) + pageBytes) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, offset: 2 << 20) == nil && errno == ENOMEM)
        #expect(model.map(fd, bytes: pageBytes, offset: 2 * pageBytes) == nil && errno == ENOMEM)
        #expect(model.map(fd, bytes: 2 * pageBytes, offset: 1) == nil && errno == ENOMEM)  // grown by the page offset
        // Generic checks.
        #expect(model.map(fd, bytes: 0) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, flags: 0) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: pageBytes, flags: MAP_SHARED | MAP_PRIVATE) == nil && errno == EINVAL)
        #expect(model.liveMappingCount == 0)
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("any sub-range may be mapped, read-only or private too; mappings alias one buffer")
    func subRanges() {
        let model = Model()
        let fd = model.sized(entries: 2 * pageEntries)
        let whole = Words(model.map(fd, bytes: 2 * pageBytes)!)
        let second = model.map(fd, bytes: pageBytes, offset: pageBytes)!
        #expect(second == whole.raw + pageBytes)
        let unaligned = model.map(fd, bytes: 16, offset: 24)!
        #expect(unaligned == whole.raw + 24)
        let readOnly = model.map(fd, bytes: pageBytes, protection: PROT_READ)
        let private_ = model.map(fd, bytes: pageBytes, flags: MAP_PRIVATE)
        #expect(readOnly == whole.raw && private_ == whole.raw)
        #expect(model.liveMappingCount == 5)
        whole[pageEntries] = 42
        #expect(Words(second)[0] == 42)
        whole[3] = 7
        #expect(Words(unaligned)[0] == 7)
        // Mapped while enabled, too.
        #expect(model.enable(fd, .tracePC) == 0)
        let during = model.map(fd, bytes: 2 * pageBytes)
        #expect(during == whole.raw)
        #expect(model.disable(fd) == 0)
        // munmap: whole mappings only in the model; the unaligned one by its own address and length.
        #expect(errnoOf(model.munmap(whole.raw, length: 3 * pageBytes)) == EINVAL)
        let elsewhere = UnsafeMutableRawPointer.allocate(byteCount: pageBytes, alignment: pageBytes)
        defer { elsewhere.deallocate() }
        #expect(errnoOf(model.munmap(elsewhere, length: pageBytes)) == EINVAL)
        #expect(errnoOf(model.munmap(unaligned, length: 16)) == 0)
        #expect(errnoOf(model.munmap(second, length: pageBytes)) == 0)
        #expect(errnoOf(model.munmap(whole.raw, length: 2 * pageBytes)) == 0)
        #expect(errnoOf(model.munmap(whole.raw, length: 2 * pageBytes)) == 0)
        #expect(errnoOf(model.munmap(whole.raw, length: pageBytes)) == 0)
        #expect(errnoOf(model.munmap(whole.raw, length: pageBytes)) == 0)
        #expect(errnoOf(model.munmap(whole.raw, length: pageBytes)) == EINVAL)
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("exactly nent * 8 bytes always maps, whatever nent; the open mode is not checked")
    func exactSizes() {
        let model = Model()
        for entries in [2, 3, 100, pageEntries + 1, 262_144] {
            let fd = model.sized(entries: entries)
            let bytes = (entries * 8 + pageBytes - 1) / pageBytes * pageBytes
            #expect(model.map(fd, bytes: entries * 8) != nil, "\(entries) entries")
            #expect(model.map(fd, bytes: bytes + 1) == nil && errno == (bytes + 1 > 2 << 20 ? EINVAL : ENOMEM))
            #expect(model.close(fd) == 0)
        }
        #expect(model.liveBufferCount == 5 && model.liveKDCount == 0)
        let readOnly = model.open(device, flags: O_RDONLY)
        #expect(model.setBufferSize(readOnly, 2) == 0)
        #expect(model.map(readOnly, bytes: 16) != nil)
        model.exitProcess()
        #expect(model.isClean)
    }
}

// MARK: Recording (Docs/kcov-netbsd.md#buffer-layout)

@Suite("NetBSD kcov model: recording") struct NetBSDKcovModelRecordingTests {
    @Test("PC mode holds nent-1 PCs; the count saturates; a count at or past bufnent records nothing")
    func pcSaturation() {
        let model = Model()
        let (fd, words) = model.mapped(entries: 16)
        #expect(model.enable(fd, .tracePC) == 0)
        words.count = 0
        model.probeSyscall()
        model.probeSyscall()
        #expect(words.count == 15)
        #expect(words.pcs() == Array((Model.probePCs + Model.probePCs).prefix(15)))
        let snapshot = words.slice(0..<16)
        model.probeSyscall()
        #expect(words.slice(0..<16) == snapshot)
        #expect(words[16] == 0)  // the page beyond nent is never written
        // A user-written count is trusted only below bufnent: no wrap, no write.
        words.count = 100
        model.probeSyscall()
        #expect(words.count == 100)
        words.count = .max
        model.probeSyscall()
        #expect(words.count == .max)
        words.count = 14
        model.probeSyscall()
        #expect(words.count == 15 && words[15] == Model.probePCs[0])
        #expect(model.disable(fd) == 0)
        #expect(model.outOfBoundsWrites == 0)
    }

    @Test("CMP records are four words, floor((nent-1)/4) of them, switch cases included")
    func comparisonRecords() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .traceCMP) == 0)
        #expect(words.count == 1)  // ENABLE's tail: one record
        #expect(words.slice(1..<5) == Model.ioctlExitPath.comparisons[0].words)
        words.count = 0
        model.probeSyscall()
        #expect(words.count == 5)
        #expect(words.records() == Model.probeComparisons.flatMap(\.words))
        #expect(model.disable(fd) == 0)

        for (entries, capacity) in [(5, 1), (8, 1), (9, 2), (16, 3), (17, 4)] {
            let small = model.sized(entries: entries)
            let stored = model.runOnNewThread { () -> [UInt64]? in
                guard model.enable(small, .traceCMP) == 0 else { return nil }
                model.probeSyscall()
                model.probeSyscall()
                return model.bufferContents(small)
            }
            let expected = (Model.ioctlExitPath.comparisons + Model.probeComparisons + Model.probeComparisons)
                .prefix(capacity).flatMap(\.words)
            #expect(stored?.first == UInt64(capacity), "\(entries) entries")
            #expect(stored.map { Array($0[1...].prefix(4 * capacity)) } == expected)
            #expect(model.close(small) == 0)
        }
    }

    @Test("the CMP bound wraps as uint64: a count of 2^62 - 1 or 2^64 - 1 writes before the buffer")
    func comparisonWrap() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .traceCMP) == 0)
        let records = Model.probeComparisons
        // Ordinary overflow: nothing.
        words.count = 1000
        model.probeSyscall()
        #expect(words.count == 1000 && model.outOfBoundsWrites == 0)
        // idx = 2^64 - 1: idx*4+4 wraps to 0, so the first record's type, arg1 and arg2 land 3 words
        // before buf[0] and its PC in buf[0], which then becomes idx+1 = 0; the rest follow from 0.
        words.count = .max
        model.probeSyscall()
        #expect(model.outOfBoundsWrites == 3)
        #expect(words.count == 4)
        #expect(words.records() == records.dropFirst().flatMap(\.words))
        // idx = 2^62 - 1: the same, with the count off by 2^62.
        words.count = (1 << 62) - 1
        model.probeSyscall()
        #expect(model.outOfBoundsWrites == 6)
        #expect(words.count == (1 << 62) + 4)
        #expect(words.slice(1..<17) == records.dropFirst().flatMap(\.words))
        // idx = 2^62: every record lands in range, at the wrapped positions.
        words.count = 1 << 62
        model.probeSyscall()
        #expect(model.outOfBoundsWrites == 6)
        #expect(words.count == (1 << 62) + 5)
        #expect(words.slice(1..<21) == records.flatMap(\.words))
        #expect(model.disable(fd) == 0)
    }

    @Test("NONE binds the LWP and records nothing; the hooks record only their own mode")
    func noneMode() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .none) == 0)
        model.probeSyscall()
        #expect(words.count == 0)
        let other = model.sized()
        #expect(model.enable(other, .tracePC) == EBUSY)
        #expect(model.disable(fd) == 0)
        #expect(model.enable(fd, .traceCMP) == 0)
        words.count = 0
        model.probeSyscall()
        #expect(words.count == UInt64(Model.probeComparisons.count))
        #expect(!Model.probePCs.contains(words[1]))
        #expect(model.disable(fd) == 0)
    }

    @Test("another LWP's syscalls never reach this LWP's buffer")
    func perThreadIsolation() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .tracePC) == 0)
        words.count = 0
        model.runOnNewThread { model.probeSyscall() }
        #expect(words.count == 0)
        let otherCount = model.runOnNewThread { () -> UInt64 in
            let (own, ownWords) = model.mapped()
            guard model.enable(own, .tracePC) == 0 else { return 0 }
            ownWords.count = 0
            model.probeSyscall()
            model.probeSyscall()
            return ownWords.count
        }
        #expect(otherCount == 18)
        #expect(words.count == 0)
        model.probeSyscall()
        #expect(words.pcs() == Model.probePCs)
        #expect(model.disable(fd) == 0)
    }

    @Test("LWPs tracing concurrently each get exactly their own trace")
    func concurrentThreads() {
        let model = Model()
        let barrier = Barrier(8)
        let threads = (0..<8).map { index in
            model.startThread { () -> Bool in
                let (fd, words) = model.mapped()
                let mode: Model.Mode = index % 2 == 0 ? .tracePC : .traceCMP
                var ok = model.enable(fd, mode) == 0
                barrier.arriveAndWait()
                words.count = 0
                for _ in 0..<20 { model.probeSyscall() }
                if mode == .tracePC {
                    ok = ok && words.pcs() == Array(repeating: Model.probePCs, count: 20).flatMap { $0 }
                } else {
                    let records = Array(repeating: Model.probeComparisons, count: 20).flatMap { $0 }
                    ok = ok && words.records() == Array(records.prefix((pageEntries - 1) / 4).flatMap(\.words))
                }
                return ok && model.disable(fd) == 0 && model.release(fd, words)
            }
        }
        #expect(threads.map { $0.join() } == Array(repeating: true, count: 8))
        #expect(model.isClean)
    }
}

// MARK: Threads, close, exit (Docs/kcov-netbsd.md#threads-and-lifecycle)

@Suite("NetBSD kcov model: lifecycle") struct NetBSDKcovModelLifecycleTests {
    @Test("an LWP's exit leaves its descriptor enabled until the LWP is freed by the join")
    func exitThenFree() {
        let model = Model()
        let (fd, words) = model.mapped()
        let proceed = Signal()
        let thread = model.startThread { () -> CInt in
            let enabled = model.enable(fd, .tracePC)
            model.probeSyscall()
            _ = proceed.wait()
            return enabled
        }
        let childTid = thread.tid
        while model.descriptorState(fd)?.enabled != true { sched_yield() }
        #expect(model.descriptorState(fd)?.owner == childTid)
        proceed.raise()
        thread.awaitExit()
        // Exited, not freed: still enabled; nobody else may enable or disable it.
        #expect(model.threadState(childTid) == nil)  // no longer a live LWP
        #expect(model.descriptorState(fd)?.enabled == true)
        #expect(model.enable(fd, .tracePC) == EBUSY)
        #expect(model.disable(fd) == ENOENT)
        #expect(thread.join() == 0)
        #expect(model.descriptorState(fd)?.enabled == false)
        #expect(model.descriptorState(fd)?.owner == nil)
        #expect(words.pcs() == tailPCs + Model.probePCs)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.disable(fd) == 0)
        #expect(model.release(fd, words))
        #expect(model.isClean)
    }

    @Test("threadExited frees an LWP by tid: its descriptor is disabled; other tids change nothing")
    func threadExitedByTid() {
        let model = Model()
        let fd = model.sized()
        #expect(model.enable(fd, .tracePC) == 0)
        model.threadExited(model.tid &+ 1_000_000)
        #expect(model.descriptorState(fd)?.enabled == true)
        model.threadExited(model.tid)
        #expect(model.descriptorState(fd)?.enabled == false)
        #expect(model.threadState(model.tid) == nil)
        #expect(model.enable(fd, .tracePC) == 0)  // this thread is a fresh LWP now
        #expect(model.disable(fd) == 0)
    }

    @Test("close while enabled: tracing continues into the orphan; the LWP stays busy until freed")
    func closeWhileEnabled() {
        let model = Model()
        let (problems, words) = model.runOnNewThread { () -> ([String], Words) in
            var problems: [String] = []
            let (fd, words) = model.mapped()
            guard model.enable(fd, .tracePC) == 0 else { return (["enable"], words) }
            words.count = 0
            if model.close(fd) != 0 { problems.append("close") }
            if model.openDescriptorCount != 0 || model.liveKDCount != 1 || model.liveBufferCount != 1 {
                problems.append("counts after close")
            }
            model.probeSyscall()
            // close's own path was traced before the probe: the binding survived the close.
            if words.pcs() != Model.syscallPath.pcs + Model.probePCs { problems.append("trace \(words.pcs())") }
            if model.threadState(model.tid) != .init(descriptor: nil, enabled: true, mode: .tracePC) {
                problems.append("thread state")
            }
            let second = model.sized()
            if model.enable(second, .tracePC) != EBUSY { problems.append("second enable") }
            _ = model.close(second)
            return (problems, words)
        }
        #expect(problems == [])
        // The LWP was freed: the descriptor with it; the mapping still holds the buffer.
        #expect(model.liveKDCount == 0)
        #expect(model.liveBufferCount == 1 && model.liveMappingCount == 1)
        // close, probe, then open + SETBUFSIZE, the failed ENABLE and close of the second fd.
        let traced = [Model.syscallPath.pcs, Model.probePCs, Model.syscallPath.pcs, headPCs, tailPCs, headPCs, tailPCs, Model.syscallPath.pcs]
        #expect(words.pcs() == traced.flatMap { $0 })
        #expect(model.munmap(words.raw, length: pageBytes) == 0)
        #expect(model.isClean)
    }

    @Test("a buffer lives while its descriptor or any mapping does, and is freed exactly once")
    func bufferLifetime() {
        let model = Model()
        let unmapped = model.sized()
        #expect(model.liveBufferCount == 1)
        #expect(model.close(unmapped) == 0)
        #expect(model.isClean)

        let fd = model.sized()
        let first = Words(model.map(fd, bytes: pageBytes)!)
        let second = Words(model.map(fd, bytes: pageBytes)!)
        #expect(model.close(fd) == 0)
        #expect(model.liveKDCount == 0 && model.liveBufferCount == 1)
        first[1] = 99
        #expect(second[1] == 99)
        #expect(model.munmap(first.raw, length: pageBytes) == 0)
        #expect(model.liveBufferCount == 1)
        #expect(model.munmap(second.raw, length: pageBytes) == 0)
        #expect(model.isClean)
        #expect(errnoOf(model.munmap(second.raw, length: pageBytes)) == EINVAL)
    }

    @Test("process exit closes, unmaps and frees whatever state it finds; the model is reusable")
    func processExit() {
        let model = Model()
        let (enabled, _) = model.mapped()
        #expect(model.enable(enabled, .tracePC) == 0)
        let copy = model.dup(enabled)
        let (_, _) = model.mapped()
        _ = model.openDevice()
        let remote = model.openDevice()
        #expect(model.attach(remote, vhci) == 0)
        #expect(model.enable(remote, .tracePC) == 0)
        let zombieThread = model.startThread { model.enable(model.sized(), .none) }
        zombieThread.awaitExit()
        #expect(copy > enabled)
        #expect(model.liveKDCount == 5)
        model.exitProcess()
        #expect(model.isClean)
        #expect(model.remoteState(vhci)?.enabled == false)
        #expect(zombieThread.join() == 0)
        #expect(model.isClean)
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.disable(fd) == 0 && model.release(fd, words))
        #expect(model.isClean)
    }
}

// MARK: Remote (Docs/kcov-netbsd.md#ioctls, Docs/kcov-netbsd.md#remote-coverage)

@Suite("NetBSD kcov model: remote") struct NetBSDKcovModelRemoteTests {
    @Test("vhci_attach registers 8 ports per bus; ATTACH checks local enable, then registration")
    func attachChecks() {
        #expect(Model().registeredRemotes.count == 8)
        #expect(Model(vhciBuses: 2).registeredRemotes.contains(.vhci(bus: 1, port: 7)))
        #expect(Model(vhciBuses: 0).registeredRemotes.isEmpty)
        let model = Model()
        let fd = model.openDevice()
        #expect(model.attach(fd, .vhci(bus: 0, port: 8)) == ENOENT)
        #expect(model.attach(fd, .vhci(bus: 1, port: 0)) == ENOENT)
        #expect(model.attach(fd, Model.RemoteTarget(subsystem: 1, id: 0)) == ENOENT)
        #expect(model.setBufferSize(fd, UInt64(pageEntries)) == 0)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.attach(fd, .vhci(bus: 9, port: 9)) == EEXIST)  // enabled before registration
        #expect(model.attach(fd, vhci) == EEXIST)
        #expect(model.detach(fd) == EEXIST)  // enabled before attachment
        #expect(model.disable(fd) == 0)
        #expect(model.detach(fd) == ENOENT)
        // A local buffer is no obstacle; it is ignored while attached.
        #expect(model.attach(fd, vhci) == 0)
        #expect(model.descriptorState(fd)?.remote == vhci)
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("an attached fd: SETBUFSIZE is a no-op, mmap maps the remote buffer, ENABLE binds no LWP")
    func attachedDescriptor() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.attach(fd, vhci) == 0)
        #expect(model.setBufferSize(fd, 0) == 0)  // before the size check
        #expect(model.setBufferSize(fd, 64) == 0)
        #expect(model.liveBufferCount == 0 && model.descriptorState(fd)?.entries == 0)
        let words = Words(model.map(fd, bytes: Model.maxBufferBytes)!)
        #expect(model.enable(fd, raw: 5) == EINVAL)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.remoteState(vhci) == .init(enabled: true, mode: .tracePC, attachedDescriptors: 1))
        #expect(model.descriptorState(fd)?.enabled == false)  // the local one stays off
        #expect(model.threadState(model.tid) == nil)
        words.count = 0
        model.probeSyscall()
        #expect(words.count == 0)  // the caller is not traced
        #expect(model.runRemoteSection(vhci) == 6)
        #expect(words.pcs() == Model.remoteSectionPath.pcs)
        #expect(model.runRemoteSection(.vhci(bus: 0, port: 2)) == 0)  // registered, not enabled
        #expect(model.runRemoteSection(.vhci(bus: 5, port: 1)) == nil)
        // The LWP is free for a local descriptor of its own at the same time.
        let (local, localWords) = model.mapped()
        #expect(model.enable(local, .tracePC) == 0)
        localWords.count = 0
        model.probeSyscall()
        #expect(localWords.pcs() == Model.probePCs)
        #expect(words.count == 6)
        #expect(model.disable(local) == 0)
        // A second fd on the same port shares the remote's state.
        let second = model.openDevice()
        #expect(model.attach(second, vhci) == 0)
        #expect(model.enable(second, .traceCMP) == EBUSY)
        #expect(model.remoteState(vhci)?.attachedDescriptors == 2)
        #expect(model.runOnNewThread { model.disable(second) } == 0)  // any LWP, any attached fd
        #expect(model.disable(fd) == ENOENT)
        #expect(model.runRemoteSection(vhci) == 0)
        #expect(words.count == 6)
        #expect(model.enable(second, .traceCMP) == 0)
        words.count = 0
        #expect(model.runRemoteSection(vhci) == 2)
        #expect(words.records() == Model.remoteSectionPath.comparisons.flatMap(\.words))
        // Closing an attached fd disables the remote.
        #expect(model.close(second) == 0)
        #expect(model.remoteState(vhci)?.enabled == false)
        #expect(model.munmap(words.raw, length: Model.maxBufferBytes) == 0)
        #expect(model.close(fd) == 0 && model.release(local, localWords))
        #expect(model.isClean)
    }

    @Test("DETACH disables an enabled remote; re-ATTACH re-points without disabling the first")
    func detachAndReattach() {
        let model = Model()
        let fd = model.sized()
        let local = Words(model.map(fd, bytes: pageBytes)!)
        #expect(model.attach(fd, vhci) == 0)
        let remote = model.map(fd, bytes: pageBytes)!
        #expect(remote != local.raw)
        #expect(model.enable(fd, .none) == 0)
        #expect(model.detach(fd) == 0)
        #expect(model.remoteState(vhci)?.enabled == false)
        #expect(model.detach(fd) == ENOENT)
        // Detached: the local buffer is back.
        #expect(model.map(fd, bytes: pageBytes) == local.raw)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.disable(fd) == 0)
        // Re-attach while the first remote is enabled: it stays enabled, orphaned.
        let other = Model.RemoteTarget.vhci(bus: 0, port: 3)
        #expect(model.attach(fd, vhci) == 0)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.attach(fd, other) == 0)
        #expect(model.remoteState(vhci) == .init(enabled: true, mode: .tracePC, attachedDescriptors: 0))
        #expect(model.disable(fd) == ENOENT)  // acts on `other`, which is not enabled
        #expect(model.close(fd) == 0)
        #expect(model.remoteState(vhci)?.enabled == true)
        model.exitProcess()
        #expect(model.isClean)
    }

    @Test("a remote descriptor survives its fds: its buffer is the kernel's")
    func remoteBufferPersists() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.attach(fd, vhci) == 0)
        let words = Words(model.map(fd, bytes: pageBytes)!)
        #expect(model.enable(fd, .tracePC) == 0)
        words.count = 0
        #expect(model.runRemoteSection(vhci) == 6)
        #expect(model.close(fd) == 0)
        #expect(model.munmap(words.raw, length: pageBytes) == 0)
        #expect(model.isClean)
        let again = model.openDevice()
        #expect(model.attach(again, vhci) == 0)
        #expect(model.bufferContents(again, words: 7) == [6] + Model.remoteSectionPath.pcs)
        #expect(model.close(again) == 0)
    }
}

// MARK: Simulated fork + exec (Docs/kcov-netbsd.md#threads-and-lifecycle)

@Suite("NetBSD kcov model: spawn") struct NetBSDKcovModelSpawnTests {
    private func spawn(
        _ model: Model, _ path: String, fd: CInt, buffer: Words, mode: UInt = 1, byPointer: Bool = true
    ) -> SpawnOutcome {
        model.spawnEnabled(
            Command(path: path, arguments: [path], environment: []), fd: fd,
            enable: EnableCall(request: Request.enable, argument: mode, byPointer: byPointer),
            buffer: buffer.raw, bufferBytes: pageBytes)
    }

    @Test("the parent resets the count; the child enables, execs, probes and exits; the reap frees it")
    func spawnRuns() {
        let model = Model()
        let (fd, words) = model.mapped()
        words.count = 77
        let outcome = spawn(model, "/bin/sh", fd: fd, buffer: words)
        guard case .running(let pid) = outcome else {
            Issue.record("unexpected \(outcome)")
            return
        }
        #expect(words.pcs() == tailPCs + Model.syscallPath.pcs + Model.probePCs + Model.syscallPath.pcs)
        // A zombie's LWP is not freed: the descriptor is still enabled.
        #expect(model.descriptorState(fd)?.enabled == true)
        #expect(model.enable(fd, .tracePC) == EBUSY)
        #expect(model.disable(fd) == ENOENT)
        #expect(model.waitForExit(pid) == .exited(0))
        #expect(model.descriptorState(fd)?.enabled == false)
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(model.disable(fd) == 0)
        #expect(model.release(fd, words))
        #expect(model.isClean)
    }

    @Test("comparisons from a child, and a tracing parent records its fork")
    func spawnComparisons() {
        let model = Model()
        let (fd, words) = model.mapped()
        guard case .running(let pid) = spawn(model, "/bin/sh", fd: fd, buffer: words, mode: 2) else {
            Issue.record("spawn failed")
            return
        }
        #expect(model.waitForExit(pid) == .exited(0))
        let expected = Model.ioctlExitPath.comparisons + Model.syscallPath.comparisons + Model.probeComparisons
            + Model.syscallPath.comparisons
        #expect(words.records() == expected.flatMap(\.words))
        let (own, ownWords) = model.mapped()
        #expect(model.enable(own, .tracePC) == 0)
        ownWords.count = 0
        guard case .running(let second) = spawn(model, "/bin/sh", fd: fd, buffer: words) else {
            Issue.record("spawn failed")
            return
        }
        #expect(ownWords.pcs() == Model.syscallPath.pcs)  // fork, traced in the parent only
        #expect(model.waitForExit(second) == .exited(0))
        #expect(ownWords.pcs() == Model.syscallPath.pcs + Model.syscallPath.pcs)  // and the wait
        #expect(model.disable(own) == 0)
    }

    @Test("ENABLE failures come first; exec failures are ENOENT or EACCES; failed children are reaped")
    func spawnFailures() throws {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(spawn(model, "/nonexistent/program", fd: fd, buffer: words) == .execFailed(errno: ENOENT))
        #expect(spawn(model, "/tmp", fd: fd, buffer: words) == .execFailed(errno: EACCES))
        var template = Array("/tmp/kcov-netbsd-model-XXXXXX".utf8CString)
        let file = mkstemp(&template)
        try #require(file >= 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(path) }
        Glibc.close(file)
        chmod(path, 0o644)
        #expect(spawn(model, path, fd: fd, buffer: words) == .execFailed(errno: EACCES))
        #expect(model.descriptorState(fd)?.enabled == false)

        let unsized = model.openDevice()
        #expect(spawn(model, "/nonexistent/program", fd: unsized, buffer: words) == .enableFailed(errno: ENOBUFS))
        #expect(spawn(model, "/bin/sh", fd: fd, buffer: words, mode: 3) == .enableFailed(errno: EINVAL))
        // The Linux convention, mode by value, faults.
        #expect(spawn(model, "/bin/sh", fd: fd, buffer: words, byPointer: false) == .enableFailed(errno: EFAULT))
        #expect(spawn(model, "/bin/sh", fd: 2999, buffer: words) == .enableFailed(errno: EBADF))
        #expect(model.enable(fd, .tracePC) == 0)
        #expect(spawn(model, "/bin/sh", fd: fd, buffer: words) == .enableFailed(errno: EBUSY))
        #expect(model.disable(fd) == 0)
        #expect(model.release(fd, words) && model.close(unsized) == 0)
        #expect(model.isClean)
    }
}

// MARK: NetBSD's own tests (Docs/kcov-netbsd.md#netbsds-own-tests, tests/modules/t_kcov.c)

/// One test per ATF case of NetBSD's `t_kcov.c`, asserting what the case asserts (and the errno
/// Docs/kcov-netbsd.md#ioctls gives where the case only asserts failure). Each ATF case runs in its own process: here
/// each has its own model, and "the process exits" is ``NetBSDKcovModel/exitProcess()``.
@Suite("NetBSD t_kcov.c") struct NetBSDKcovOwnTests {
    @Test("kcov_dup2") func kcov_dup2() {
        let model = Model()
        let fd = model.openDevice()
        let unused: CInt = 2345
        #expect(model.dup2(fd, unused) == unused)
        #expect(model.close(fd) == 0)
        #expect(model.liveKDCount == 1)  // the duplicate still holds it
        #expect(model.close(unused) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_multiopen") func kcov_multiopen() {
        let model = Model()
        let first = model.open(device, flags: O_RDWR)
        let second = model.open(device, flags: O_RDWR)
        #expect(first >= 0 && second >= 0 && first != second)
        #expect(model.liveKDCount == 2)
        #expect(model.setBufferSize(first, UInt64(pageEntries)) == 0)
        #expect(model.descriptorState(second)?.entries == 0)  // independent
        #expect(model.close(first) == 0 && model.close(second) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_open_close_open") func kcov_open_close_open() {
        let model = Model()
        let fd = model.open(device, flags: O_RDWR)
        #expect(fd >= 0)
        #expect(model.close(fd) == 0)
        let again = model.open(device, flags: O_RDWR)
        #expect(again >= 0)
        #expect(model.close(again) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_bufsize") func kcov_bufsize() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.setBufferSize(fd, 0) == EINVAL)
        #expect(model.setBufferSize(fd, 2) == 0)
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_mmap") func kcov_mmap() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.map(fd, bytes: pageBytes) == nil && errno == ENOMEM)
        #expect(model.setBufferSize(fd, UInt64(2 * pageBytes / Model.entrySize)) == 0)
        let data = model.map(fd, bytes: 2 * pageBytes)
        #expect(data != nil)
        #expect(model.munmap(data!, length: 2 * pageBytes) == 0)
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_mmap_no_munmap") func kcov_mmap_no_munmap() {
        let model = Model()
        let fd = model.sized()
        let words = Words(model.map(fd, bytes: pageBytes)!)
        #expect(model.close(fd) == 0)
        // No panic, and the mapping is still good memory.
        words.count = 3
        #expect(words.count == 3)
        #expect(model.liveKDCount == 0 && model.liveBufferCount == 1 && model.liveMappingCount == 1)
        model.exitProcess()
        #expect(model.isClean)
    }

    @Test("kcov_mmap_no_munmap_no_close") func kcov_mmap_no_munmap_no_close() {
        let model = Model()
        let fd = model.sized()
        #expect(model.map(fd, bytes: pageBytes) != nil)
        model.exitProcess()
        #expect(model.isClean)
    }

    @Test("kcov_enable") func kcov_enable() {
        let model = Model()
        let fd = model.openDevice()
        #expect(model.enable(fd, .none) == ENOBUFS)
        #expect(model.setBufferSize(fd, UInt64(pageEntries)) == 0)
        #expect(model.disable(fd) == ENOENT)
        #expect(model.enable(fd, .none) == 0)
        #expect(model.enable(fd, .none) == EBUSY)
        #expect(model.disable(fd) == 0)
        #expect(model.disable(fd) == ENOENT)
        for mode in [Model.Mode.none, .tracePC, .traceCMP] {
            #expect(model.enable(fd, mode) == 0, "\(mode)")
            #expect(model.disable(fd) == 0, "\(mode)")
        }
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_enable_no_disable") func kcov_enable_no_disable() {
        let model = Model()
        let afterClose = model.runOnNewThread { () -> [Int] in
            let fd = model.sized()
            guard model.enable(fd, .none) == 0, model.close(fd) == 0 else { return [] }
            return [model.openDescriptorCount, model.liveKDCount, model.liveBufferCount]
        }
        #expect(afterClose == [0, 1, 1])  // left to the LWP (lwpfree)
        #expect(model.isClean)  // freed with the LWP
    }

    @Test("kcov_enable_no_disable_no_close") func kcov_enable_no_disable_no_close() {
        let model = Model()
        let fd = model.sized()
        #expect(model.enable(fd, .none) == 0)
        model.exitProcess()
        #expect(model.isClean)
    }

    @Test("kcov_mmap_enable_thread_close") func kcov_mmap_enable_thread_close() {
        let model = Model()
        let opened = Signal()
        let closed = Signal()
        let thread = model.startThread { () -> Bool in
            let fd = model.openDevice()
            guard model.setBufferSize(fd, UInt64(pageEntries)) == 0,
                  model.map(fd, bytes: pageBytes) != nil,
                  model.enable(fd, .none) == 0
            else { return false }
            opened.raise(Int(fd))
            _ = closed.wait()
            return true
        }
        let fd = CInt(opened.wait())
        #expect(model.close(fd) == 0)  // by the main thread, while the other LWP has it enabled
        #expect(model.liveKDCount == 1)
        #expect(model.threadState(thread.tid) == .init(descriptor: nil, enabled: true, mode: .none))
        closed.raise()
        #expect(thread.join())
        #expect(model.liveKDCount == 0)
        #expect(model.liveBufferCount == 1 && model.liveMappingCount == 1)
        model.exitProcess()
        #expect(model.isClean)
    }

    @Test("kcov_basic_pc") func kcov_basic_pc() {
        basic(mode: .tracePC, dup2: false)
    }

    /// Skipped by NetBSD ("XXX: GCC8 needed"); the model runs the body.
    @Test("kcov_basic_cmp") func kcov_basic_cmp() {
        basic(mode: .traceCMP, dup2: false)
    }

    @Test("kcov_basic_dup2_pc") func kcov_basic_dup2_pc() {
        basic(mode: .tracePC, dup2: true)
    }

    /// Skipped by NetBSD ("XXX: GCC8 needed"); the model runs the body.
    @Test("kcov_basic_dup2_cmp") func kcov_basic_dup2_cmp() {
        basic(mode: .traceCMP, dup2: true)
    }

    /// open, SETBUFSIZE(PAGE/8), mmap, ENABLE, reset, `sleep(0)` (the probe), `buf[0] != 0`, DISABLE.
    private func basic(mode: Model.Mode, dup2: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        let model = Model()
        var fd = model.openDevice()
        if dup2 {
            let copy = model.dup2(fd, 2222)
            #expect(copy == 2222, sourceLocation: sourceLocation)
            #expect(model.close(fd) == 0, sourceLocation: sourceLocation)
            fd = copy
        }
        #expect(model.setBufferSize(fd, UInt64(pageEntries)) == 0, sourceLocation: sourceLocation)
        let words = Words(model.map(fd, bytes: pageBytes)!)
        #expect(model.enable(fd, mode) == 0, sourceLocation: sourceLocation)
        words.count = 0
        model.probeSyscall()
        #expect(words.count != 0, sourceLocation: sourceLocation)
        let expected = mode == .tracePC ? Model.probePCs : Model.probeComparisons.flatMap(\.words)
        #expect((mode == .tracePC ? words.pcs() : words.records()) == expected, sourceLocation: sourceLocation)
        #expect(model.disable(fd) == 0, sourceLocation: sourceLocation)
        #expect(model.release(fd, words), sourceLocation: sourceLocation)
        #expect(model.isClean, sourceLocation: sourceLocation)
    }

    @Test("kcov_multienable_on_the_same_thread") func kcov_multienable_on_the_same_thread() {
        let model = Model()
        let first = model.sized()
        let second = model.sized()
        #expect(model.enable(first, .none) == 0)
        #expect(model.enable(second, .none) == EBUSY)
        #expect(model.disable(first) == 0)
        #expect(model.close(first) == 0 && model.close(second) == 0)
        #expect(model.isClean)
    }

    @Test("kcov_buffer_access_from_custom_thread") func kcov_buffer_access_from_custom_thread() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .tracePC) == 0)
        words.count = 0
        model.probeSyscall()
        let seen = model.runOnNewThread { () -> UInt64 in
            let count = words.count
            words.count = 0
            return count
        }
        #expect(seen == UInt64(Model.probePCs.count))
        #expect(words.count == 0)
        #expect(model.disable(fd) == 0)
        #expect(model.release(fd, words))
        #expect(model.isClean)
    }

    @Test("kcov_thread") func kcov_thread() {
        let model = Model()
        let (fd, words) = model.mapped()
        #expect(model.enable(fd, .tracePC) == 0)
        let thread = model.startThread {
            for _ in 0..<1000 { model.probeSyscall() }  // getpid() × 1000
        }
        words.count = 0
        thread.awaitExit()  // spinning in user space
        #expect(words.count == 0)
        thread.join()
        #expect(model.disable(fd) == 0)
        #expect(model.release(fd, words))
        #expect(model.isClean)
    }

    @Test("kcov_multiple_threads2") func kcov_multiple_threads2() { multipleThreads(2) }
    @Test("kcov_multiple_threads4") func kcov_multiple_threads4() { multipleThreads(4) }
    @Test("kcov_multiple_threads8") func kcov_multiple_threads8() { multipleThreads(8) }
    @Test("kcov_multiple_threads16") func kcov_multiple_threads16() { multipleThreads(16) }
    @Test("kcov_multiple_threads32") func kcov_multiple_threads32() { multipleThreads(32) }

    /// `count` LWPs, each with its own fd: SETBUFSIZE(PAGE/8), mmap, ENABLE(PC), reset, `sleep(0)`,
    /// `buf[0] != 0`, DISABLE, munmap, close — concurrently.
    private func multipleThreads(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        let model = Model()
        let barrier = Barrier(count)
        let threads = (0..<count).map { index in
            model.startThread { () -> String? in
                let fd = model.open(device, flags: O_RDWR)
                guard fd >= 0, model.setBufferSize(fd, UInt64(pageEntries)) == 0,
                      let address = model.map(fd, bytes: pageBytes)
                else { return "thread \(index): setup" }
                let words = Words(address)
                guard model.enable(fd, .tracePC) == 0 else { return "thread \(index): enable" }
                barrier.arriveAndWait()
                words.count = 0
                model.probeSyscall()
                guard words.count != 0 else { return "thread \(index): empty" }
                guard words.pcs() == Model.probePCs else { return "thread \(index): \(words.pcs())" }
                guard model.disable(fd) == 0 else { return "thread \(index): disable" }
                guard model.release(fd, words) else { return "thread \(index): release" }
                return nil
            }
        }
        #expect(threads.compactMap { $0.join() } == [], sourceLocation: sourceLocation)
        #expect(model.isClean, sourceLocation: sourceLocation)
    }
}
