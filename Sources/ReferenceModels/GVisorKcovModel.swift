#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

/// A simulated gVisor kcov emulation (the `runsc` sentry of a coverage build) behind the seam,
/// written from `Docs/kcov-gvisor.md`: the truth the gVisor backend and the
/// conformance suite are measured against, since the Debian `runsc` this project can run is a
/// release build without kcov.
///
/// It uses Linux's ioctl numbers with gVisor's rules: INIT_TRACE checks state before size and
/// wants a whole number of 4096-byte pages (Docs/kcov-gvisor.md#kcov_init_trace); the buffer is allocated at the first mmap
/// (Docs/kcov-gvisor.md#mmap); ENABLE needs that mapping, truncates its argument to 8 bits and knows only PC mode
/// (Docs/kcov-gvisor.md#kcov_enable); DISABLE drops the buffer (Docs/kcov-gvisor.md#kcov_disable); and coverage is the sentry's global Go coverage:
/// a deduplicated set of synthetic PCs, written only when the enabling thread returns to user
/// space (Docs/kcov-gvisor.md#buffer-layout, Docs/kcov-gvisor.md#synthetic-pcs).
///
/// What it simulates, and how:
/// - **One device.** Only ``devicePath`` exists, and only in a coverage build with no coverage
///   report configured (Docs/kcov-gvisor.md#availability; ENOENT otherwise); EACCES without permission. Each open is an
///   independent Kcov whose fd is the lowest free number from 3000 up.
/// - **Sentry execution.** Every seam call is one syscall and runs a fixed set of Go coverage
///   blocks (``probeBlocks`` for ``probeSyscall()``, ``ioctlEntryBlocks`` and
///   ``ioctlExitBlocks`` around an ioctl's handler, ``syscallBlocks`` for anything else), on
///   whichever thread: the blocks go into one **global pending set** (the counters), not to the
///   calling thread.
/// - **Return to user space.** At the end of every seam call, the calling thread runs its task
///   work: for each Kcov it enabled that is still in TRACE_PC, the pending set is drained into
///   that Kcov's buffer, in (package, function, block) order, as synthetic PCs
///   (``syntheticPC(packageIndex:functionIndex:blockIndex:)``), appended after the count word,
///   saturating at `size - 1` (the blocks that do not fit are lost). So a probe made by the
///   owning thread is in its buffer when the probe returns; a probe made by **another** thread
///   stays pending and reaches the owner's buffer only when the owner's next syscall returns —
///   or goes to another tracing thread that returns first, or is wiped by anyone's ENABLE.
///   A thread blocked in user space (a client reading its buffer) sees nothing new.
/// - **Threads** are the real kernel thread ids of the callers; a thread's task is created at
///   its first seam call. The model cannot see a thread exit, so ``threadExited(_:)`` runs the
///   exit path (Docs/kcov-gvisor.md#thread-exit) and ``runOnNewThread(_:)`` runs a closure on a fresh thread that exits
///   properly. Ownership is by task identity: a new thread that reuses a dead thread's id does
///   not own what the dead one owned.
/// - **Mappings** (Docs/kcov-gvisor.md#mmap) are real mappings of the buffer's memory (a memfd), each at its own
///   address. Length and offset are not checked against the buffer, as in gVisor: a shorter
///   mapping sees the start of the buffer (or the window at `offset`), and a mapping longer than
///   the buffer is accepted and mapped at its full length, but touching it past the end of the
///   buffer raises SIGBUS, which is what gVisor does (`SpecialMappable.Translate`). So, unlike
///   ``SystemKernel``'s kcov on Linux, not every byte of a returned mapping is usable: only the
///   bytes that lie within the buffer. MAP_PRIVATE copies on write. Each ``munmap(_:length:)``
///   must name one whole mapping.
/// - **Forked children** are simulated threads; see
///   ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``.
///
/// read, write and lseek are not in the seam (gVisor: EINVAL, EINVAL, ESPIPE, Docs/kcov-gvisor.md#device-and-open).
///
/// Thread-safe: one lock guards the whole simulated sentry.
package final class GVisorKcovModel: KernelInterface, @unchecked Sendable {
    /// `Kcov.mode` (Docs/kcov-gvisor.md#state-machine). gVisor also defines TRACE_CMP = 3, which no Kcov ever enters.
    package enum Mode: Int, Sendable {
        case disabled = 0
        case initialized = 1
        case tracePC = 2
    }

    /// The ioctls gVisor answers: Linux's numbers (Docs/kcov-gvisor.md#ioctls), compared as 32-bit values.
    package enum Request {
        /// KCOV_INIT_TRACE, `_IOR('c', 1, unsigned long)`.
        package static let initTrace: UInt = 0x8008_6301
        /// KCOV_ENABLE, `_IO('c', 100)`.
        package static let enable: UInt = 0x6364
        /// KCOV_DISABLE, `_IO('c', 101)`.
        package static let disable: UInt = 0x6365
        /// KCOV_REMOTE_ENABLE: not implemented by gVisor (ENOTTY); here for tests.
        package static let remoteEnable: UInt = 0x4018_6366
        /// FIOCLEX and FIONCLEX: answered by the ioctl syscall for any fd (success).
        package static let closeOnExec: UInt = 0x5451
        package static let noCloseOnExec: UInt = 0x5450
    }

    /// INIT_TRACE's largest size, `kcovAreaSizeMax`: 10 Mi words (80 MiB).
    package static let maxWords: UInt64 = 10 * 1024 * 1024
    /// gVisor's page size (amd64 and arm64): INIT_TRACE wants `8 * words` to be a multiple of it.
    package static let kcovPageBytes = 4096

    /// Where the device is: in sysfs, not on a debugfs mount (Docs/kcov-gvisor.md#device-and-open).
    package let devicePath: String
    /// `runsc` built with `--tags kcov,opensource -cover` (`//runsc:runsc_coverage`); a release
    /// build has no `/sys/kernel/debug` at all (Docs/kcov-gvisor.md#availability).
    package let coverageBuild: Bool
    /// `--coverage-report` or `GO_COVERAGE_FILE` is set: the kcov file is not created (Docs/kcov-gvisor.md#availability).
    package let coverageReportConfigured: Bool
    /// Whether the caller may open the 0600 file in the 0700 directory.
    package let accessAllowed: Bool
    /// Write legacy PCs (`file << 16 + block`, 2020-12 to 2025-11) in legacy order (files in
    /// sorted name order, then block) instead of the current format.
    package let legacyPCs: Bool

    private let sentry: Mutex<GVisorSentry>

    /// The sentry's tasks and Kcov instances still alive. Hold it past the model's end: 0 then
    /// shows the teardown freed them all.
    package let liveObjects: GVisorObjectCount

    /// A sandbox whose kcov file is at `devicePath`; the knobs simulate the ways it can be missing
    /// (ENOENT) or forbidden (EACCES), and the PC format of older gVisor releases.
    package init(
        devicePath: String = "/sys/kernel/debug/kcov", coverageBuild: Bool = true,
        coverageReportConfigured: Bool = false, accessAllowed: Bool = true, legacyPCs: Bool = false
    ) {
        self.devicePath = devicePath
        self.coverageBuild = coverageBuild
        self.coverageReportConfigured = coverageReportConfigured
        self.accessAllowed = accessAllowed
        self.legacyPCs = legacyPCs
        let objects = GVisorObjectCount()
        liveObjects = objects
        sentry = Mutex(GVisorSentry(coverageBuild: coverageBuild, legacyPCs: legacyPCs, objects: objects))
    }

    /// Unmaps every mapping and frees every buffer still allocated: pointers from
    /// ``mmap(length:protection:flags:fd:offset:)`` must not outlive the model.
    deinit {
        sentry.withLock { $0.tearDown() }
    }

    /// The calling thread's kernel thread id, without making it a syscall.
    static func threadID() -> CInt { SystemKernel().currentThreadID() }

    /// C convention for a kernel result: 0 or more is returned, `-errno` becomes -1 and errno.
    private static func finish(_ result: CInt) -> CInt {
        guard result < 0 else { return result }
        errno = -result
        return -1
    }

    /// One syscall of the calling thread, under the lock: runs `blocks` (if any), then `body`,
    /// then the return to user space (task work). errno is preserved, so only a failure's own
    /// errno is ever seen.
    private func syscall<T: Sendable>(
        _ blocks: [CoverageBlock] = GVisorKcovModel.syscallBlocks, _ body: (GVisorSentry, GVisorTask) -> T
    ) -> T {
        let saved = errno
        let tid = Self.threadID()
        let result = sentry.withLock { sentry in
            let task = sentry.task(tid)
            sentry.execute(blocks)
            let result = body(sentry, task)
            sentry.returnToUser(task)
            return result
        }
        errno = saved
        return result
    }

    // MARK: KernelInterface

    /// open(2) (Docs/kcov-gvisor.md#availability, Docs/kcov-gvisor.md#device-and-open): ENOENT unless the path is the device and `runsc` is a coverage build
    /// without a coverage report; then EACCES without permission. Flags are not checked but kept
    /// for mmap's access checks. Each open is a new Kcov in DISABLED.
    package func open(_ path: String, flags: CInt) -> CInt {
        Self.finish(syscall { sentry, _ in
            guard path == devicePath, coverageBuild, !coverageReportConfigured else { return -ENOENT }
            guard accessAllowed else { return -EACCES }
            return sentry.open(flags: flags)
        })
    }

    /// close(2): EBADF for an fd this model did not hand out. The fd is the only reference to its
    /// Kcov (mappings hold the buffer, not the file), so this is `Release` → `Clear` (Docs/kcov-gvisor.md#close-while-enabled): INIT,
    /// no owner, buffer dropped, and an owner's collection stops at once.
    package func close(_ fd: CInt) -> CInt {
        Self.finish(syscall { sentry, _ in -sentry.close(fd) })
    }

    /// ioctl(2) by value (Docs/kcov-gvisor.md#ioctls). The request is compared as a `uint32`: KCOV_INIT_TRACE
    /// (0x80086301), KCOV_ENABLE (0x6364), KCOV_DISABLE (0x6365), FIOCLEX/FIONCLEX; anything else,
    /// KCOV_REMOTE_ENABLE included, is ENOTTY. EBADF for an unknown fd.
    /// - INIT_TRACE: EBUSY unless DISABLED; EINVAL unless `8 * words` is a multiple of 4096; EINVAL
    ///   unless `2 <= words <= 10485760`. Allocates nothing.
    /// - ENABLE: EINVAL unless INIT with a buffer (mmap first); the argument truncated to 8 bits:
    ///   0 is PC mode, 1 (CMP) EOPNOTSUPP, anything else EINVAL. Clears every thread's pending
    ///   coverage; `area[0]` is kept. A thread may enable several fds.
    /// - DISABLE: EINVAL for a non-zero argument, then EINVAL unless the caller owns the fd; the
    ///   fd goes to INIT and its buffer is dropped.
    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        Self.finish(syscall([]) { sentry, task in -sentry.ioctl(fd, request, value, task: task) })
    }

    /// ioctl(2) by pointer: the sentry sees the pointer as a number, so INIT_TRACE gets the address
    /// as its size and ENABLE the address's low byte as its trace kind.
    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        ioctl(fd, request, value: UInt(bitPattern: pointer))
    }

    /// mmap(2) (Docs/kcov-gvisor.md#mmap), in gVisor's order: EINVAL unless exactly one of MAP_SHARED and MAP_PRIVATE
    /// (MAP_ANONYMOUS is refused too: the model maps only its device); EBADF; EACCES for an fd
    /// not open for reading; then kcov's check, EINVAL unless the fd is in INIT (before
    /// INIT_TRACE and while enabled alike), and the first mmap allocates the buffer (zeroed, real
    /// memory; ENOMEM if that fails); then the memory manager's: EINVAL for length 0 or an
    /// unaligned offset, EOVERFLOW when offset + length wraps, EACCES for a writable MAP_SHARED
    /// mapping of an fd not open for writing. A mapping refused at that last stage leaves the
    /// buffer allocated, so ENABLE then succeeds.
    ///
    /// Length and offset are not checked against the buffer: every mapping is a real mapping of
    /// the buffer's memory at its own address, `length` bytes from `offset`; bytes past the end
    /// of the buffer raise SIGBUS when touched, as in gVisor. While the fd stays in INIT, every
    /// mapping shows the same buffer; after DISABLE the next mmap gets a new, zeroed one.
    package func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        let result: Result<UInt, Errno> = syscall { sentry, task in
            sentry.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset, task: task)
                .map { UInt(bitPattern: $0) }
        }
        switch result {
        case .success(let address): return UnsafeMutableRawPointer(bitPattern: address)
        case .failure(let error):
            errno = error.code
            return nil
        }
    }

    /// munmap(2) of a mapping from ``mmap(length:protection:flags:fd:offset:)``: the mapping's
    /// reference on the buffer goes; the buffer is freed when neither its Kcov nor any mapping
    /// holds it. Unlike the sentry, an address the model did not map, or a length other than the
    /// whole mapping's, gives EINVAL: the model cannot unmap part of a mapping or memory it does
    /// not own.
    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let key = UInt(bitPattern: address)
        return Self.finish(syscall { sentry, _ in -sentry.munmap(key, length: length) })
    }

    /// gettid(2): the real kernel thread id. A syscall like any other: it runs
    /// ``syscallBlocks`` and returns to user space.
    package func currentThreadID() -> CInt {
        syscall { _, task in task.tid }
    }

    /// `read(-1, NULL, 0)`: runs ``probeBlocks`` (on behalf of whichever thread calls it) into the
    /// global pending set, then returns to user space, so the blocks reach a buffer now only if
    /// the calling thread has an fd in TRACE_PC. Fails with EBADF like the real call.
    package func probeSyscall() {
        syscall(Self.probeBlocks) { _, _ in () }
        errno = EBADF
    }

    /// `/proc/mounts` is shaped like a runsc sandbox's: no debugfs anywhere, even though the kcov
    /// file (in a coverage build) is at `/sys/kernel/debug/kcov`, inside sysfs. `/proc/version`
    /// is the fixed string gVisor reports. Any other path is ENOENT.
    package func readTextFile(_ path: String) -> String? {
        let text: String? = syscall { _, _ in
            switch path {
            case "/proc/mounts": Self.mountsTable
            case "/proc/version": Self.versionString
            default: nil
            }
        }
        if text == nil { errno = ENOENT }
        return text
    }

    private static let mountsTable = [
        "none / 9p rw,trans=fd,rfdno=4,wfdno=4,aname=/,dfltuid=4294967294,dfltgid=4294967294,cache=remote_revalidating 0 0",
        "none /dev tmpfs rw,mode=0755 0 0",
        "none /dev/pts devpts rw 0 0",
        "none /proc proc rw 0 0",
        "none /sys sysfs ro,noexec 0 0",
        "none /tmp tmpfs rw,mode=01777 0 0",
    ].joined(separator: "\n") + "\n"

    private static let versionString = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016\n"

    /// Runs one syscall's blocks for the calling thread and its return to user space, or, for
    /// `exit_group`, only the blocks (that syscall never returns).
    func simulateSyscall(returns: Bool = true) {
        let tid = Self.threadID()
        sentry.withLock { sentry in
            let task = sentry.task(tid)
            sentry.execute(Self.syscallBlocks)
            if returns { sentry.returnToUser(task) }
        }
    }

    /// A simulated child that has exited with status 0: its new pid.
    func finishChild() -> CInt {
        sentry.withLock { sentry in
            let pid = sentry.nextPid
            sentry.nextPid += 1
            sentry.finishedChildren[pid] = .exited(0)
            return pid
        }
    }

    /// Reaps a simulated child: its status, or `nil` if there is no such child.
    func reapChild(_ pid: CInt) -> ExitStatus? {
        sentry.withLock { $0.finishedChildren.removeValue(forKey: pid) }
    }

    // MARK: Thread exit

    /// Runs the thread-exit path for `tid` (Docs/kcov-gvisor.md#thread-exit, `Task.ResetKcov` → `Kcov.OnTaskExit`): the Kcov
    /// the thread enabled **last** goes to INIT with no owner and keeps its buffer, so any thread
    /// may ENABLE it again without a new mmap. Two quirks follow, both [inferred] in the reference:
    /// - DISABLE does not forget the Kcov, so a thread that enabled and then disabled an fd
    ///   resets it when it exits **even if another thread has enabled it since**; that thread's
    ///   collection stops silently (its DISABLE then gives EINVAL).
    /// - A thread that enabled two fds resets only the second; the first stays in TRACE_PC with a
    ///   dead owner (ENABLE and DISABLE give EINVAL) until it is closed.
    /// The exiting thread does not return to user space: nothing is written for it.
    package func threadExited(_ tid: CInt) {
        sentry.withLock { $0.threadExited(tid) }
    }

    // MARK: Inspection for tests

    /// File descriptors open on the device.
    package var openDescriptorCount: Int { sentry.withLock { $0.descriptors.count } }

    /// Mappings not yet unmapped.
    package var liveMappingCount: Int { sentry.withLock { $0.mappings.count } }

    /// Buffers allocated by a first mmap and not yet freed (a Kcov or a mapping still holds them).
    package var liveBufferCount: Int { sentry.withLock { $0.liveBuffers } }

    /// Blocks that ran since the last consumption or ENABLE: what the next tracing thread to
    /// return to user space gets.
    package var pendingBlockCount: Int { sentry.withLock { $0.pending.count } }

    /// The pending blocks in (package, function, block) order.
    package var pendingBlocks: [CoverageBlock] {
        sentry.withLock { $0.pending.sorted { $0.indexes < $1.indexes } }
    }

    /// An fd's Kcov (Docs/kcov-gvisor.md#state-machine).
    package struct DescriptorState: Sendable, Equatable {
        package var mode: Mode
        /// Buffer size in words; 0 before INIT_TRACE.
        package var sizeWords: Int
        /// The thread id of the owning task, which may have exited since (Docs/kcov-gvisor.md#quirks, item 6).
        package var owner: CInt?
        /// The owning task has exited.
        package var ownerExited: Bool
        /// `mappable` is set: an mmap allocated a buffer that DISABLE or close has not dropped.
        package var hasBuffer: Bool
    }

    /// The Kcov behind `fd`, or `nil` if the model did not hand it out.
    package func descriptorState(_ fd: CInt) -> DescriptorState? {
        sentry.withLock { sentry in
            guard let instance = sentry.descriptors[fd]?.instance else { return nil }
            return DescriptorState(
                mode: instance.mode, sizeWords: Int(instance.sizeWords), owner: instance.owner?.tid,
                ownerExited: instance.owner?.exited ?? false, hasBuffer: instance.memory != nil)
        }
    }

    /// What a task holds for kcov.
    package struct ThreadState: Sendable, Equatable {
        /// `Task.kcov`'s fd: the fd it enabled last, even if it disabled it since; `nil` if that
        /// fd has been closed.
        package var kcovDescriptor: CInt?
        /// Task work entries still queued, one per Kcov the thread collects into.
        package var taskWorkCount: Int
    }

    /// What the sentry holds for thread `tid`, or `nil` if it has never enabled an fd (or exited).
    package func threadState(_ tid: CInt) -> ThreadState? {
        sentry.withLock { sentry in
            guard let task = sentry.tasks[tid], let instance = task.kcov else { return nil }
            let fd = sentry.descriptors.first { $0.value.instance === instance }?.key
            return ThreadState(kcovDescriptor: fd, taskWorkCount: task.work.count)
        }
    }

    /// The first `words` words of `fd`'s current buffer as the sentry sees them (count word
    /// first), all of them if `words` is nil; `nil` when the fd has no buffer.
    package func bufferContents(_ fd: CInt, words: Int? = nil) -> [UInt64]? {
        sentry.withLock { sentry in
            guard let memory = sentry.descriptors[fd]?.instance.memory else { return nil }
            return (0..<min(words ?? memory.words, memory.words)).map { memory[$0] }
        }
    }
}
