#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

/// A simulated NetBSD kcov(4) driver (`subr_kcov.c` 1.17, with 1.8's order as an option) behind
/// the seam, written from `Docs/kcov-netbsd.md` and `Docs/kcov-netbsd.md#check-order`: the truth the NetBSD backend is
/// tested against, since no NetBSD kernel runs here.
///
/// It enforces the per-descriptor state (`struct kcov_desc`, Docs/kcov-netbsd.md#device-and-open) and the per-LWP binding
/// (`l_kcov`), runs each ioctl's checks in the kernel's order with the kernel's errnos (Docs/kcov-netbsd.md#ioctls),
/// answers mmap as `kcov_fops_mmap` does (Docs/kcov-netbsd.md#mmap), hands out real, zeroed, page-aligned memory, and
/// writes 64-bit entries the way `__sanitizer_cov_trace_pc` and `trace_cmp` do (Docs/kcov-netbsd.md#buffer-layout), with
/// relaxed atomic stores.
///
/// What it simulates, and how:
/// - **One device**, ``devicePath``. Each open is a fresh, independent descriptor (KD) behind a new
///   file; fds are the lowest free number from 2000 up. ``dup(_:)`` and ``dup2(_:_:)`` share the
///   file, and with it the KD; the KD's close runs when the file's last fd closes (Docs/kcov-netbsd.md#device-and-open).
/// - **LWPs** are the real kernel thread ids of the callers (`gettid`); `l_kcov` is kept per tid.
///   The model cannot see a thread exit: ``threadExited(_:)`` runs the free path, and
///   ``startThread(_:)`` / ``runOnNewThread(_:)`` run a closure on a real new thread whose LWP
///   exits when the closure returns and is freed when it is joined, as NetBSD frees an LWP only
///   when it is reaped (Docs/kcov-netbsd.md#thread-exit).
/// - **Kernel execution.** ``probeSyscall()`` executes ``probePath`` on the calling LWP. Every
///   other seam call is a syscall and executes ``syscallPath``; an ioctl executes
///   ``ioctlEntryPath`` before the driver and ``ioctlExitPath`` after it. Each is recorded only if
///   the LWP's `l_kcov` is enabled at that moment, as every instrumented function on the path
///   would be; so ENABLE leaves its own tail in the buffer (clients store 0 into `buf[0]` after
///   ENABLE: "Enable never resets buf[0]", Docs/kcov-netbsd.md#kcov_ioc_enable) and DISABLE its start.
/// - **Mappings** alias the buffer: a mapping at offset `o` returns the buffer's own address plus
///   `o`. Each holds a reference on the buffer, which therefore outlives `close` (Docs/kcov-netbsd.md#lifetime).
///   Protections are checked as kcov checks them but not enforced on the memory (a read-only
///   mapping can be written), and MAP_PRIVATE is accepted as NetBSD accepts it but cannot copy on
///   write: it sees the kernel's later writes, which a real private mapping would hide.
/// - **Remote coverage** (Docs/kcov-netbsd.md#remote-coverage): ``vhciBuses`` buses of ``vhciPortsPerBus`` ports each are
///   registered at boot with full-size buffers; ``runRemoteSection(_:)`` plays the USB
///   hub-explore section of one port.
/// - **Forked children** are simulated threads; see
///   ``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``.
/// - **Process exit** (``exitProcess()``) closes every fd, drops every mapping and frees every LWP.
///
/// Requests are NetBSD's own numbers (the model is the kernel): the seam carries them as `UInt`,
/// zero-extended from 32 bits; a sign-extended number is another request (EINVAL).
///
/// Thread-safe: one lock guards the whole simulated kernel.
package final class NetBSDKcovModel: KernelInterface, @unchecked Sendable {
    /// `KCOV_MODE_*` (N-H), the `int` ENABLE reads through its pointer.
    package enum Mode: Int32, Sendable {
        case none = 0
        case tracePC = 1
        case traceCMP = 2
    }

    /// Which `subr_kcov.c` the kernel runs (Docs/kcov-netbsd.md#version-differences).
    package enum Revision: Sendable {
        /// 1.17 (NetBSD-current): ENABLE checks the mode first; the remote ioctls exist.
        case current
        /// 1.8 (netbsd-9): ENABLE checks enabled, `l_kcov`, buffer, then the mode; no remote
        /// ioctls (kcov.h 1.9 added them), so they are unknown requests (EINVAL).
        case netbsd9
    }

    /// `_IOC` direction bits (N-IOC).
    package static let iocVoid: UInt32 = 0x2000_0000
    package static let iocOut: UInt32 = 0x4000_0000
    package static let iocIn: UInt32 = 0x8000_0000
    /// IOCPARM_MASK: the parameter length is 13 bits at bit 16.
    package static let ioctlParameterMask: UInt32 = 0x1fff

    /// `_IOC(direction, group, number, length)` as NetBSD encodes it, zero-extended to `UInt`.
    package static func ioctlRequest(_ direction: UInt32, _ group: Character, _ number: UInt32, length: Int) -> UInt {
        let encoded = direction | (UInt32(length) & ioctlParameterMask) << 16
            | UInt32(group.asciiValue!) << 8 | number
        return UInt(encoded)
    }

    /// The model's ioctl table: NetBSD's `sys/kcov.h` 1.10 (Docs/kcov-netbsd.md#ioctls).
    package enum Request {
        /// KCOV_IOC_SETBUFSIZE, `_IOW('K', 1, uint64_t)`: `uint64_t *nentries`.
        package static let setBufferSize: UInt = 0x8008_4b01
        /// KCOV_IOC_ENABLE, `_IOW('K', 2, int)`: `int *mode`.
        package static let enable: UInt = 0x8004_4b02
        /// KCOV_IOC_DISABLE, `_IO('K', 3)`: no argument.
        package static let disable: UInt = 0x2000_4b03
        /// KCOV_IOC_REMOTE_ATTACH, `_IOW('K', 10, struct kcov_ioc_remote_attach)`: 16 bytes,
        /// `uint64_t subsystem, id`.
        package static let remoteAttach: UInt = 0x8010_4b0a
        /// KCOV_IOC_REMOTE_DETACH, `_IO('K', 11)`: no argument.
        package static let remoteDetach: UInt = 0x2000_4b0b
    }

    /// KCOV_BUF_MAX_ENTRIES: 256 << 10 entries.
    package static let maxEntries = 256 << 10
    /// KCOV_ENTRY_SIZE: `kcov_int_t` is a 64-bit word on every architecture.
    package static let entrySize = 8
    /// The largest buffer, 2 MiB: the mmap size and offset bound (Docs/kcov-netbsd.md#mmap).
    package static let maxBufferBytes = maxEntries * entrySize
    /// KCOV_REMOTE_VHCI.
    package static let subsystemVHCI: UInt64 = 0
    /// vHCI ports per bus that `vhci_attach` registers (Docs/kcov-netbsd.md#remote-coverage).
    package static let vhciPortsPerBus = 8

    /// A `(subsystem, id)` a remote can be registered as: `struct kcov_ioc_remote_attach`.
    package struct RemoteTarget: Sendable, Hashable {
        package var subsystem: UInt64
        package var id: UInt64

        package init(subsystem: UInt64, id: UInt64) {
            self.subsystem = subsystem
            self.id = id
        }

        /// `KCOV_REMOTE_VHCI`, `KCOV_REMOTE_VHCI_ID(bus, port)` = `bus << 32 | port`.
        package static func vhci(bus: UInt32, port: UInt32) -> RemoteTarget {
            RemoteTarget(subsystem: subsystemVHCI, id: UInt64(bus) << 32 | UInt64(port))
        }
    }

    /// Where the device is.
    package let devicePath: String
    /// The device node exists (else ENOENT).
    package let deviceExists: Bool
    /// The caller may open the node (else EACCES).
    package let accessAllowed: Bool
    /// The kernel has `options KCOV` (else the node has no driver: ENXIO).
    package let driverPresent: Bool
    /// vHCI buses attached (each registers ``vhciPortsPerBus`` remotes); only for ``Revision/current``.
    package let vhciBuses: Int
    package let revision: Revision

    private let kernel: Mutex<NetBSDKcovKernel>

    /// A NetBSD kernel with kcov at `devicePath`. The knobs simulate a missing node (ENOENT), a
    /// forbidden one (EACCES), a kernel without `options KCOV` (ENXIO), a full fd table
    /// (`descriptorLimit` fds, then EMFILE from `fd_allocfile`), the netbsd-9 driver, and the vHCI
    /// buses attached.
    package init(
        devicePath: String = "/dev/kcov", deviceExists: Bool = true, accessAllowed: Bool = true,
        driverPresent: Bool = true, descriptorLimit: Int = 1024, vhciBuses: Int = 1, revision: Revision = .current
    ) {
        precondition(descriptorLimit > 0 && vhciBuses >= 0)
        self.devicePath = devicePath
        self.deviceExists = deviceExists
        self.accessAllowed = accessAllowed
        self.driverPresent = driverPresent
        self.vhciBuses = vhciBuses
        self.revision = revision
        kernel = Mutex(NetBSDKcovKernel(revision: revision, vhciBuses: vhciBuses, descriptorLimit: descriptorLimit))
    }

    /// Frees every buffer still allocated: pointers from ``mmap(length:protection:flags:fd:offset:)``
    /// must not outlive the model.
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

    /// Runs one syscall's worth of kernel work under the lock for the calling LWP. errno is
    /// preserved, so only a failure's own errno is ever seen.
    private func syscall<T: Sendable>(_ body: (NetBSDKcovKernel, CInt) -> T) -> T {
        let saved = errno
        let tid = Self.threadID()
        let result = kernel.withLock { body($0, tid) }
        errno = saved
        return result
    }

    /// Runs `body` under the lock without any syscall semantics (harness work).
    func withKernel<T: Sendable>(_ body: (NetBSDKcovKernel) -> T) -> T {
        kernel.withLock { body($0) }
    }

    // MARK: KernelInterface

    /// open(2) (Docs/kcov-netbsd.md#device-and-open): ENOENT unless the path is the device and its node exists; EACCES without
    /// permission; ENXIO without the driver; EMFILE when the fd table is full. The flags are
    /// ignored, as kcov ignores them. Every open is a new descriptor.
    package func open(_ path: String, flags: CInt) -> CInt {
        Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            guard path == devicePath, deviceExists else { return -ENOENT }
            guard accessAllowed else { return -EACCES }
            guard driverPresent else { return -ENXIO }
            return kernel.open()
        })
    }

    /// close(2): EBADF for an fd the model did not hand out. The file's last fd runs
    /// `kcov_fops_close` (Docs/kcov-netbsd.md#close-while-enabled): an attached remote is disabled; a descriptor still enabled on an
    /// LWP keeps tracing until that LWP is freed; anything else is freed. A mapping keeps the buffer.
    package func close(_ fd: CInt) -> CInt {
        Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.close(fd)
        })
    }

    /// dup(2): the lowest free model fd shares `fd`'s file (and KD).
    package func dup(_ fd: CInt) -> CInt {
        Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return kernel.dup(fd)
        })
    }

    /// dup2(2): `target` shares `fd`'s file, closing what was open there. EBADF for an unknown
    /// `fd` or a `target` outside the model's fd table (2000 up to the descriptor limit).
    package func dup2(_ fd: CInt, _ target: CInt) -> CInt {
        Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return kernel.dup2(fd, target)
        })
    }

    /// ioctl(2) by value. `sys_ioctl` treats the value as the argument's address: for an IOC_IN
    /// request (SETBUFSIZE, ENABLE, REMOTE_ATTACH) it copies the argument in from that address,
    /// so a small integer is EFAULT and the address of a real variable works. DISABLE and
    /// REMOTE_DETACH (IOC_VOID) ignore the value. Unknown requests are EINVAL (after the copy-in
    /// their direction bits ask for).
    package func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        Self.finish(syscall { kernel, tid in -kernel.ioctl(fd, request, .value(value), tid: tid) })
    }

    /// ioctl(2) by pointer: the driver reads IOCPARM_LEN bytes from `pointer` for IOC_IN requests
    /// (8 for SETBUFSIZE, 4 for ENABLE, 16 for REMOTE_ATTACH). DISABLE and REMOTE_DETACH ignore it.
    package func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        Self.finish(syscall { kernel, tid in -kernel.ioctl(fd, request, .pointer(pointer), tid: tid) })
    }

    /// mmap(2) (Docs/kcov-netbsd.md#mmap). Generic checks first (EBADF, zero length EINVAL, exactly one of MAP_SHARED
    /// and MAP_PRIVATE else EINVAL; the offset is aligned down to a page and the length grown to
    /// match), then `kcov_fops_mmap`'s: PROT_EXEC EACCES, negative offset EINVAL, size above 2 MiB
    /// EINVAL, offset above 2 MiB EINVAL, then `size + offset > bufsize` ENOMEM (so ENOMEM before
    /// SETBUFSIZE). An attached fd maps the remote's buffer. Returns the buffer's address plus
    /// `offset`; the fd's open mode is not checked.
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

    /// munmap(2) of a mapping from ``mmap(length:protection:flags:fd:offset:)`` with its length:
    /// drops the mapping's buffer reference (the last one frees a closed buffer). Unlike NetBSD,
    /// a range that is not exactly one mapping is EINVAL: the model cannot unmap part of a buffer.
    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let key = UInt(bitPattern: address)
        return Self.finish(syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return -kernel.munmap(key, length: length)
        })
    }

    /// `_lwp_self(2)`: the real kernel thread id; traced like any syscall.
    package func currentThreadID() -> CInt {
        syscall { kernel, tid in
            kernel.record(Self.syscallPath, for: tid)
            return tid
        }
    }

    /// `read(-1, NULL, 0)`: executes ``probePath`` on the calling LWP, recorded into its own
    /// descriptor only (Docs/kcov-netbsd.md#ownership): PCs in TRACE_PC, records in TRACE_CMP, nothing in NONE, in
    /// remote mode or without `l_kcov`. Like the real call it fails with EBADF.
    package func probeSyscall() {
        syscall { kernel, tid in kernel.record(Self.probePath, for: tid) }
        errno = EBADF
    }

    /// A syscall of the calling thread that runs `path`: recorded like ``probeSyscall()`` (PCs in
    /// PC mode, records in CMP mode, only into this thread's enabled instance; see
    /// `Docs/kcov-netbsd.md#buffer-layout`). Lets a test give each simulated call its own coverage.
    package func syscall(running path: KernelPath) {
        syscall { kernel, tid in kernel.record(path, for: tid) }
    }

    /// NetBSD has no `/proc/mounts` and kcov needs no file system: every path is ENOENT.
    package func readTextFile(_ path: String) -> String? {
        syscall { kernel, tid in kernel.record(Self.syscallPath, for: tid) }
        errno = ENOENT
        return nil
    }

    // MARK: Thread exit, process exit and remote sections

    /// The LWP `tid` exited and was freed (`lwp_free` → `kcov_lwp_free`, Docs/kcov-netbsd.md#thread-exit): a descriptor it
    /// had enabled is disabled, and freed if its fd was closed meanwhile. Any thread may then
    /// enable the fd. Nothing happens for an LWP without `l_kcov`.
    package func threadExited(_ tid: CInt) {
        kernel.withLock { kernel in kernel.freeExitedLWP(kernel.exitLWP(tid)) }
    }

    /// The simulated process exits without cleaning up: every fd is closed (last closes run
    /// `kcov_fops_close`), every mapping goes, every LWP is freed, unreaped children are reaped.
    /// Registered remotes, being the kernel's, stay; the model can be used again as a new process.
    package func exitProcess() {
        kernel.withLock { $0.exitProcess() }
    }

    /// A kernel LWP runs the USB hub-explore section of `target` between `kcov_remote_enter` and
    /// `kcov_remote_leave` (Docs/kcov-netbsd.md#remote-coverage), executing ``remoteSectionPath``: recorded into the remote's
    /// buffer in its mode if it is enabled. Returns the entries (PCs or records) appended, 0 when
    /// the remote is not enabled, `nil` when nothing is registered as `target`.
    @discardableResult
    package func runRemoteSection(_ target: RemoteTarget) -> Int? {
        kernel.withLock { $0.runRemoteSection(target, path: Self.remoteSectionPath) }
    }

    // MARK: Inspection for tests

    /// File descriptors open on the device (dup'd ones count separately).
    package var openDescriptorCount: Int { kernel.withLock { $0.descriptors.count } }

    /// Mappings not yet unmapped (several of one buffer count separately).
    package var liveMappingCount: Int { kernel.withLock { $0.mappings.values.reduce(0) { $0 + $1.count } } }

    /// Buffers allocated by SETBUFSIZE and not yet freed (remote buffers are the kernel's and not counted).
    package var liveBufferCount: Int { kernel.withLock { $0.liveBuffers } }

    /// Kcov descriptors (`struct kcov_desc`) not yet freed, including ones a close while enabled
    /// left to their LWP.
    package var liveKDCount: Int { kernel.withLock { $0.liveDescs } }

    /// Words the CMP hook would have written outside a buffer because of a user-written count
    /// (see `trace_cmp`'s wrapping bound); the model counts them instead of writing them.
    package var outOfBoundsWrites: Int { kernel.withLock { $0.outOfBoundsWrites } }

    /// Every `(subsystem, id)` registered for remote coverage.
    package var registeredRemotes: Set<RemoteTarget> { kernel.withLock { Set($0.remotes.keys) } }

    /// An fd's `struct kcov_desc` (Docs/kcov-netbsd.md#device-and-open).
    package struct DescriptorState: Sendable, Equatable {
        package var enabled: Bool
        /// The mode of the last ENABLE (stale after DISABLE, as in the kernel).
        package var mode: Mode
        /// `nent` of SETBUFSIZE; 0 before.
        package var entries: Int
        /// `bufsize` in bytes; 0 before SETBUFSIZE.
        package var bufferBytes: Int
        /// The LWP whose `l_kcov` it is, while enabled and that LWP is alive.
        package var owner: CInt?
        /// The remote it is attached to.
        package var remote: RemoteTarget?
        /// How many fds refer to its file (dup, dup2).
        package var descriptors: Int
    }

    /// The descriptor behind `fd`, or `nil` if the model did not hand `fd` out.
    package func descriptorState(_ fd: CInt) -> DescriptorState? {
        kernel.withLock { kernel in
            guard let file = kernel.descriptors[fd], let desc = file.desc else { return nil }
            return DescriptorState(
                enabled: desc.enabled, mode: desc.mode, entries: desc.buffer?.entries ?? 0,
                bufferBytes: desc.buffer?.bytes ?? 0, owner: desc.ownerTID,
                remote: desc.remote.map { RemoteTarget(subsystem: $0.subsystem, id: $0.id) },
                descriptors: kernel.descriptors.values.filter { $0 === file }.count)
        }
    }

    /// A remote's kernel-owned descriptor.
    package struct RemoteState: Sendable, Equatable {
        package var enabled: Bool
        package var mode: Mode
        /// Open fds attached to it.
        package var attachedDescriptors: Int

        package init(enabled: Bool, mode: Mode, attachedDescriptors: Int) {
            self.enabled = enabled
            self.mode = mode
            self.attachedDescriptors = attachedDescriptors
        }
    }

    /// The remote registered as `target`, or `nil`.
    package func remoteState(_ target: RemoteTarget) -> RemoteState? {
        kernel.withLock { kernel in
            guard let remote = kernel.remotes[target] else { return nil }
            let attached = kernel.descriptors.values.filter { $0.desc?.remote === remote }.count
            return RemoteState(enabled: remote.desc.enabled, mode: remote.desc.mode, attachedDescriptors: attached)
        }
    }

    /// What `l_kcov` of a live LWP points at.
    package struct ThreadState: Sendable, Equatable {
        /// The lowest fd whose file holds the descriptor, or `nil` once that file was closed
        /// (tracing continues, Docs/kcov-netbsd.md#close-while-enabled).
        package var descriptor: CInt?
        package var enabled: Bool
        package var mode: Mode

        package init(descriptor: CInt?, enabled: Bool, mode: Mode) {
            self.descriptor = descriptor
            self.enabled = enabled
            self.mode = mode
        }
    }

    /// The kcov binding of live LWP `tid`, or `nil` when its `l_kcov` is NULL.
    package func threadState(_ tid: CInt) -> ThreadState? {
        kernel.withLock { kernel in
            guard let desc = kernel.binding(of: tid) else { return nil }
            let fd = kernel.descriptors.filter { $0.value.desc === desc }.keys.min()
            return ThreadState(descriptor: fd, enabled: desc.enabled, mode: desc.mode)
        }
    }

    /// The first `words` words of the buffer `fd` maps (the remote's when attached), count word
    /// first, all of `nent` if `words` is nil; `nil` without a buffer.
    package func bufferContents(_ fd: CInt, words: Int? = nil) -> [UInt64]? {
        kernel.withLock { kernel in
            guard let desc = kernel.descriptors[fd]?.desc, let buffer = (desc.remote?.desc ?? desc).buffer else {
                return nil
            }
            return (0..<min(words ?? buffer.entries, buffer.entries)).map { buffer[$0] }
        }
    }
}
