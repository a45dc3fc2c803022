#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
package import KernelSeam
package import CoverageAPI
import Synchronization

/// A simulated OpenBSD kcov(4) driver (`sys/dev/kcov.c` 1.51) behind the seam, written from
/// `Docs/kcov-openbsd.md`: the truth the OpenBSD backend is tested against, since no OpenBSD
/// kernel runs here.
///
/// It keeps each open's `struct kcov_dev` with its states NONE → READY → TRACE → DYING
/// (Docs/kcov-openbsd.md#device-and-open), each thread's `p_kd`, and the process's remote
/// registration; it answers each ioctl with the kernel's checks in the kernel's order and errnos
/// (Docs/kcov-openbsd.md#ioctls), mmap as `kcovmmap` and `udv_attach` do
/// (Docs/kcov-openbsd.md#mmap), and claims buffer slots with a compare-and-swap *before* writing
/// them, as `kd_claim` does (Docs/kcov-openbsd.md#buffer-layout).
///
/// What it simulates, and how:
/// - **Arguments by pointer.** KIOSETBUFSIZE, KIOENABLE and KIOREMOTEATTACH are `_IOW`: their
///   bytes are copied in from the address passed; a value argument is that address (EFAULT for a
///   small number), as NetBSD's model does.
/// - **Threads** are the callers' real kernel thread ids. ``startThread(_:)`` and
///   ``runInForkedChild(_:)`` run closures on new real threads; when one returns, `kcov_exit` runs for it
///   at once (OpenBSD calls it from `exit1`, before the thread is reaped).
/// - **Kernel execution.** ``probeSyscall()`` executes ``probePath``; other seam calls
///   ``syscallPath``; an ioctl ``ioctlEntryPath`` and ``ioctlExitPath`` around the driver. Each is
///   recorded only while the thread's `p_kd` is tracing in the matching mode.
///   ``runKernelTask()`` runs ``remoteTaskPath`` as a kernel task of this process.
/// - **Mappings** alias the buffer. OpenBSD frees the buffer when the descriptor is freed even if
///   it is still mapped (programs must unmap first); the model cannot let memory under a live
///   mapping go, so it keeps it until the last munmap.
/// - **One process.** The remote registration is per process; forked children never attach.
///
/// Thread-safe: one lock guards the whole simulated kernel.
package final class OpenBSDKcovModel: KernelInterface, @unchecked Sendable {
    /// The model's ioctl table: OpenBSD's `sys/sys/kcov.h` 1.9 on LP64 (Docs/kcov-openbsd.md#ioctls).
    package enum Request {
        package static let setBufferSize: UInt = 0x8008_4b01
        package static let enable: UInt = 0x8004_4b02
        package static let disable: UInt = 0x2000_4b03
        package static let remoteAttach: UInt = 0x8008_4b04
    }

    /// `kd_state`.
    package enum State: Sendable, Equatable {
        case none, ready, trace, dying
    }

    /// KCOV_BUF_MAX_NMEMB in `kcov.c` 1.51.
    package static let maxEntries: UInt64 = 512 << 10

    package let devicePath: String
    package let deviceExists: Bool
    package let accessAllowed: Bool
    private let kernel = LockedKernel(OpenBSDKcovKernel())

    /// An OpenBSD kernel with kcov at `devicePath`; the knobs simulate a missing node (ENOENT) and a
    /// caller without permission (EACCES).
    package init(devicePath: String = "/dev/kcov", deviceExists: Bool = true, accessAllowed: Bool = true) {
        self.devicePath = devicePath
        self.deviceExists = deviceExists
        self.accessAllowed = accessAllowed
    }

    deinit {
        kernel.withKernel { $0.tearDown() }
    }

    static func threadID() -> CInt { SystemKernel().currentThreadID() }

    private func syscall<T: Sendable>(_ body: (OpenBSDKcovKernel, CInt) -> T) -> T { kernel.syscall(body) }

    func withKernel<T: Sendable>(_ body: (OpenBSDKcovKernel) -> T) -> T { kernel.withKernel(body) }

    // MARK: KernelInterface

    /// open(2): ENOENT unless the path is the device; EACCES without permission; each open is a
    /// new clone minor with its own `kcov_dev` in NONE.
    package func open(_ path: String, flags: CInt) -> CInt {
        finishSyscall(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            guard path == devicePath, deviceExists else { return -ENOENT }
            guard accessAllowed else { return -EACCES }
            return kernel.open()
        })
    }

    /// close(2) (`kcovclose`): a descriptor tracing for a thread becomes DYING (tracing stops) and
    /// is freed by that thread's `kcov_exit`; anything else is freed now, with its remote. Always 0.
    package func close(_ fd: CInt) -> CInt {
        finishSyscall(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.close(fd)
        })
    }

    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        finishSyscall(syscall { kernel, tid in -kernel.ioctl(fd, request, .value(value), tid: tid) })
    }

    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        finishSyscall(syscall { kernel, tid in -kernel.ioctl(fd, request, .pointer(pointer), tid: tid) })
    }

    /// mmap(2): every page of the range must lie below `(entries − 1) × 8` bytes (`kcovmmap` per
    /// page, from `udv_attach`), else EINVAL; protection is not checked; MAP_PRIVATE is accepted
    /// (the model cannot copy on write). Returns the buffer's address plus the page-aligned offset.
    package func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        kernel.mmap(running: Self.syscallPath) { $0.mmap(length: length, flags: flags, fd: fd, offset: offset) }
    }

    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        finishSyscall(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.munmap(UInt(bitPattern: address), length: length)
        })
    }

    package func currentThreadID() -> CInt { kernel.currentThreadID(running: Self.syscallPath) }

    /// `read(-1, NULL, 0)`: executes ``probePath`` on the calling thread; fails with EBADF.
    package func probeSyscall() {
        kernel.run(Self.probePath)
        errno = EBADF
    }

    /// A syscall of the calling thread that runs `path`.
    package func syscall(running path: KcovKernelPath) { kernel.run(path) }

    package func readTextFile(_ path: String) -> String? {
        kernel.run(Self.syscallPath)
        errno = ENOENT
        return nil
    }

    /// A simulated `fork` + KIOENABLE + `execve` (the regress test `exec`): the child is a new real
    /// thread with no `p_kd`; it enables `fd`, "execs" `path` (tracing survives exec), makes one
    /// ``probeSyscall()`` and exits, and its `kcov_exit` returns the fd to READY before the parent
    /// reaps it.
    /// The command's arguments, environment, streams and timeout are not used: nothing is really
    /// executed.
    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        let path = command.path
        precondition(bufferBytes >= 8, "the buffer must hold its count word")
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        kernel.run(Self.syscallPath)  // fork
        let outcome = Mutex<SimulatedChildOutcome?>(nil)
        let join = startThread { [self] in
            let tid = Self.threadID()
            let result: SimulatedChildOutcome
            if simulateChildEnable(enable, fd: fd) != 0 {
                result = .enableFailed(errno)
            } else {
                withKernel { $0.record(Self.syscallPath, for: tid) }  // execve
                if let error = simulatedExecError(path) {
                    result = .execFailed(error)
                } else {
                    probeSyscall()
                    result = .exited
                }
                withKernel { $0.record(Self.syscallPath, for: tid) }  // exit
            }
            outcome.withLock { $0 = result }
        }
        join()
        return outcome.withLock { $0! }.spawnOutcome { withKernel { $0.addZombie() } }
    }

    /// The fork server's step, simulated: as ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``,
    /// the child is a new real thread without `p_kd` that takes the child's steps through this
    /// model — KIOENABLE on the inherited `fd` (its failure is
    /// ``ForkOutcome/enableFailed(errno:)``), `child`, then `exit`, whose `kcov_exit` returns the
    /// fd to READY — and the parent's wait reaps it. A thread cannot be killed, so
    /// `timeoutMilliseconds` is not applied here.
    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        kernel.run(Self.syscallPath)  // fork
        let outcome = Mutex<SimulatedForkResult?>(nil)
        withoutActuallyEscaping(child) { child in
            let body = ForkedBody(run: child)
            startThread { [self] in
                let result = simulateForkedChild(enable, fd: fd, body: body) {
                    let tid = Self.threadID()
                    withKernel { $0.record(Self.syscallPath, for: tid) }  // exit
                }
                outcome.withLock { $0 = result }
            }()
        }
        switch outcome.withLock({ $0! }) {
        case .enableFailed(let code):
            return .enableFailed(errno: code)
        case .exited(let status):
            let pid = withKernel { $0.addZombie() }
            _ = waitForExit(pid)
            return .finished(pid: pid, status: .exited(status), timedOut: false)
        }
    }

    package func waitForExit(_ pid: CInt) -> ExitStatus {
        let reaped = syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return kernel.zombies.remove(pid) != nil
        }
        precondition(reaped, "wait(\(pid)): not a child of this model")
        return .exited(0)
    }

    // MARK: Threads, children, tasks and process exit

    /// Starts `body` on a new real thread; when it returns, `kcov_exit` runs for it
    /// (Docs/kcov-openbsd.md#thread-exit). The returned closure joins it.
    package func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        startModelThread(body, exited: { [self] tid in
            withKernel { $0.kcovExit(tid) }
            return 0
        }, reaped: { _ in })
    }

    /// Runs `body` as a forked child (a new thread without `p_kd`, sharing the fds and mappings)
    /// and waits for it to exit.
    package func runInForkedChild(_ body: @escaping @Sendable () -> Void) {
        kernel.run(Self.syscallPath)  // fork
        startThread(body)()
    }

    /// sendmsg(2) of `fd` with SCM_RIGHTS: `unp_internalize` refuses kcov descriptors (EINVAL,
    /// `kcov_vnode`); an fd the model did not hand out is EBADF. Returns 0 or the errno.
    package func sendOverSocket(_ fd: CInt) -> CInt {
        syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return kernel.files[fd] == nil ? EBADF : EINVAL
        }
    }

    /// A kernel task queued on behalf of this process runs (`taskq_thread` between
    /// `kcov_remote_enter` and `kcov_remote_leave`): ``remoteTaskPath`` is recorded into the
    /// attached descriptor while it traces. Returns the entries appended.
    @discardableResult
    package func runKernelTask() -> Int {
        kernel.withKernel { $0.runRemoteTask(Self.remoteTaskPath) }
    }

    /// Runs `body` on a new thread of the model (``startThread(_:)``: its exit path runs when
    /// `body` returns, Docs/kcov-openbsd.md#thread-exit), joins it and returns `body`'s result.
    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        runOnModelThread(startThread, body)
    }

    /// The simulated process exits without cleaning up: every fd is closed, every mapping goes,
    /// every thread runs `kcov_exit`. The model can be used again afterwards.
    package func exitProcess() {
        kernel.withKernel { $0.exitProcess() }
    }

    // MARK: Inspection for tests

    package var openDescriptorCount: Int { kernel.withKernel { $0.files.count } }
    package var liveMappingCount: Int { kernel.withKernel { $0.mappings.count } }
    /// Buffers allocated by KIOSETBUFSIZE and not yet freed.
    package var liveBufferCount: Int { kernel.withKernel { $0.buffers.live } }
    /// `kcov_dev`s not yet freed (a DYING one waits for its thread's exit).
    package var liveDescriptorCount: Int { kernel.withKernel { $0.liveDevs } }
    package var remoteAttached: Bool { kernel.withKernel { $0.remote != nil } }
    package func state(of fd: CInt) -> State? { kernel.withKernel { $0.files[fd]?.state } }
    package func threadIsBound(_ tid: CInt) -> Bool { kernel.withKernel { $0.threads[tid] != nil } }
}

