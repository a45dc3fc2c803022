#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
package import KernelSeam
package import CoverageAPI
import Synchronization

/// A simulated FreeBSD kcov(4) driver (`sys/kern/kern_kcov.c`) behind the seam, written from
/// `Docs/kcov-freebsd.md`: the truth the FreeBSD backend is tested against, since no FreeBSD kernel
/// runs here.
///
/// It keeps each open's `struct kcov_info` with its state machine OPEN → READY → RUNNING → DYING
/// (Docs/kcov-freebsd.md#state-machine) and each thread's `td_kcov_info`, answers each ioctl with
/// the kernel's checks in the kernel's order (Docs/kcov-freebsd.md#ioctls), answers mmap as
/// `kcov_mmap_single` does (Docs/kcov-freebsd.md#mmap), and writes 64-bit entries as `trace_pc` and
/// `trace_cmp` do (Docs/kcov-freebsd.md#buffer-layout).
///
/// What it simulates, and how:
/// - **Arguments by value.** KIOSETBUFSIZE and KIOENABLE are `_IOWINT`: `sys_ioctl` hands the
///   driver the third argument itself, truncated to an `int`. A pointer passed to them is taken as
///   that number too, as FreeBSD would.
/// - **Threads** are the callers' real kernel thread ids. ``startThread(_:)`` runs a closure on a
///   new real thread; when it returns the thread has exited, and when it is joined the thread is
///   destroyed: `kcov_thread_dtor` runs then, returning an fd it left enabled to READY, or freeing
///   one that was closed meanwhile (Docs/kcov-freebsd.md#thread-exit).
/// - **Kernel execution.** ``probeSyscall()`` executes ``probePath`` on the calling thread; every
///   other seam call executes ``syscallPath``; an ioctl ``ioctlEntryPath`` before the driver and
///   ``ioctlExitPath`` after it. Each is recorded only while the thread's `kcov_info` is RUNNING.
/// - **close of an enabled fd** returns -1 with EBUSY (`kcov_close`) and still releases the fd; the
///   info becomes DYING, which stops tracing, and is freed when its thread is destroyed.
/// - **Mappings** alias the buffer and hold a reference on it, so they outlive close; the offset is
///   ignored (forced to 0) as `kcov_mmap_single` does.
/// - **Forked children** are simulated threads; their thread is destroyed when the parent reaps them.
///
/// Thread-safe: one lock guards the whole simulated kernel.
package final class FreeBSDKcovModel: KernelInterface, @unchecked Sendable {
    /// The model's ioctl table: FreeBSD's `sys/sys/kcov.h` (Docs/kcov-freebsd.md#ioctls).
    package enum Request {
        /// KIOENABLE, `_IOWINT('c', 2)`.
        package static let enable: UInt = 0x2004_6302
        /// KIODISABLE, `_IO('c', 3)`.
        package static let disable: UInt = 0x2000_6303
        /// KIOSETBUFSIZE, `_IOWINT('c', 4)`.
        package static let setBufferSize: UInt = 0x2004_6304
    }

    /// `kcov_state_t`.
    package enum State: Sendable, Equatable {
        case open, ready, running, dying
    }

    /// KCOV_MAXENTRIES, the default of the `kern.kcov.max_entries` sysctl.
    package static let defaultMaxEntries: UInt32 = 1 << 24

    package let devicePath: String
    package let deviceExists: Bool
    package let accessAllowed: Bool
    private let kernel: LockedKernel<FreeBSDKcovKernel>

    /// A FreeBSD kernel with kcov at `devicePath`; the knobs simulate a kernel without kcov (no
    /// node: ENOENT), a non-root caller (EACCES) and the `kern.kcov.max_entries` sysctl.
    package init(devicePath: String = "/dev/kcov", deviceExists: Bool = true, accessAllowed: Bool = true, maxEntries: UInt32 = defaultMaxEntries) {
        self.devicePath = devicePath
        self.deviceExists = deviceExists
        self.accessAllowed = accessAllowed
        kernel = LockedKernel(FreeBSDKcovKernel(maxEntries: maxEntries))
    }

    deinit {
        kernel.withKernel { $0.tearDown() }
    }

    static func threadID() -> CInt { SystemKernel().currentThreadID() }

    private func syscall<T: Sendable>(_ body: (FreeBSDKcovKernel, CInt) -> T) -> T { kernel.syscall(body) }

    func withKernel<T: Sendable>(_ body: (FreeBSDKcovKernel) -> T) -> T { kernel.withKernel(body) }

    // MARK: KernelInterface

    /// open(2): ENOENT unless the path is the device and it exists; EACCES without permission
    /// (the node is 0600 root:wheel); every open gets its own `kcov_info` in OPEN.
    package func open(_ path: String, flags: CInt) -> CInt {
        finishSyscall(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            guard path == devicePath, deviceExists else { return -ENOENT }
            guard accessAllowed else { return -EACCES }
            return kernel.open()
        })
    }

    /// close(2): the fd goes; `kcov_close` answers EBUSY for a RUNNING info, then the cdevpriv
    /// destructor moves it to DYING and frees it now unless a thread still holds it.
    package func close(_ fd: CInt) -> CInt {
        finishSyscall(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.close(fd)
        })
    }

    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        finishSyscall(syscall { kernel, tid in -kernel.ioctl(fd, request, value, tid: tid) })
    }

    /// ioctl(2) by pointer: the kcov requests are `_IOWINT`, so the kernel takes the pointer's own
    /// value as the integer argument, as FreeBSD's `sys_ioctl` would.
    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        ioctl(fd, request, value: UInt(bitPattern: pointer))
    }

    /// mmap(2) (Docs/kcov-freebsd.md#mmap): MAP_PRIVATE is EINVAL (no private mappings of a cdev),
    /// then `kcov_mmap_single`: protection other than exactly read-write EINVAL, no buffer EINVAL,
    /// page-rounded length / 8 other than the entries EINVAL; the offset is ignored.
    package func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        kernel.mmap(running: Self.syscallPath) { $0.mmap(length: length, protection: protection, flags: flags, fd: fd) }
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

    /// A simulated `fork` + KIOENABLE + `execve`: the child is a new real thread with no
    /// `td_kcov_info` that enables `fd` with `enable`, "execs" `path` (a missing or non-executable
    /// file is `.execFailed`), makes one ``probeSyscall()`` and exits. Its thread is destroyed when
    /// the parent reaps it (``waitForExit(_:)``), which returns the fd to READY; a failed child is
    /// reaped before this returns.
    /// The command's arguments, environment, streams and timeout are not used: nothing is really
    /// executed.
    package func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        let path = command.path
        precondition(bufferBytes >= 8, "the buffer must hold its count word")
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        kernel.run(Self.syscallPath)  // fork
        let outcome = Mutex<(SimulatedChildOutcome, Int)?>(nil)
        let join = startModelThread({ [self] in
            let tid = Self.threadID()
            let result: SimulatedChildOutcome
            if simulateChildEnable(enable, fd: fd) != 0 {
                result = .enableFailed(errno)
            } else if let error = simulatedExecError(path) {
                withKernel { $0.record(Self.syscallPath, for: tid) }
                result = .execFailed(error)
            } else {
                withKernel { $0.record(Self.syscallPath, for: tid) }  // execve
                probeSyscall()
                withKernel { $0.record(Self.syscallPath, for: tid) }  // exit
                result = .exited
            }
            outcome.withLock { $0 = (result, 0) }
        }, exited: { [self] tid in withKernel { $0.exitThread(tid) } },
        reaped: { [self] token in
            let exited = outcome.withLock { $0!.0 }
            if case .exited = exited {
                outcome.withLock { $0 = (exited, token) }
            } else {
                withKernel { $0.destroyThread(token) }
            }
        })
        join()
        let (result, token) = outcome.withLock { $0! }
        return result.spawnOutcome { withKernel { $0.addZombie(token) } }
    }

    /// The fork server's step, simulated: as ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``,
    /// the child is a new real thread without `td_kcov_info` that takes the child's steps through
    /// this model — KIOENABLE on the inherited `fd` (its failure is
    /// ``ForkOutcome/enableFailed(errno:)``), `child`, then `exit` — and the parent's wait reaps
    /// it, destroying its thread, which returns the fd to READY. A thread cannot be killed, so
    /// `timeoutMilliseconds` is not applied here.
    package func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        buffer.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(0, ordering: .relaxed)
        kernel.run(Self.syscallPath)  // fork
        let outcome = Mutex<(SimulatedForkResult, Int)?>(nil)
        withoutActuallyEscaping(child) { child in
            let body = ForkedBody(run: child)
            startModelThread({ [self] in
                let result = simulateForkedChild(enable, fd: fd, body: body) {
                    let tid = Self.threadID()
                    withKernel { $0.record(Self.syscallPath, for: tid) }  // exit
                }
                outcome.withLock { $0 = (result, 0) }
            }, exited: { [self] tid in withKernel { $0.exitThread(tid) } },
            reaped: { [self] token in
                let result = outcome.withLock { $0!.0 }
                if case .exited = result {
                    outcome.withLock { $0 = (result, token) }
                } else {
                    withKernel { $0.destroyThread(token) }
                }
            })()
        }
        switch outcome.withLock({ $0! }) {
        case (.enableFailed(let code), _):
            return .enableFailed(errno: code)
        case (.exited(let status), let token):
            let pid = withKernel { $0.addZombie(token) }
            _ = waitForExit(pid)
            return .finished(pid: pid, status: .exited(status), timedOut: false)
        }
    }

    /// wait(2) for a simulated child: reaping it destroys its thread (`kcov_thread_dtor`).
    package func waitForExit(_ pid: CInt) -> ExitStatus {
        let reaped = syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return kernel.reap(pid)
        }
        precondition(reaped, "wait(\(pid)): not a child of this model")
        return .exited(0)
    }

    // MARK: Threads and process exit

    /// Starts `body` on a new real thread; the returned closure joins it, and the join destroys
    /// the thread (`kcov_thread_dtor`, Docs/kcov-freebsd.md#thread-exit).
    package func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        startModelThread(body, exited: { [self] tid in withKernel { $0.exitThread(tid) } }, reaped: { [self] token in withKernel { $0.destroyThread(token) } })
    }

    /// Runs `body` on a new thread of the model (``startThread(_:)``: its exit path runs when
    /// `body` returns, Docs/kcov-freebsd.md#thread-exit), joins it and returns `body`'s result.
    package func runOnNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        runOnModelThread(startThread, body)
    }

    /// The simulated process exits without cleaning up: every fd is closed, every mapping goes,
    /// every thread is destroyed, children are reaped. The model can be used again afterwards.
    package func exitProcess() {
        kernel.withKernel { $0.exitProcess() }
    }

    // MARK: Inspection for tests

    package var openDescriptorCount: Int { kernel.withKernel { $0.files.count } }
    package var liveMappingCount: Int { kernel.withKernel { $0.mappings.count } }
    /// Buffers allocated by KIOSETBUFSIZE and not yet freed.
    package var liveBufferCount: Int { kernel.withKernel { $0.buffers.live } }
    /// `kcov_info`s not yet freed (a DYING one waits for its thread).
    package var liveInfoCount: Int { kernel.withKernel { $0.liveInfos } }
    /// Words a hook would have written outside its buffer because of a user-written count.
    package var outOfBoundsWrites: Int { kernel.withKernel { $0.outOfBoundsWrites } }

    /// The state of the info behind `fd`, or nil for an fd the model did not hand out.
    package func state(of fd: CInt) -> State? { kernel.withKernel { $0.files[fd]?.state } }

    /// Whether live thread `tid` has a `td_kcov_info`.
    package func threadIsBound(_ tid: CInt) -> Bool { kernel.withKernel { $0.threads[tid] != nil } }
}

