#if canImport(Glibc)
import CoverageAPI
import Glibc
#endif
import KernelSeam
import ReferenceModels
import Synchronization
import Testing

extension FreeBSDKcovModel: AuditedModel {}

/// The FreeBSD model against `sys/kern/kern_kcov.c` as Docs/kcov-freebsd.md states it, at the seam:
/// request numbers, arguments by value, each ioctl's checks in order with their errnos, mmap, the
/// state machine through close and thread destruction, and the buffer formats.
@Suite struct FreeBSDKcovModelTests {
    typealias Request = FreeBSDKcovModel.Request
    static let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    func open(_ model: FreeBSDKcovModel) -> CInt {
        let fd = model.open("/dev/kcov", flags: O_RDWR)
        precondition(fd >= 2000)
        return fd
    }
    func setSize(_ model: FreeBSDKcovModel, _ fd: CInt, _ entries: UInt) -> CInt { errnoOf(model.ioctl(fd, Request.setBufferSize, value: entries)) }
    func enable(_ model: FreeBSDKcovModel, _ fd: CInt, _ mode: Int32) -> CInt {
        errnoOf(model.ioctl(fd, Request.enable, value: UInt(bitPattern: Int(mode))))
    }
    func disable(_ model: FreeBSDKcovModel, _ fd: CInt) -> CInt { errnoOf(model.ioctl(fd, Request.disable, value: 0)) }

    @Test("KIOSETBUFSIZE: state first (EBUSY), then 2 … kern.kcov.max_entries (EINVAL)")
    func setBufferSize() {
        let model = FreeBSDKcovModel(maxEntries: 1024)
        let fd = open(model)
        #expect(setSize(model, fd, 0) == EINVAL)
        #expect(setSize(model, fd, 1) == EINVAL)
        #expect(setSize(model, fd, 1025) == EINVAL)
        #expect(model.state(of: fd) == .open, "a refused size leaves the fd OPEN")
        #expect(setSize(model, fd, 1024) == 0)
        #expect(model.state(of: fd) == .ready)
        // Already READY: EBUSY even for a size that would be refused.
        #expect(setSize(model, fd, 0) == EBUSY)
        #expect(setSize(model, fd, 2) == EBUSY)
        #expect(model.close(fd) == 0)
        #expect(model.isClean)
    }

    @Test("the argument is the value, truncated to an int; a pointer is taken as its number")
    func argumentsByValue() {
        let model = FreeBSDKcovModel()
        let fd = open(model)
        defer { _ = model.close(fd) }
        var entries: UInt64 = 512
        // A pointer to 512 is some large number: EINVAL, not 512 entries.
        #expect(errnoOf(withUnsafeMutableBytes(of: &entries) { model.ioctl(fd, Request.setBufferSize, pointer: $0.baseAddress!) }) == EINVAL)
        #expect(setSize(model, fd, (1 << 32) | 512) == 0, "truncated to 512")
        #expect(model.state(of: fd) == .ready)
    }

    @Test("KIOENABLE: state (EBUSY), then the thread's binding (EINVAL), then the mode (EINVAL)")
    func enableOrder() {
        let model = FreeBSDKcovModel()
        let first = open(model)
        let second = open(model)
        #expect(enable(model, first, 0) == EBUSY, "not READY")
        #expect(setSize(model, first, 512) == 0)
        #expect(setSize(model, second, 512) == 0)
        #expect(enable(model, first, -1) == EINVAL)
        #expect(enable(model, first, 2) == EINVAL)
        #expect(enable(model, first, 0) == 0)
        #expect(enable(model, first, 1) == EBUSY, "RUNNING: the state is checked first")
        #expect(enable(model, second, 0) == EINVAL, "the thread has an info")
        #expect(enable(model, second, 7) == EINVAL)
        let other = POSIXThread.run { enable(model, first, 0) }
        #expect(other == EBUSY, "another thread meets RUNNING first")
        #expect(disable(model, first) == 0)
        _ = model.close(first)
        _ = model.close(second)
        #expect(model.isClean)
    }

    @Test("KIODISABLE: EINVAL unless RUNNING and the caller's info; unknown requests are EINVAL")
    func disableAndUnknown() {
        let model = FreeBSDKcovModel()
        let fd = open(model)
        #expect(disable(model, fd) == EINVAL)
        #expect(setSize(model, fd, 512) == 0)
        #expect(disable(model, fd) == EINVAL)
        #expect(enable(model, fd, 0) == 0)
        #expect(POSIXThread.run { disable(model, fd) } == EINVAL)
        #expect(disable(model, fd) == 0)
        #expect(disable(model, fd) == EINVAL)
        #expect(errnoOf(model.ioctl(fd, 0x2000_637f, value: 0)) == EINVAL)
        #expect(errnoOf(model.ioctl(fd, 0x8008_4b01, value: 0)) == EINVAL, "NetBSD's SETBUFSIZE is nothing here")
        _ = model.close(fd)
    }