/// `struct kcov_dev` (Docs/kcov-openbsd.md#device-and-open).
final class OpenBSDKcovDev {
    var state: OpenBSDKcovModel.State = .none
    var mode: Int32 = 0
    var buffer: BSDKcovBuffer?
    /// `kd_nmemb`: the entries less the count word.
    var nmemb: UInt64 = 0
    /// Attached to the process's remote registration (`kd_kr`).
    var remote = false
}

/// The whole simulated kernel: clone minors, `p_kd` per thread, the remote registration, mappings.
final class OpenBSDKcovKernel: KernelPathRecorder {
    typealias Model = OpenBSDKcovModel

    static let modePC: Int32 = 1
    static let modeCMP: Int32 = 2

    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    var files: [CInt: OpenBSDKcovDev] = [:]
    var threads: [CInt: OpenBSDKcovDev] = [:]
    /// The kcov_dev attached to this process's KCOV_REMOTE_COMMON registration.
    var remote: OpenBSDKcovDev?
    var mappings = BSDKcovMappings()
    let buffers = BSDKcovBuffer.Ledger()
    var zombies: Set<CInt> = []
    var nextPid: CInt = 400_000
    var liveDevs = 0

    // MARK: Recording (Docs/kcov-openbsd.md#buffer-layout)

