#if canImport(Glibc)
import CoverageAPI
import Glibc
#endif
import KernelSeam
import ReferenceModels
import Synchronization
import Testing

extension OpenBSDKcovModel: AuditedModel {}

/// The OpenBSD model against `sys/dev/kcov.c` 1.51 as Docs/kcov-openbsd.md states it, at the
/// seam: arguments by pointer, each ioctl's checks in order with their errnos, remote attach, mmap
/// page by page, DYING and `kcov_exit`, and slots claimed before they are written.
@Suite struct OpenBSDKcovModelTests {
    typealias Request = OpenBSDKcovModel.Request

    func open(_ model: OpenBSDKcovModel) -> CInt {
        let fd = model.open("/dev/kcov", flags: O_RDWR)
        precondition(fd >= 2000)
        return fd
    }
    func setSize(_ model: OpenBSDKcovModel, _ fd: CInt, _ entries: UInt64) -> CInt {
        var value = entries
        return errnoOf(withUnsafeMutableBytes(of: &value) { model.ioctl(fd, Request.setBufferSize, pointer: $0.baseAddress!) })
    }
    func enable(_ model: OpenBSDKcovModel, _ fd: CInt, _ mode: Int32) -> CInt {
        var value = mode
        return errnoOf(withUnsafeMutableBytes(of: &value) { model.ioctl(fd, Request.enable, pointer: $0.baseAddress!) })
    }
    func disable(_ model: OpenBSDKcovModel, _ fd: CInt) -> CInt { errnoOf(model.ioctl(fd, Request.disable, value: 0)) }
    func attach(_ model: OpenBSDKcovModel, _ fd: CInt, subsystem: Int32, id: Int32 = 0) -> CInt {
        var value = (subsystem, id)
        return errnoOf(withUnsafeMutableBytes(of: &value) { model.ioctl(fd, Request.remoteAttach, pointer: $0.baseAddress!) })
    }