    @Test("mmap: private EINVAL, protection other than read-write EINVAL, no buffer or another length EINVAL; the offset is ignored")
    func mmapRules() throws {
        let model = FreeBSDKcovModel()
        let fd = open(model)
        let words = 2 * Self.page / 8
        #expect(model.map(fd, bytes: 2 * Self.page) == nil && errno == EINVAL, "no buffer")
        #expect(setSize(model, fd, UInt(words)) == 0)
        #expect(model.map(fd, bytes: Self.page) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: 3 * Self.page) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: 2 * Self.page, protection: PROT_READ) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: 2 * Self.page, protection: PROT_READ | PROT_WRITE | PROT_EXEC) == nil && errno == EINVAL)
        #expect(model.map(fd, bytes: 2 * Self.page, flags: MAP_PRIVATE) == nil && errno == EINVAL)
        let first = try #require(model.map(fd, bytes: 2 * Self.page))
        let second = try #require(model.map(fd, bytes: 2 * Self.page, offset: Self.page))
        #expect(first == second, "the offset is forced to 0")
        // A size that is not whole pages can never be mapped.
        let odd = open(model)
        #expect(setSize(model, odd, 600) == 0)
        #expect(model.map(odd, bytes: 600 * 8) == nil && errno == EINVAL)
        _ = model.close(odd)
        // The mappings outlive close.
        Words(first)[0] = 42
        #expect(model.close(fd) == 0)
        #expect(Words(second)[0] == 42)
        #expect(model.liveBufferCount == 1)
        #expect(model.munmap(first, length: 2 * Self.page) == 0)
        #expect(model.munmap(second, length: 2 * Self.page) == 0)
        #expect(model.isClean)
    }

    @Test("close of a RUNNING fd: EBUSY but closed; DYING stops tracing; the thread stays bound until destroyed, which frees it")
    func closeWhileRunning() throws {
        let model = FreeBSDKcovModel()
        let outcome = Mutex<[String]>([])
        let join = model.startThread { [self] in
            let fd = open(model)
            precondition(setSize(model, fd, 512) == 0)
            let buffer = Words(model.map(fd, bytes: 4096)!)
            precondition(enable(model, fd, 0) == 0)
            let closed = errnoOf(model.close(fd))
            buffer.count = 0
            model.probeSyscall()
            let next = open(model)
            precondition(setSize(model, next, 512) == 0)
            let busy = enable(model, next, 0)
            _ = model.close(next)
            outcome.withLock { $0 = ["\(closed)", "\(buffer.count)", "\(busy)", "\(errnoOf(model.close(fd)))", "\(model.liveInfoCount)"] }
            _ = model.munmap(buffer.raw, length: 4096)
        }
        join()
        #expect(outcome.withLock { $0 } == ["\(EBUSY)", "0", "\(EINVAL)", "\(EBADF)", "1"])
        #expect(model.liveInfoCount == 0, "the thread's destruction freed the DYING info")
        #expect(model.isClean)
    }

    @Test("a thread's destruction returns its fd to READY for another thread")
    func threadDestruction() {
        let model = FreeBSDKcovModel()
        let fd = open(model)
        #expect(setSize(model, fd, 512) == 0)
        model.startThread { [self] in precondition(enable(model, fd, 0) == 0) }()
        #expect(model.state(of: fd) == .ready)
        #expect(POSIXThread.run { enable(model, fd, 1) } == 0)
        _ = model.close(fd)
    }

    @Test("PC: entries − 1 PCs, then silent drops; CMP: ⌊(entries − 1)/4⌋ records; switches FreeBSD's way")
    func bufferFormats() throws {
        let model = FreeBSDKcovModel()
        let fd = open(model)
        #expect(setSize(model, fd, 512) == 0)
        let buffer = Words(try #require(model.map(fd, bytes: 4096)))
        #expect(enable(model, fd, 0) == 0)
        buffer.count = 0
        model.probeSyscall()
        #expect(buffer.pcs() == FreeBSDKcovModel.probePCs)
        for _ in 0..<100 { model.probeSyscall() }
        #expect(buffer.count == 511)
        #expect(disable(model, fd) == 0)
        #expect(enable(model, fd, 1) == 0)
        buffer.count = 0
        model.probeSyscall()
        let words = buffer.records()
        #expect(disable(model, fd) == 0)
        let records = stride(from: 0, to: words.count, by: 4).map { Array(words[$0..<$0 + 4]) }
        #expect(records.count == FreeBSDKcovModel.probeComparisons.count)
        let switches = records.suffix(2)
        #expect(switches.allSatisfy { $0[0] & 1 == 0 && $0[1] == 9 | 1 }, "no CONST bit; arg1 is the value | 1")
        #expect(switches.map { $0[2] } == [0xffff_fffd, 0xffff_fffe], "arg2 is the case")
        #expect(enable(model, fd, 1) == 0)
        buffer.count = 0
        for _ in 0..<200 { model.probeSyscall() }
        #expect(buffer.count == 127, "⌊511 / 4⌋ records")
        // A count the user scribbled past the end wraps in uint64 and is not written outside.
        buffer.count = UInt64.max - 1
        model.probeSyscall()
        #expect(disable(model, fd) == 0)
        _ = model.munmap(buffer.raw, length: 4096)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("a forked child's thread is destroyed at the reap: until then the fd stays RUNNING")
    func forkedChild() throws {
        let model = FreeBSDKcovModel()
        let fd = open(model)
        #expect(setSize(model, fd, 512) == 0)
        let buffer = try #require(model.map(fd, bytes: 4096))
        let outcome = model.spawnEnabled(
            Command(path: "/bin/true", arguments: ["true"], environment: []), fd: fd,
            enable: EnableCall(request: Request.enable, argument: 0, byPointer: false), buffer: buffer, bufferBytes: 4096)
        guard case .running(let pid) = outcome else { Issue.record("\(outcome)"); return }
        #expect(Words(buffer).pcs().contains(FreeBSDKcovModel.probePCs[2]))
        #expect(enable(model, fd, 0) == EBUSY, "the child's thread is not destroyed yet")
        #expect(model.waitForExit(pid) == .exited(0))
        #expect(enable(model, fd, 0) == 0)
        #expect(disable(model, fd) == 0)
        _ = model.munmap(buffer, length: 4096)
        _ = model.close(fd)
        #expect(model.isClean)
    }
}