    func record(_ path: KcovKernelPath, for tid: CInt) {
        guard let dev = threads[tid] else { return }
        record(path, into: dev)
    }

    /// `kd_curproc(mode)` then the hooks: PCs with stride 1, comparisons with stride 4. Returns the
    /// records appended.
    @discardableResult
    func record(_ path: KcovKernelPath, into dev: OpenBSDKcovDev) -> Int {
        guard let buffer = dev.buffer else { return 0 }
        var appended = 0
        switch dev.mode {
        case Self.modePC:
            for pc in path.pcs {
                let index = claim(dev, buffer, stride: 1)
                guard index != 0 else { continue }
                _ = buffer.store(pc, at: index)
                appended += 1
            }
        case Self.modeCMP:
            for comparison in path.comparisons {
                let index = claim(dev, buffer, stride: 4)
                guard index != 0 else { continue }
                for (offset, word) in comparison.words.enumerated() { _ = buffer.store(word, at: index &+ UInt64(offset)) }
                appended += 1
            }
        default:
            break
        }
        return appended
    }

    /// `kd_claim`: while `stride * (idx + 1) <= kd_nmemb`, move the count from `idx` to `idx + 1`
    /// with a compare-and-swap (retrying with the value found) and return `idx * stride + 1`; 0
    /// when it does not fit. The count is published before the record is written.
    private func claim(_ dev: OpenBSDKcovDev, _ buffer: BSDKcovBuffer, stride: UInt64) -> UInt64 {
        var index = buffer[0]
        while true {
            guard stride &* (index &+ 1) <= dev.nmemb else { return 0 }
            if buffer.exchangeCount(expected: index, desired: index &+ 1) { return index &* stride &+ 1 }
            index = buffer[0]
        }
    }

