#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

/// A simulated Linux kcov driver (6.12 by default, or 6.1: ``KernelVersion``) behind the seam, written from
/// `Docs/kcov-linux.md`: the test double for the Linux backend and for
/// `CoverageCollector` on hosts without kcov, and the model the conformance suite compares with the
/// real kernel check by check.
///
/// It enforces kcov's per-fd state machine (Docs/kcov-linux.md#state-machine) and each ioctl's check order (Docs/kcov-linux.md#ioctls, Docs/kcov-linux.md#remote-coverage), returns
/// the kernel's errnos (including the kernel-internal ENOTSUPP, 524), hands out real, zeroed,
/// page-aligned memory as the buffer (Docs/kcov-linux.md#kcov_init_trace), and writes PCs and comparison records into it the
/// way `__sanitizer_cov_trace_pc` and `write_comp_data` do (Docs/kcov-linux.md#buffer-layout), with relaxed atomic stores.
///
/// What it simulates, and how:
/// - **One device.** Only ``devicePath`` exists; each open is an independent kcov instance whose
///   fd is the lowest free number from 1000 up, so it can never be confused with a real fd.
/// - **Threads** are the real kernel thread ids of the callers (`gettid`). Per-thread coverage is
///   kept per tid; the model cannot see a thread exit, so ``threadExited(_:)`` runs the exit path
///   (Docs/kcov-linux.md#threads-and-lifecycle), and ``runOnNewThread(_:)`` runs a closure on a fresh thread and exits it properly.
/// - **Kernel execution.** ``probeSyscall()`` executes ``probePath`` for the calling thread. Every
///   other seam call is a syscall too and records ``syscallPath`` for a thread that has coverage
///   enabled; an ioctl records ``ioctlEntryPath`` before its handler and ``ioctlExitPath`` after,
///   each only if the thread is recording at that moment. So ENABLE leaves the tail of its own
///   syscall in the buffer (clients must store 0 in `area[0]` after ENABLE, Docs/kcov-linux.md#kcov_enable), and DISABLE
///   leaves its start (Docs/kcov-linux.md#kcov_disable).
/// - **Mappings.** ``mmap(length:protection:flags:fd:offset:)`` returns the buffer's own address:
///   every mapping of one buffer has the same address and sees the same memory (Docs/kcov-linux.md#mmap, "multiple
///   mmaps"). Mappings are counted per address; each ``munmap(_:length:)`` of that address and
///   length drops one. MAP_PRIVATE is accepted like MAP_SHARED but cannot copy on write (Docs/kcov-gvisor.md#differences-from-linux,
///   row D17 is beyond the model).
/// - **Remote coverage** (Docs/kcov-linux.md#remote-coverage): ``remoteSectionStart(handle:softirq:)`` and
///   ``remoteSectionStop(_:)`` play kernel code annotated with `kcov_remote_start`/`stop`.
/// - **Forked children** are simulated threads; see
///   ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``.
///
/// Thread-safe: one lock guards the whole simulated kernel.
package final class LinuxKcovModel: KernelInterface, @unchecked Sendable {
    /// `kcov->mode` (Docs/kcov-linux.md#state-machine; REMOTE exists only as a task mode).
    package enum Mode: Int, Sendable {
        case disabled = 0
        case initialized = 1
        case tracePC = 2
        case traceCMP = 3
    }

    /// The model's own ioctl table: the kernel's numbers for 64-bit x86 (Docs/kcov-linux.md#ioctls).
    package enum Request {
        /// KCOV_INIT_TRACE, `_IOR('c', 1, unsigned long)`.
        package static let initTrace: UInt = 0x8008_6301
        /// KCOV_ENABLE, `_IO('c', 100)`.
        package static let enable: UInt = 0x6364
        /// KCOV_DISABLE, `_IO('c', 101)`.
        package static let disable: UInt = 0x6365
        /// KCOV_REMOTE_ENABLE, `_IOW('c', 102, struct kcov_remote_arg)`.
        package static let remoteEnable: UInt = 0x4018_6366
        /// FIOCLEX and FIONCLEX: answered by the VFS for any fd (success).
        package static let closeOnExec: UInt = 0x5451
        package static let noCloseOnExec: UInt = 0x5450
    }

    /// The kernel-internal ENOTSUPP: CMP mode on a kernel without CONFIG_KCOV_ENABLE_COMPARISONS.
    package static let enotsupp: CInt = 524
    /// KCOV_REMOTE_MAX_HANDLES.
    package static let maxRemoteHandles = 0x100
    /// Remote handle subsystems, bits 56–63 (Docs/kcov-linux.md#handles).
    package static let subsystemCommon: UInt64 = 0x00 << 56
    package static let subsystemUSB: UInt64 = 0x01 << 56

    /// Where the device is.
    package let devicePath: String
    /// CONFIG_KCOV_ENABLE_COMPARISONS.
    package let comparisonsBuiltIn: Bool
    /// Whether debugfs is mounted at the device's directory.
    package let debugfsMounted: Bool
    /// CONFIG_KCOV.
    package let deviceExists: Bool
    /// Whether the caller may open the 0600 root-owned file.
    package let accessAllowed: Bool
    /// Kernel lockdown of debugfs (EPERM at open, Docs/kcov-linux.md#device-and-open).
    package let lockedDown: Bool
    /// Which release's kcov it follows where releases differ (``KernelVersion``).
    package let version: KernelVersion

    private let kernel: Mutex<KcovKernel>

    /// A kernel with kcov at `devicePath`; the knobs simulate the ways it can be missing (ENOENT),
    /// forbidden (EACCES, EPERM) or built without comparisons (ENABLE(1) gives 524), and `version`
    /// the release whose behaviour it follows where 6.1 and 6.12 differ.
    package init(
        devicePath: String = "/sys/kernel/debug/kcov", comparisonsBuiltIn: Bool = true,
        debugfsMounted: Bool = true, deviceExists: Bool = true, accessAllowed: Bool = true,
        lockedDown: Bool = false, version: KernelVersion = .v6_12
    ) {
        self.version = version
        self.devicePath = devicePath
        self.comparisonsBuiltIn = comparisonsBuiltIn
        self.debugfsMounted = debugfsMounted
        self.deviceExists = deviceExists
        self.accessAllowed = accessAllowed
        self.lockedDown = lockedDown
        kernel = Mutex(KcovKernel(comparisonsBuiltIn: comparisonsBuiltIn, version: version))
    }

    /// Frees every buffer still allocated: pointers from ``mmap(length:protection:flags:fd:offset:)``
    /// must not outlive the model (a backend or session holding the model keeps it alive).
    deinit {
        kernel.withLock { $0.tearDown() }
    }

    /// The calling thread's kernel thread id, without making it a traced syscall.
    static func threadID() -> CInt { SystemKernel().currentThreadID() }

    /// C convention for a kernel result: 0 or more is returned, `-errno` becomes -1 and errno.
    private static func finish(_ result: CInt) -> CInt {
        guard result < 0 else { return result }
        errno = -result
        return -1
    }

    /// Runs one syscall's worth of kernel work under the lock for the calling thread. errno is
    /// preserved (a contended lock may touch it), so only a failure's own errno is ever seen.
    private func syscall<T: Sendable>(_ body: (KcovKernel, CInt) -> T) -> T {
        let saved = errno
        let tid = Self.threadID()
        let result = kernel.withLock { body($0, tid) }
        errno = saved
        return result
    }

    // MARK: KernelInterface

    /// open(2) (Docs/kcov-linux.md#device-and-open): ENOENT unless the path is the device, debugfs is mounted and CONFIG_KCOV is
    /// on; then EACCES without permission; then EPERM under lockdown. Flags are kept for mmap's
    /// access checks.
    package func open(_ path: String, flags: CInt) -> CInt {
        Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            guard path == devicePath, debugfsMounted, deviceExists else { return -ENOENT }
            guard accessAllowed else { return -EACCES }
            guard !lockedDown else { return -EPERM }
            return kernel.open(flags: flags)
        })
    }

    /// close(2): EBADF for an fd this model did not hand out. Coverage enabled through the fd
    /// continues until its thread exits (Docs/kcov-linux.md#threads-and-lifecycle); a mapping keeps the buffer alive.
    package func close(_ fd: CInt) -> CInt {
        Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.close(fd)
        })
    }

    /// ioctl(2) by value: KCOV_INIT_TRACE (Docs/kcov-linux.md#kcov_init_trace), KCOV_ENABLE (Docs/kcov-linux.md#kcov_enable), KCOV_DISABLE (Docs/kcov-linux.md#kcov_disable);
    /// anything else is ENOTTY. KCOV_REMOTE_ENABLE (Docs/kcov-linux.md#kcov_remote_enable) takes its argument as an address, as the
    /// kernel does; the model cannot probe memory, so only 0 gives EFAULT.
    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        Self.finish(syscall { kernel, tid in -kernel.ioctl(fd, request, value, tid: tid) })
    }

    /// ioctl(2) by pointer: the kernel sees the pointer as an `unsigned long`, so INIT_TRACE,
    /// ENABLE and DISABLE get the address as their value; KCOV_REMOTE_ENABLE reads the
    /// `struct kcov_remote_arg` and its handles from it.
    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        ioctl(fd, request, value: UInt(bitPattern: pointer))
    }

    /// mmap(2) (Docs/kcov-linux.md#mmap). Generic checks first (offset alignment EINVAL, EBADF, zero length EINVAL,
    /// map type EINVAL, EACCES for a writable shared mapping of a non-O_RDWR fd or any mapping of
    /// a write-only fd), then kcov's: no buffer, non-zero offset, or a page-rounded length other
    /// than the buffer's size in bytes give EINVAL. Allowed in any state once INIT_TRACE
    /// succeeded. Returns the buffer's own address every time.
    package func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        let result: Result<UInt, Errno> = syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return kernel.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
                .map { UInt(bitPattern: $0) }
        }
        switch result {
        case .success(let address): return UnsafeMutableRawPointer(bitPattern: address)
        case .failure(let error):
            errno = error.code
            return nil
        }
    }

    /// munmap(2) of a mapping from ``mmap(length:protection:flags:fd:offset:)``: drops one
    /// mapping; the last one of a closed fd releases the file (Docs/kcov-linux.md#mmap, Docs/kcov-linux.md#close-while-enabled). Unlike Linux, an address
    /// the model did not map, or a length that is not the whole mapping, gives EINVAL: the model
    /// cannot unmap part of a buffer or memory it does not own.
    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let key = UInt(bitPattern: address)
        return Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.munmap(UnsafeMutableRawPointer(bitPattern: key)!, length: length)
        })
    }

    /// gettid(2): the real kernel thread id; traced like any syscall.
    package func currentThreadID() -> CInt {
        syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return tid
        }
    }

    /// `read(-1, NULL, 0)`: records ``probePath`` into the calling thread's buffer if it has
    /// coverage enabled in PC or CMP mode (Docs/kcov-linux.md#buffer-layout); other threads' buffers are never touched, and a
    /// thread with remote coverage records nothing (Docs/kcov-linux.md#remote-coverage). Like the real call it fails with EBADF.
    package func probeSyscall() {
        syscall { kernel, tid in kernel.record(Self.probePath, for: tid) }
        errno = EBADF
    }

    /// A syscall of the calling thread that runs `path`: recorded like ``probeSyscall()`` (PCs in
    /// PC mode, records in CMP mode, only into this thread's enabled instance; see
    /// `Docs/kcov-linux.md#buffer-layout`). Lets a test give each simulated call its own coverage.
    package func syscall(running path: KernelPath) {
        syscall { kernel, tid in kernel.record(path, for: tid) }
    }

    /// `/proc/mounts` lists debugfs at the device's directory when ``debugfsMounted``; any other
    /// path is ENOENT.
    package func readTextFile(_ path: String) -> String? {
        let text: String? = syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return path == "/proc/mounts" ? mountsTable : nil
        }
        if text == nil { errno = ENOENT }
        return text
    }

    private var mountsTable: String {
        let directory = devicePath.lastIndex(of: "/").map { String(devicePath[..<$0]) } ?? "/"
        var lines = [
            "/dev/vda1 / ext4 rw,relatime 0 0",
            "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
            "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
            "tmpfs /run tmpfs rw,nosuid,nodev,mode=755 0 0",
        ]
        if debugfsMounted { lines.append("debugfs \(directory.isEmpty ? "/" : directory) debugfs rw 0 0") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Records ``syscallPath`` for `tid` if it is tracing: a syscall with no other effect here.
    func recordSyscall(for tid: CInt) {
        kernel.withLock { $0.record(Self.syscallPath, for: tid) }
    }

    /// A simulated child that has exited with status 0: its new pid.
    func finishChild() -> CInt {
        kernel.withLock { kernel in
            let pid = kernel.nextPid
            kernel.nextPid += 1
            kernel.finishedChildren[pid] = .exited(0)
            return pid
        }
    }

    /// Reaps a simulated child: its status, or `nil` if there is no such child.
    func reapChild(_ pid: CInt) -> ExitStatus? {
        kernel.withLock { $0.finishedChildren.removeValue(forKey: pid) }
    }

    // MARK: Thread exit and remote sections

    /// Runs the thread-exit path for `tid` (Docs/kcov-linux.md#thread-exit, `kcov_task_exit`): a kcov the thread enabled,
    /// locally or remotely, is disabled and goes back to INIT with its buffer, remote handles are
    /// unregistered, and the thread's reference is dropped (freeing the buffer if it was the last).
    package func threadExited(_ tid: CInt) {
        kernel.withLock { $0.threadExited(tid) }
    }

    /// A remote section in flight.
    package struct RemoteSection: Sendable, Hashable {
        let id: Int
    }

    /// `kcov_remote_start(handle)` (Docs/kcov-linux.md#remote-sections): if a kcov registered `handle`, kernel code runs
    /// ``remoteSectionPath`` into a temporary buffer of the fd's `area_size` words, or of
    /// ``irqAreaWords`` in a softirq; the section holds a reference on the kcov. `nil` when no kcov
    /// holds the handle (nothing is collected).
    package func remoteSectionStart(handle: UInt64, softirq: Bool = false) -> RemoteSection? {
        kernel.withLock { $0.startSection(handle: handle, softirq: softirq) }.map(RemoteSection.init)
    }

    /// `kcov_remote_stop()` (Docs/kcov-linux.md#remote-sections): appends what the section recorded to the fd's buffer, unless the
    /// fd was disabled or re-enabled since the start, truncated to the free space, nothing if the
    /// count word already exceeds the capacity. Returns how many entries (PCs or records) it appended.
    @discardableResult
    package func remoteSectionStop(_ section: RemoteSection) -> Int {
        kernel.withLock { $0.stopSection(section.id) }
    }

    /// A whole remote section; `nil` when no kcov holds `handle`.
    @discardableResult
    package func runRemoteSection(handle: UInt64, softirq: Bool = false) -> Int? {
        remoteSectionStart(handle: handle, softirq: softirq).map(remoteSectionStop)
    }

    /// `kcov_check_handle` (Docs/kcov-linux.md#handles): bits 32–55 zero, and the subsystem allowed.
    static func isValidHandle(_ handle: UInt64, common: Bool, uncommon: Bool, zero: Bool) -> Bool {
        guard handle & 0x00ff_ffff_0000_0000 == 0 else { return false }
        switch handle >> 56 {
        case 0: return handle & 0xffff_ffff != 0 ? common : zero
        case 1: return uncommon
        default: return false
        }
    }

    // MARK: Inspection for tests

    /// File descriptors open on the device.
    package var openDescriptorCount: Int { kernel.withLock { $0.descriptors.count } }

    /// Mappings not yet unmapped (several of one buffer count separately).
    package var liveMappingCount: Int { kernel.withLock { $0.mappings.values.reduce(0) { $0 + $1.count } } }

    /// Buffers allocated by INIT_TRACE and not yet freed.
    package var liveBufferCount: Int { kernel.withLock { $0.liveBuffers } }

    /// Remote handles registered by any kcov.
    package var registeredRemoteHandles: Set<UInt64> { kernel.withLock { Set($0.remoteHandles.keys) } }

    /// An fd's `struct kcov` (Docs/kcov-linux.md#state-machine).
    package struct DescriptorState: Sendable, Equatable {
        package var mode: Mode
        package var remote: Bool
        /// Buffer size in words; 0 before INIT_TRACE.
        package var sizeWords: Int
        /// The thread it is enabled for.
        package var owner: CInt?
        package var sequence: UInt64
        /// `area_size` of the remote enable.
        package var remoteAreaWords: UInt32
        /// Live mappings of its buffer.
        package var mappings: Int
    }

    /// The state behind `fd`, or `nil` if the model did not hand it out.
    package func descriptorState(_ fd: CInt) -> DescriptorState? {
        kernel.withLock { kernel in
            guard let file = kernel.descriptors[fd] else { return nil }
            let instance = file.instance
            return DescriptorState(
                mode: instance.mode, remote: instance.remote, sizeWords: instance.area?.words ?? 0,
                owner: instance.owner, sequence: instance.sequence, remoteAreaWords: instance.remoteSize,
                mappings: file.mappings)
        }
    }

    /// A thread's kcov state (Docs/kcov-linux.md#state-machine, per task).
    package struct ThreadState: Sendable, Equatable {
        /// The fd it enabled, or `nil` if that fd has been closed since (coverage continues, Docs/kcov-linux.md#close-while-enabled).
        package var descriptor: CInt?
        /// PC or CMP for local coverage; `nil` for remote coverage (its own syscalls are not traced).
        package var recording: Mode?
        /// The common handle it registered with a remote enable, else 0.
        package var commonHandle: UInt64
    }

    /// What the kernel holds for thread `tid`, or `nil` if it has no kcov.
    package func threadState(_ tid: CInt) -> ThreadState? {
        kernel.withLock { kernel in
            guard let task = kernel.tasks[tid], let instance = task.kcov else { return nil }
            let fd = kernel.descriptors.first { $0.value.instance === instance }?.key
            return ThreadState(descriptor: fd, recording: task.recordingMode, commonHandle: task.commonHandle)
        }
    }

    /// The first `words` words of `fd`'s buffer as the kernel sees them (count word first), all of
    /// them if `words` is nil; `nil` before INIT_TRACE. Reads buffers that no mapping can reach.
    package func bufferContents(_ fd: CInt, words: Int? = nil) -> [UInt64]? {
        kernel.withLock { kernel in
            guard let area = kernel.descriptors[fd]?.instance.area else { return nil }
            return (0..<min(words ?? area.words, area.words)).map { area[$0] }
        }
    }
}
