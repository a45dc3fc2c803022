public import CoverageAPI
package import KernelSeam
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// OpenBSD kcov(4) through `/dev/kcov`: per-thread, ordered PC traces and comparison records in
/// pointer-sized entries, and remote coverage of the kernel tasks and timeouts run on behalf of
/// the calling process (KCOV_REMOTE_COMMON).
///
/// The corresponding ioctls are KIOSETBUFSIZE and KIOENABLE (arguments by pointer), KIODISABLE
/// and KIOREMOTEATTACH (Docs/kcov-openbsd.md#ioctls).
///
/// OpenBSD answers two different misuses of KIOENABLE with the same EBUSY: the calling thread
/// already traces this fd (Linux: EINVAL, `.invalidState`) and it traces another fd (Linux: EBUSY,
/// `.busy`), because the driver checks the thread's binding (`p_kd`) before the fd's state. The
/// backend tells them apart after the fact by asking from a fresh thread, which has no binding: its
/// KIOENABLE fails with ENXIO when the fd is not READY (this thread's own fd), and succeeds when
/// it is (the thread's binding is elsewhere), in which case that thread disables it again at once.
public struct OpenBSDKcovBackend: KcovDriver {
    /// `/dev/kcov` and the kernel it is reached through.
    package let device: KcovDeviceNode
    package var kernel: any KernelInterface { device.kernel }
    /// Where the kcov device is.
    public var devicePath: String { device.path }
    /// Descriptors attached to the process's kernel tasks through this backend (its copies share
    /// them). OpenBSD keeps an attachment until the descriptor is closed and has no detach, so a
    /// second ``enableRemote(_:mode:_:)`` on the same descriptor (after KIODISABLE, or after a
    /// KIOENABLE that failed once attached) must skip KIOREMOTEATTACH, which would refuse the
    /// descriptor's own registration with EBUSY. Found by the fault-injection sweep.
    let attached = AttachedDescriptors()

    /// The host kernel's kcov at `devicePath` (only usable on OpenBSD; see ``availability()``).
    public init(devicePath: String = OpenBSDKcovABI.devicePath) {
        device = .host(path: devicePath, system: OpenBSDKcovABI.systemName, kernelNeeded: Self.kernelNeeded)
    }

    /// A backend over any implementation of the seam, such as the OpenBSD reference model.
    package init(kernel: any KernelInterface, devicePath: String = OpenBSDKcovABI.devicePath) {
        device = KcovDeviceNode(kernel: kernel, path: devicePath, system: OpenBSDKcovABI.systemName, kernelNeeded: Self.kernelNeeded)
    }

    /// The kernel to run on, said on a host of another system.
    static let kernelNeeded = "an OpenBSD kernel with pseudo-device kcov"

    public var name: String { "openbsd" }

    /// OpenBSD's capabilities.
    ///
    /// - `words` starts at 1: KIOSETBUFSIZE accepts a single entry (a buffer that holds nothing).
    /// - `wordMultiple` is a page of entries: `kcovmmap` refuses any page at or past
    ///   `(entries − 1) × 8`, so a size of one entry more than whole pages cannot be mapped whole;
    ///   whole pages always can (Docs/kcov-openbsd.md#mmap).
    /// - `mapLengthMustMatch` is false: shorter mappings are accepted.
    /// - `collectsAfterClose` is false: closing an enabled fd moves it to DYING and stops tracing.
    /// - `remote` is `.commonHandle`: KCOV_REMOTE_COMMON attaches the calling process's kernel
    ///   tasks; the handle's instance is ignored, and one attachment per process is allowed.
    public var capabilities: BackendCapabilities {
        BackendCapabilities(
            supportedModes: [.pc, .comparisons], pcKind: .kernelAddress, granularity: .basicBlock,
            perThread: true, orderedTrace: true, remote: [.commonHandle],
            requiresMapBeforeEnable: false, remapAfterDisable: false, mapLengthMustMatch: false,
            oneEnabledInstancePerThread: true, collectsAfterClose: false,
            buffer: BufferRules(words: OpenBSDKcovABI.bufferEntries, wordMultiple: pageSize / 8, wordSize: OpenBSDKcovABI.entrySize))
    }