    func runRemoteTask(_ path: KcovKernelPath) -> Int {
        guard let dev = remote, dev.state == .trace else { return 0 }
        return record(path, into: dev)
    }

    // MARK: Descriptors

    func open() -> CInt {
        let fd = (CInt(2000)...).first { files[$0] == nil }!
        files[fd] = OpenBSDKcovDev()
        liveDevs += 1
        return fd
    }

    /// `kcovclose`: TRACE without a remote → DYING (mode NONE); otherwise `kd_free`.
    func close(_ fd: CInt) -> CInt {
        guard let dev = files.removeValue(forKey: fd) else { return EBADF }
        if dev.state == .trace && !dev.remote {
            dev.state = .dying
            dev.mode = 0
        } else {
            free(dev)
        }
        return 0
    }

    /// `kd_free`: the remote registration goes with it, then the buffer.
    private func free(_ dev: OpenBSDKcovDev) {
        if dev.remote, remote === dev {
            remote = nil
            dev.remote = false
        }
        dev.buffer?.release()
        dev.buffer = nil
        liveDevs -= 1
    }

    // MARK: ioctl (Docs/kcov-openbsd.md#ioctls)

    func ioctl(_ fd: CInt, _ request: UInt, _ argument: ModelIoctlArgument, tid: CInt) -> CInt {
        guard let dev = files[fd] else {
            record(Model.syscallPath, for: tid)
            return EBADF
        }
        record(Model.ioctlEntryPath, for: tid)
        defer { record(Model.ioctlExitPath, for: tid) }
        // sys_ioctl: IOC_IN copies IOCPARM_LEN bytes in from the argument's address first.
        var data = ModelIoctlData(bytes: [])
        let length = Int((request >> 16) & 0x1fff)
        if request & 0x8000_0000 != 0, length > 0 {
            switch copyIn(argument, count: length) {
            case .success(let bytes): data = ModelIoctlData(bytes: bytes)
            case .failure(let error): return error.code
            }
        }
        switch request {
        case Model.Request.setBufferSize: return setBufferSize(dev, entries: data.uint64(at: 0))
        case Model.Request.enable: return enable(dev, mode: data.int32(at: 0), tid: tid)
        case Model.Request.disable: return disable(dev, tid: tid)
        case Model.Request.remoteAttach: return remoteAttach(dev, subsystem: data.int32(at: 0))
        default: return ENOTTY
        }
    }