/// `struct kcov_info` (Docs/kcov-freebsd.md#state-machine).
final class FreeBSDKcovInfo {
    var state: FreeBSDKcovModel.State = .open
    /// The tid of the thread that enabled it (`info->thread`).
    var thread: CInt?
    var buffer: BSDKcovBuffer?
    /// -1 when not RUNNING.
    var mode: Int32 = -1
}

/// The whole simulated kernel: the fd table, `td_kcov_info` per thread, mappings, children.
final class FreeBSDKcovKernel: KernelPathRecorder {
    typealias Model = FreeBSDKcovModel

    var maxEntries: UInt32
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    var files: [CInt: FreeBSDKcovInfo] = [:]
    var threads: [CInt: FreeBSDKcovInfo] = [:]
    /// Threads that exited and wait to be destroyed, by token (the info they held, if any).
    var exited: [Int: FreeBSDKcovInfo?] = [:]
    var nextToken = 1
    var zombies: [CInt: Int] = [:]
    var nextPid: CInt = 300_000
    var mappings = BSDKcovMappings()
    let buffers = BSDKcovBuffer.Ledger()
    var liveInfos = 0
    var outOfBoundsWrites = 0

    init(maxEntries: UInt32) { self.maxEntries = maxEntries }

    // MARK: Recording (Docs/kcov-freebsd.md#buffer-layout)