    @Test("KIOSETBUFSIZE: state (EBUSY), then 1 … 512 Ki (EINVAL); one entry is accepted and holds nothing")
    func setBufferSize() {
        let model = OpenBSDKcovModel()
        let fd = open(model)
        #expect(setSize(model, fd, 0) == EINVAL)
        #expect(setSize(model, fd, (512 << 10) + 1) == EINVAL)
        #expect(errnoOf(model.ioctl(fd, Request.setBufferSize, value: 2)) == EFAULT, "by value, 2 is an address")
        #expect(setSize(model, fd, 1) == 0)
        #expect(setSize(model, fd, 0) == EBUSY)
        #expect(model.map(fd, bytes: 4096) == nil && errno == EINVAL, "a one-entry buffer cannot be mapped")
        #expect(enable(model, fd, 1) == 0)
        model.probeSyscall()
        #expect(disable(model, fd) == 0)
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("KIOENABLE: the thread's binding (EBUSY), then the state (ENXIO), then the mode (EINVAL)")
    func enableOrder() {
        let model = OpenBSDKcovModel()
        let first = open(model)
        let second = open(model)
        #expect(enable(model, first, 1) == ENXIO, "NONE")
        #expect(setSize(model, first, 512) == 0)
        #expect(setSize(model, second, 512) == 0)
        #expect(enable(model, first, 0) == EINVAL, "KCOV_MODE_NONE is refused")
        #expect(enable(model, first, 3) == EINVAL)
        #expect(enable(model, first, 2) == 0)
        #expect(enable(model, first, 1) == EBUSY, "this thread is bound: EBUSY before the state")
        #expect(enable(model, second, 9) == EBUSY, "the binding is checked before the mode too")
        #expect(POSIXThread.run { enable(model, first, 1) } == ENXIO, "another thread meets TRACE")
        #expect(disable(model, first) == 0)
        _ = model.close(first)
        _ = model.close(second)
        #expect(model.isClean)
    }

    @Test("KIODISABLE: EPERM unless the caller's or a remote; ENXIO for a remote not tracing; unknown requests are ENOTTY")
    func disableAndUnknown() {
        let model = OpenBSDKcovModel()
        let fd = open(model)
        #expect(disable(model, fd) == EPERM)
        #expect(setSize(model, fd, 512) == 0)
        #expect(enable(model, fd, 1) == 0)
        #expect(POSIXThread.run { disable(model, fd) } == EPERM)
        #expect(disable(model, fd) == 0)
        #expect(errnoOf(model.ioctl(fd, 0x2000_4b7f, value: 0)) == ENOTTY)
        #expect(attach(model, fd, subsystem: 0) == 0)
        #expect(disable(model, fd) == ENXIO, "attached but not tracing")
        _ = model.close(fd)
        #expect(model.isClean)
    }

    @Test("KIOREMOTEATTACH: state (ENXIO), subsystem (EINVAL), one per process (EBUSY); tasks record, any thread disables, the caller's binding is cleared")
    func remote() throws {
        let model = OpenBSDKcovModel()
        let fd = open(model)
        #expect(attach(model, fd, subsystem: 0) == ENXIO, "NONE")
        #expect(setSize(model, fd, 512) == 0)
        #expect(attach(model, fd, subsystem: 1) == EINVAL)
        #expect(attach(model, fd, subsystem: 0, id: 77) == 0, "the id is ignored")
        let other = open(model)
        #expect(setSize(model, other, 512) == 0)
        #expect(attach(model, other, subsystem: 0) == EBUSY)
        let buffer = Words(try #require(model.map(fd, bytes: 4096)))
        #expect(enable(model, fd, 1) == 0)
        #expect(!model.threadIsBound(model.tid), "remote coverage does not bind the thread")
        buffer.count = 0
        model.probeSyscall()
        #expect(buffer.count == 0)
        #expect(model.runKernelTask() == OpenBSDKcovModel.remoteTaskPath.pcs.count)
        #expect(buffer.pcs() == OpenBSDKcovModel.remoteTaskPath.pcs)
        // A local binding of the thread that disables the remote is lost (`p->p_kd = NULL`).
        #expect(enable(model, other, 1) == 0)
        #expect(model.threadIsBound(model.tid))
        #expect(disable(model, fd) == 0)
        #expect(!model.threadIsBound(model.tid))
        #expect(model.state(of: other) == .trace, "left tracing with no thread")
        _ = model.munmap(buffer.raw, length: 4096)
        _ = model.close(fd)
        #expect(!model.remoteAttached, "close detaches")
        _ = model.close(other)
    }

    @Test("mmap: every page must lie below (entries − 1) × 8 bytes; shorter ranges and page offsets are fine")
    func mmapRules() throws {
        let model = OpenBSDKcovModel()
        let fd = open(model)
        #expect(model.map(fd, bytes: 4096) == nil && errno == EINVAL, "no buffer")
        #expect(setSize(model, fd, 513) == 0)
        #expect(model.map(fd, bytes: 513 * 8) == nil && errno == EINVAL, "page 2 starts at 4096 = 512 × 8")
        let first = try #require(model.map(fd, bytes: 4096))
        _ = model.munmap(first, length: 4096)
        let other = open(model)
        #expect(setSize(model, other, 1024) == 0)
        let whole = try #require(model.map(other, bytes: 8192))
        let second = try #require(model.map(other, bytes: 4096, offset: 4096))
        #expect(second == whole + 4096)
        #expect(model.map(other, bytes: 4096, offset: 8192) == nil && errno == EINVAL)
        _ = model.munmap(whole, length: 8192)
        _ = model.munmap(second, length: 4096)
        _ = model.close(fd)
        _ = model.close(other)
        #expect(model.isClean)
    }

    @Test("close while tracing: DYING stops tracing, the thread stays busy, kcov_exit frees it; close always succeeds")
    func closeWhileTracing() {
        let model = OpenBSDKcovModel()
        let outcome = Mutex<[CInt]>([])
        model.startThread { [self] in
            let fd = open(model)
            precondition(setSize(model, fd, 512) == 0)
            precondition(enable(model, fd, 1) == 0)
            let closed = errnoOf(model.close(fd))
            let next = open(model)
            precondition(setSize(model, next, 512) == 0)
            let busy = enable(model, next, 1)
            _ = model.close(next)
            outcome.withLock { $0 = [closed, busy, CInt(model.liveDescriptorCount)] }
        }()
        #expect(outcome.withLock { $0 } == [0, EBUSY, 1])
        #expect(model.liveDescriptorCount == 0)
        #expect(model.isClean)
    }

    @Test("slots are claimed before they are written: nmemb − 1 PCs, ⌊(nmemb − 1)/4⌋ records")
    func bufferFormats() throws {
        let model = OpenBSDKcovModel()
        let fd = open(model)
        #expect(setSize(model, fd, 512) == 0)
        let buffer = Words(try #require(model.map(fd, bytes: 4096)))
        #expect(enable(model, fd, 1) == 0)
        buffer.count = 0
        model.probeSyscall()
        #expect(buffer.pcs() == OpenBSDKcovModel.probePCs)
        for _ in 0..<100 { model.probeSyscall() }
        #expect(buffer.count == 511)
        #expect(disable(model, fd) == 0)
        #expect(enable(model, fd, 2) == 0)
        buffer.count = 0
        model.probeSyscall()
        let words = buffer.records()
        #expect(words.count == 4 * OpenBSDKcovModel.probeComparisons.count)
        #expect(Array(words.suffix(4)) == [5, 0xffff_fffe, 9, words.last!], "switch: CONST set, the case, then the value")
        for _ in 0..<200 { model.probeSyscall() }
        #expect(buffer.count == 127)
        #expect(disable(model, fd) == 0)
        _ = model.munmap(buffer.raw, length: 4096)
        _ = model.close(fd)
    }

    @Test("a kcov fd cannot be sent over a socket; a forked child's exit returns the fd before the reap")
    func descriptorsAndChildren() throws {
        let model = OpenBSDKcovModel()
        let fd = open(model)
        #expect(model.sendOverSocket(fd) == EINVAL)
        #expect(model.sendOverSocket(9999) == EBADF)
        #expect(setSize(model, fd, 512) == 0)
        let buffer = try #require(model.map(fd, bytes: 4096))
        let outcome = model.spawnEnabled(
            Command(path: "/bin/true", arguments: ["true"], environment: []), fd: fd,
            enable: EnableCall(request: Request.enable, argument: 1, byPointer: true), buffer: buffer, bufferBytes: 4096)
        guard case .running(let pid) = outcome else { Issue.record("\(outcome)"); return }
        #expect(Words(buffer).pcs().contains(OpenBSDKcovModel.probePCs[1]), "tracing survives exec")
        #expect(enable(model, fd, 1) == 0, "kcov_exit ran at the child's exit")
        #expect(disable(model, fd) == 0)
        #expect(model.waitForExit(pid) == .exited(0))
        _ = model.munmap(buffer, length: 4096)
        _ = model.close(fd)
        #expect(model.isClean)
    }
}