    /// `kd_init`: not NONE → EBUSY; 0 or more than KCOV_BUF_MAX_NMEMB → EINVAL; no memory → ENOMEM.
    private func setBufferSize(_ dev: OpenBSDKcovDev, entries: UInt64) -> CInt {
        guard dev.state == .none else { return EBUSY }
        guard entries != 0, entries <= Model.maxEntries else { return EINVAL }
        guard let buffer = BSDKcovBuffer(entries: Int(entries), pageSize: pageSize, ledger: buffers) else { return ENOMEM }
        dev.buffer = buffer
        dev.nmemb = entries - 1
        dev.state = .ready
        return 0
    }

    /// KIOENABLE: the thread has a `p_kd` → EBUSY; not READY → ENXIO; mode not PC or CMP →
    /// EINVAL; then TRACE, bound to the thread unless attached to a remote.
    private func enable(_ dev: OpenBSDKcovDev, mode: Int32, tid: CInt) -> CInt {
        guard threads[tid] == nil else { return EBUSY }
        guard dev.state == .ready else { return ENXIO }
        guard mode == Self.modePC || mode == Self.modeCMP else { return EINVAL }
        dev.state = .trace
        dev.mode = mode
        if !dev.remote { threads[tid] = dev }
        return 0
    }

    /// KIODISABLE: not the thread's `p_kd` and not remote → EPERM; not TRACE → ENXIO; then READY,
    /// and the thread's `p_kd` is cleared — on the remote path too, whatever it pointed at.
    private func disable(_ dev: OpenBSDKcovDev, tid: CInt) -> CInt {
        guard threads[tid] === dev || dev.remote else { return EPERM }
        guard dev.state == .trace else { return ENXIO }
        dev.state = .ready
        dev.mode = 0
        threads[tid] = nil
        return 0
    }

    /// `kcov_remote_attach`: not READY → ENXIO; not KCOV_REMOTE_COMMON → EINVAL; this process
    /// already registered → EBUSY. The id is ignored.
    private func remoteAttach(_ dev: OpenBSDKcovDev, subsystem: Int32) -> CInt {
        guard dev.state == .ready else { return ENXIO }
        guard subsystem == 0 else { return EINVAL }
        guard remote == nil else { return EBUSY }
        remote = dev
        dev.remote = true
        return 0
    }

    // MARK: mmap (Docs/kcov-openbsd.md#mmap)

    func mmap(length: Int, flags: CInt, fd: CInt, offset: Int) -> Result<UnsafeMutableRawPointer, Errno> {
        guard let dev = files[fd] else { return .failure(Errno(EBADF)) }
        let kind = flags & (MAP_SHARED | MAP_PRIVATE)
        guard kind == MAP_SHARED || kind == MAP_PRIVATE else { return .failure(Errno(EINVAL)) }
        guard offset >= 0, offset % pageSize == 0, let size = pageRounded(length, pageSize: pageSize) else { return .failure(Errno(EINVAL)) }
        let limit = dev.nmemb &* 8
        for page in stride(from: offset, to: offset + size, by: pageSize) where UInt64(page) >= limit {
            return .failure(Errno(EINVAL))
        }
        guard let buffer = dev.buffer else { return .failure(Errno(EINVAL)) }
        let address = buffer.base + offset
        mappings.add(buffer, at: address, bytes: size)
        return .success(address)
    }

    func munmap(_ address: UInt, length: Int) -> CInt {
        guard let size = pageRounded(length, pageSize: pageSize) else { return EINVAL }
        return mappings.remove(address, bytes: size)
    }

    // MARK: Threads (Docs/kcov-openbsd.md#thread-exit)

    /// `kcov_exit`: a DYING descriptor is freed; any other goes back to READY.
    func kcovExit(_ tid: CInt) {
        guard let dev = threads.removeValue(forKey: tid) else { return }
        if dev.state == .dying {
            free(dev)
        } else {
            dev.state = .ready
            dev.mode = 0
        }
    }

    func addZombie() -> CInt {
        let pid = nextPid
        nextPid += 1
        zombies.insert(pid)
        return pid
    }

    func exitProcess() {
        for tid in threads.keys.sorted() { kcovExit(tid) }
        for fd in files.keys.sorted() { _ = close(fd) }
        mappings.removeAll()
        zombies = []
    }

    func tearDown() {
        let held = files.values.compactMap(\.buffer) + mappings.buffers + threads.values.compactMap(\.buffer)
        for buffer in held { buffer.tearDown() }
        files = [:]
        threads = [:]
        remote = nil
    }
}