    /// `get_kinfo` then `trace_pc` / `trace_cmp` for each hook of `path` on thread `tid`.
    func record(_ path: KcovKernelPath, for tid: CInt) {
        guard let info = threads[tid], info.state == .running, let buffer = info.buffer else { return }
        switch info.mode {
        case FreeBSDKcovABIValues.modePC:
            for pc in path.pcs { tracePC(pc, buffer) }
        case FreeBSDKcovABIValues.modeCMP:
            for comparison in path.comparisons { traceCmp(comparison, buffer) }
        default:
            break
        }
    }

    /// `trace_pc`: `index = buf[0]`; only if `index + 2 <= entries` the PC goes to `buf[index + 1]`
    /// and the count becomes `index + 1` (uint64 arithmetic, as in C).
    private func tracePC(_ pc: UInt64, _ buffer: BSDKcovBuffer) {
        let index = buffer[0]
        guard index &+ 2 <= UInt64(buffer.entries) else { return }
        if !buffer.store(pc, at: index &+ 1) { outOfBoundsWrites += 1 }
        buffer[0] = index &+ 1
    }

    /// `trace_cmp`: only if `index * 4 + 4 + 1 <= entries` the four words go to
    /// `buf[index*4+1 ... index*4+4]`, then the count is moved from `index` to `index + 1` with a
    /// compare-and-swap; if the count changed meanwhile the kernel writes `index` back and retries.
    private func traceCmp(_ comparison: KcovComparison, _ buffer: BSDKcovBuffer) {
        let index = buffer[0]
        guard index &* 4 &+ 5 <= UInt64(buffer.entries) else { return }
        while true {
            for (offset, word) in comparison.words.enumerated() where !buffer.store(word, at: index &* 4 &+ UInt64(offset + 1)) {
                outOfBoundsWrites += 1
            }
            if buffer.exchangeCount(expected: index, desired: index &+ 1) { return }
            buffer[0] = index
        }
    }