    /// The page size mappings are rounded to.
    public var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }

    public func availability() -> Availability {
        device.availability(explain: openError)
    }

    // MARK: Device

    public func openDevice() throws(CoverageError) -> Int32 {
        try device.open(explain: openError)
    }

    /// Why opening the device failed, with what to do about it.
    func openError(_ code: Int32) -> CoverageError {
        .system("open(\(devicePath))", errno: code) {
            switch $0 {
            case ENOENT:
                (.deviceMissing, "\(devicePath) does not exist: create it with `cd /dev && sh MAKEDEV kcov`, on a kernel with pseudo-device kcov")
            case ENXIO, ENODEV:
                (.deviceMissing, "\(devicePath) has no driver: this kernel has no kcov; build one with `pseudo-device kcov 1` and `makeoptions KCOV`")
            case EACCES, EPERM: (.permissionDenied, "no permission to open \(devicePath): run as root or give the user access to the node")
            case EMFILE, ENFILE:
                (.system, "no file descriptor left to open \(devicePath): close some descriptors (each open is a new kcov instance)")
            default: nil
            }
        }
    }

    public func closeDevice(_ fd: Int32) {
        attached.remove(fd)
        kernel.closeDevice(fd)
    }

    /// close(2) reporting its errno instead of trapping on EBADF: for OpenBSD's own `dying` test,
    /// whose second close of a descriptor another thread already closed must fail with EBADF.
    public func close(reporting fd: Int32) -> Int32? {
        attached.remove(fd)
        return kernel.close(fd) == 0 ? nil : errno
    }

    // MARK: Buffer

    public func initialize(_ fd: Int32, words: Int) throws(CoverageError) {
        try setBufferSize(fd, entries: UInt64(clamping: words))
    }

    /// KIOSETBUFSIZE with any entry count (an `unsigned long`, by pointer), for misuse checks.
    package func setBufferSize(_ fd: Int32, entries: UInt64) throws(CoverageError) {
        let range = OpenBSDKcovABI.bufferEntries
        try Self.ioctlErrors.check(kernel.ioctl(fd, OpenBSDKcovABI.setBufferSize, passing: entries), "ioctl(KIOSETBUFSIZE, \(entries))") {
            switch $0 {
            case EINVAL: (.bufferSize, "the kernel refused a buffer of \(entries) entries: use \(range.lowerBound)…\(range.upperBound) entries")
            case EBUSY:
                (.busy, "this kcov fd already has a buffer (or is enabled, or attached to a remote): KIOSETBUFSIZE is allowed once per open; open the device again")
            case ENOMEM: (.outOfMemory, "the kernel could not allocate \(entries) entries: use a smaller buffer")
            case ENXIO: (.invalidState, "the kcov fd is being closed: open the device again")
            default: nil
            }
        }
    }

    public func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        let (bytes, overflow) = words.multipliedReportingOverflow(by: OpenBSDKcovABI.entrySize)
        guard !overflow, words > 0 else { throw CoverageError(.bufferSize, "\(words) words cannot be mapped: give the buffer's size in entries") }
        return try map(fd, bytes: bytes)
    }

    /// A shared read-write mmap of `bytes` at `offset`, for misuse checks.
    package func map(_ fd: Int32, bytes: Int, offset: Int = 0) throws(CoverageError) -> UnsafeMutableRawPointer {
        try kernel.mapShared(fd, bytes: bytes, offset: offset, call: "mmap(\(bytes) bytes at \(offset))") {
            switch $0 {
            case EINVAL:
                (.invalidState,
                 "the kernel refused the mapping: set the buffer size first (KIOSETBUFSIZE), and map no page at or past (entries − 1) × 8 bytes (whole pages of entries always map)")
            case EACCES: (.permissionDenied, "a shared writable mapping needs the fd opened O_RDWR")
            case ENOMEM: (.outOfMemory, "no address space for \(bytes) bytes: use a smaller buffer")
            default: nil
            }
        }
    }

    public func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) {
        kernel.unmapBuffer(address, bytes: words * OpenBSDKcovABI.entrySize)
    }

    // MARK: Collection

    /// KIOENABLE's `int` for `mode`.
    static func modeArgument(_ mode: CoverageMode) -> Int32 {
        switch mode {
        case .pc: OpenBSDKcovABI.modeTracePC
        case .comparisons: OpenBSDKcovABI.modeTraceCMP
        }
    }

    public func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        try enable(fd, rawMode: Self.modeArgument(mode))
    }

    /// KIOENABLE with any mode number, including KCOV_MODE_NONE (0), which OpenBSD refuses.
    public func enable(_ fd: Int32, rawMode: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, OpenBSDKcovABI.enable, passing: rawMode), "ioctl(KIOENABLE, \(rawMode))") {
            Self.enableMeaning($0, rawMode: rawMode) { fdIsReady(fd) ? Self.threadBusy : Self.alreadyEnabled }
        }
    }

    /// Whether `fd` is READY, asked from a fresh thread (no `p_kd`): its KIOENABLE succeeds only on
    /// a READY fd, and that thread then disables it again (should that DISABLE fail, the thread's
    /// exit does it: `kcov_exit`); ENXIO means the fd is not READY.
    func fdIsReady(_ fd: Int32) -> Bool {
        let saved = errno
        defer { errno = saved }
        return kernel.runOnNewThread { () -> Bool in
            guard kernel.ioctl(fd, OpenBSDKcovABI.enable, passing: OpenBSDKcovABI.modeTracePC) == 0 else { return false }
            _ = kernel.ioctl(fd, OpenBSDKcovABI.disable, value: 0)
            return true
        }
    }

    /// KIOENABLE's EBUSY when the calling thread already traces this fd.
    static let alreadyEnabled: ErrnoMeaning = (
        .invalidState, "coverage is already enabled on this kcov fd by this thread: one enabled thread per fd; disable it first"
    )

    /// KIOENABLE's EBUSY when the calling thread traces another fd.
    static let threadBusy: ErrnoMeaning = (
        .busy,
        "this thread already has kcov enabled on another fd (perhaps one closed while enabled, which stays bound until the thread exits): disable that one first"
    )

    /// What a KIOENABLE errno means, with `busy` saying which EBUSY this is (asked only for EBUSY);
    /// the same table serves a remote's KIOENABLE and the forked child's.
    static func enableMeaning(_ code: Int32, rawMode: Int32, busy: () -> ErrnoMeaning) -> ErrnoMeaning? {
        switch code {
        case EBUSY: busy()
        case ENXIO:
            (.invalidState,
             "this kcov fd is not ready: set its buffer size first (KIOSETBUFSIZE); it may be enabled already (by another thread, or as a remote), or closing")
        case EINVAL: (.invalidArgument, "\(rawMode) is not an OpenBSD kcov mode: use 1 (KCOV_MODE_TRACE_PC) or 2 (KCOV_MODE_TRACE_CMP)")
        default: nil
        }
    }

    public func disable(_ fd: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, OpenBSDKcovABI.disable, value: 0), "ioctl(KIODISABLE)") {
            switch $0 {
            case EPERM:
                (.notOwner, "coverage on this kcov fd is not enabled, or not by the calling thread: disable from the thread that enabled it")
            case ENXIO: (.notOwner, "remote coverage on this kcov fd is not enabled: nothing to disable")
            default: nil
            }
        }
    }

    /// Attaches `fd` to the calling process's kernel tasks (KCOV_REMOTE_COMMON) and enables it in
    /// `mode`. OpenBSD ignores the handle's instance: one common target per process, so a second
    /// attachment anywhere in the process is `.handleInUse`. `sectionWords` is not used (remote
    /// sections write into this fd's own buffer).
    public func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        var instance: UInt32?
        for target in request.targets {
            switch target {
            case .common(let number):
                guard instance == nil else {
                    throw CoverageError(.invalidArgument, "OpenBSD attaches one common target per kcov fd (and per process): give one")
                }
                instance = number
            case .usbBus, .vhciPort:
                throw CoverageError(
                    .unsupportedOperation,
                    "OpenBSD's remote coverage attaches to the process's own kernel tasks (a common handle) only; \(target.kind.rawValue) targets are another kernel's")
            }
        }
        guard let instance else {
            throw CoverageError(.invalidArgument, "a remote request needs one common handle")
        }
        if !attached.contains(fd) {
            try attachRemote(fd, subsystem: OpenBSDKcovABI.remoteCommon, id: Int32(bitPattern: instance))
        }
        let argument = Self.modeArgument(mode)
        try Self.ioctlErrors.check(kernel.ioctl(fd, OpenBSDKcovABI.enable, passing: argument), "ioctl(KIOENABLE, \(argument)) of a remote") {
            Self.enableMeaning($0, rawMode: argument) { Self.threadBusy }
        }
    }

    /// KIOREMOTEATTACH with a raw `struct kio_remote_attach { int subsystem; int id; }`, for misuse checks.
    package func attachRemote(_ fd: Int32, subsystem: Int32, id: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(
            kernel.ioctl(fd, OpenBSDKcovABI.remoteAttach, passing: (subsystem, id)), "ioctl(KIOREMOTEATTACH, \(subsystem), \(id))"
        ) {
            switch $0 {
            case ENXIO:
                (.invalidState,
                 "this kcov fd is not ready for a remote: set its buffer size first, attach before enabling, and attach once")
            case EINVAL: (.invalidArgument, "\(subsystem) is not an OpenBSD remote subsystem: use KCOV_REMOTE_COMMON (0)")
            case EBUSY:
                (.handleInUse, "this process already has a kcov fd attached to its kernel tasks: one per process; close that fd first")
            default: nil
            }
        }
        attached.insert(fd)
    }

    public func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) {
        let request = BSDIoctl.request(direction: BSDIoctl.void, group: "K", number: 127, length: 0)
        try Self.ioctlErrors.check(kernel.ioctl(fd, request, value: 0), "ioctl(0x\(String(request, radix: 16)))")
    }

    public func currentThreadID() -> Int32 { kernel.currentThreadID() }

    public func probe() { kernel.probeSyscall() }

    public func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit {
        let child = childEnable(mode)
        return try kernel.run(
            command, fd: fd, enable: child.call, buffer: buffer, bufferBytes: words * OpenBSDKcovABI.entrySize, enableError: child.error)
    }

    public func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        let child = childEnable(mode)
        return try kernel.runForked(fd: fd, enable: child.call, buffer: buffer, timeout: timeout, body: body, enableError: child.error)
    }

    /// A child's KIOENABLE in `mode`, and what its errno means.
    func childEnable(_ mode: CoverageMode) -> (call: EnableCall, error: (Int32) -> CoverageError) {
        let argument = Self.modeArgument(mode)
        return (EnableCall(request: OpenBSDKcovABI.enable, argument: UInt(argument), byPointer: true), { code in
            // The child is a fresh thread without a binding: EBUSY cannot mean this fd.
            Self.ioctlErrors.error("ioctl(KIOENABLE) in the child", code) { Self.enableMeaning($0, rawMode: argument) { Self.threadBusy } }
        })
    }

    // MARK: Errors

    /// Errors any ioctl can give, in OpenBSD's words (an unknown request is ENOTTY, as on Linux).
    static let ioctlErrors = IoctlErrors(unknownRequest: "this descriptor is not OpenBSD's kcov: the kernel does not know the request")
}

/// Descriptors with a remote attachment, shared by a backend's copies.
final class AttachedDescriptors: Sendable {
    private let descriptors = Mutex<Set<Int32>>([])

    func insert(_ fd: Int32) { descriptors.withLock { _ = $0.insert(fd) } }
    func remove(_ fd: Int32) { descriptors.withLock { _ = $0.remove(fd) } }
    func contains(_ fd: Int32) -> Bool { descriptors.withLock { $0.contains(fd) } }
}