    // MARK: Descriptors

    func open() -> CInt {
        let fd = (CInt(2000)...).first { files[$0] == nil }!
        files[fd] = FreeBSDKcovInfo()
        liveInfos += 1
        return fd
    }

    /// close(2) of the last (only) reference: `kcov_close` (EBUSY while RUNNING), then
    /// `kcov_mmap_cleanup`: DYING, and `kcov_free` at once unless a thread holds the info.
    func close(_ fd: CInt) -> CInt {
        guard let info = files.removeValue(forKey: fd) else { return EBADF }
        let answer = info.state == .running ? EBUSY : 0
        info.state = .dying
        if info.thread == nil { free(info) }
        return answer
    }

    /// `kcov_free`: the info's reference on the buffer goes (mappings keep theirs).
    private func free(_ info: FreeBSDKcovInfo) {
        info.buffer?.release()
        info.buffer = nil
        liveInfos -= 1
    }

    // MARK: ioctl (Docs/kcov-freebsd.md#ioctls)

    func ioctl(_ fd: CInt, _ request: UInt, _ value: UInt, tid: CInt) -> CInt {
        guard let info = files[fd] else {
            record(Model.syscallPath, for: tid)
            return EBADF
        }
        record(Model.ioctlEntryPath, for: tid)
        // sys_ioctl: the command is truncated to 32 bits; an `_IOWINT` argument is the value as an int.
        let command = UInt(UInt32(truncatingIfNeeded: request))
        let argument = Int32(truncatingIfNeeded: value)
        let result: CInt = switch command {
        case Model.Request.setBufferSize: setBufferSize(info, entries: UInt32(bitPattern: argument))
        case Model.Request.enable: enable(info, mode: argument, tid: tid)
        case Model.Request.disable: disable(info, tid: tid)
        default: EINVAL
        }
        record(Model.ioctlExitPath, for: tid)
        return result
    }

    /// KIOSETBUFSIZE: not OPEN → EBUSY; `kcov_alloc`: fewer than 2 or more than
    /// `kern.kcov.max_entries` → EINVAL; no memory → ENOMEM; then READY.
    private func setBufferSize(_ info: FreeBSDKcovInfo, entries: UInt32) -> CInt {
        guard info.state == .open else { return EBUSY }
        guard entries >= 2, entries <= maxEntries else { return EINVAL }
        guard let buffer = BSDKcovBuffer(entries: Int(entries), pageSize: pageSize, ledger: buffers) else { return ENOMEM }
        info.buffer = buffer
        info.state = .ready
        return 0
    }

    /// KIOENABLE: not READY → EBUSY; the thread has a `td_kcov_info` → EINVAL; a mode other than
    /// 0 or 1 → EINVAL; then RUNNING, bound to the thread.
    private func enable(_ info: FreeBSDKcovInfo, mode: Int32, tid: CInt) -> CInt {
        guard info.state == .ready else { return EBUSY }
        guard threads[tid] == nil else { return EINVAL }
        guard mode == FreeBSDKcovABIValues.modePC || mode == FreeBSDKcovABIValues.modeCMP else { return EINVAL }
        info.thread = tid
        info.mode = mode
        info.state = .running
        threads[tid] = info
        return 0
    }

    /// KIODISABLE: not RUNNING, or not this thread's info → EINVAL; then READY.
    private func disable(_ info: FreeBSDKcovInfo, tid: CInt) -> CInt {
        guard info.state == .running, threads[tid] === info else { return EINVAL }
        threads[tid] = nil
        info.state = .ready
        info.mode = -1
        info.thread = nil
        return 0
    }

    // MARK: mmap (Docs/kcov-freebsd.md#mmap)

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt) -> Result<UnsafeMutableRawPointer, Errno> {
        guard let info = files[fd] else { return .failure(Errno(EBADF)) }
        guard let size = pageRounded(length, pageSize: pageSize) else { return .failure(Errno(EINVAL)) }
        // vm_mmap_cdev: "cdevs do not provide private mappings".
        guard flags & MAP_PRIVATE == 0, flags & MAP_SHARED != 0 else { return .failure(Errno(EINVAL)) }
        guard protection & (PROT_EXEC | PROT_READ | PROT_WRITE) == PROT_READ | PROT_WRITE else { return .failure(Errno(EINVAL)) }
        guard let buffer = info.buffer, size / 8 == buffer.entries else { return .failure(Errno(EINVAL)) }
        mappings.add(buffer, at: buffer.base, bytes: size)
        return .success(buffer.base)
    }

    func munmap(_ address: UInt, length: Int) -> CInt {
        guard let size = pageRounded(length, pageSize: pageSize) else { return EINVAL }
        return mappings.remove(address, bytes: size)
    }

    // MARK: Threads (Docs/kcov-freebsd.md#thread-exit)

    /// Thread `tid` exits: it is no longer anyone's curthread, but its `td_kcov_info` stays until
    /// the thread is destroyed. Returns the token that destroys it.
    func exitThread(_ tid: CInt) -> Int {
        let token = nextToken
        nextToken += 1
        exited[token] = threads.removeValue(forKey: tid)
        return token
    }

    /// `kcov_thread_dtor`: a DYING info is freed; any other goes back to READY.
    func destroyThread(_ token: Int) {
        guard let held = exited.removeValue(forKey: token), let info = held else { return }
        dtor(info)
    }

    private func dtor(_ info: FreeBSDKcovInfo) {
        if info.state == .dying {
            info.thread = nil
            free(info)
        } else {
            info.state = .ready
            info.mode = -1
            info.thread = nil
        }
    }

    func addZombie(_ token: Int) -> CInt {
        let pid = nextPid
        nextPid += 1
        zombies[pid] = token
        return pid
    }

    func reap(_ pid: CInt) -> Bool {
        guard let token = zombies.removeValue(forKey: pid) else { return false }
        destroyThread(token)
        return true
    }

    func exitProcess() {
        for fd in files.keys.sorted() { _ = close(fd) }
        mappings.removeAll()
        for info in threads.values { dtor(info) }
        threads = [:]
        for token in exited.keys.sorted() { destroyThread(token) }
        for pid in zombies.keys.sorted() { _ = reap(pid) }
    }

    func tearDown() {
        var held = files.values.compactMap(\.buffer) + mappings.buffers + threads.values.compactMap(\.buffer)
        held += exited.values.compactMap { $0?.buffer }
        for buffer in held { buffer.tearDown() }
        files = [:]
        threads = [:]
        exited = [:]
    }
}

/// KCOV_MODE_TRACE_PC and KCOV_MODE_TRACE_CMP as the model's driver compares them.
enum FreeBSDKcovABIValues {
    static let modePC: Int32 = 0
    static let modeCMP: Int32 = 1
}
