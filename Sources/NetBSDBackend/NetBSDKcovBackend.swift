public import CoverageAPI
package import KernelSeam

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// NetBSD kcov(4) through `/dev/kcov`: per-thread, ordered PC traces and comparison records in
/// 64-bit entries, remote coverage of VHCI ports.
///
/// The corresponding ioctls are KCOV_IOC_SETBUFSIZE and KCOV_IOC_ENABLE (arguments by pointer),
/// KCOV_IOC_DISABLE, KCOV_IOC_REMOTE_ATTACH and KCOV_IOC_REMOTE_DETACH.
///
/// NetBSD answers two different misuses of ENABLE with the same EBUSY: the fd is already enabled
/// (Linux: EINVAL, `.invalidState`) and the calling thread already has another fd enabled (Linux:
/// EBUSY, `.busy`). The backend tells them apart after the fact with a SETBUFSIZE of 0 entries,
/// which changes nothing: the driver checks "enabled" (EBUSY) before the size (EINVAL), so the
/// answer says whether this fd is the enabled one.
public struct NetBSDKcovBackend: KcovDriver {
    /// `/dev/kcov` and the kernel it is reached through.
    package let device: KcovDeviceNode
    package var kernel: any KernelInterface { device.kernel }
    /// Where the kcov device is.
    public var devicePath: String { device.path }

    /// The host kernel's kcov at `devicePath` (only usable on NetBSD; see ``availability()``).
    public init(devicePath: String = NetBSDKcovABI.devicePath) {
        device = .host(path: devicePath, system: NetBSDKcovABI.systemName, kernelNeeded: Self.kernelNeeded)
    }

    /// A backend over any implementation of the seam, such as the NetBSD reference model.
    package init(kernel: any KernelInterface, devicePath: String = NetBSDKcovABI.devicePath) {
        device = KcovDeviceNode(kernel: kernel, path: devicePath, system: NetBSDKcovABI.systemName, kernelNeeded: Self.kernelNeeded)
    }

    /// The kernel to run on, said on a host of another system.
    static let kernelNeeded = "a NetBSD kernel with options KCOV"

    public var name: String { "netbsd" }

    /// NetBSD's capabilities.
    ///
    /// - `bufferWordMultiple` is 1: SETBUFSIZE rounds the buffer up to whole pages and mmap accepts
    ///   any sub-range of it, so a mapping of exactly `entries × 8` bytes works for every size.
    /// - `mapLengthMustMatch` is false: shorter mappings (and offsets) are accepted; a mapping that
    ///   reaches past the page-rounded buffer is still refused (ENOMEM).
    /// - `collectsAfterClose`: closing an enabled fd leaves its LWP tracing into the orphaned buffer
    ///   until the LWP is freed (Docs/kcov-netbsd.md#thread-exit).
    /// - `remapAfterRemoteAttach`: after REMOTE_ATTACH the fd's mappings show the remote's buffer
    ///   only when made after the attach (Docs/kcov-netbsd.md#remote-coverage), so collectors map again.
    public var capabilities: BackendCapabilities {
        BackendCapabilities(
            supportedModes: [.pc, .comparisons], pcKind: .kernelAddress, granularity: .basicBlock,
            perThread: true, orderedTrace: true, remote: [.vhciPort],
            requiresMapBeforeEnable: false, remapAfterDisable: false, mapLengthMustMatch: false,
            oneEnabledInstancePerThread: true, collectsAfterClose: true,
            buffer: BufferRules(words: NetBSDKcovABI.bufferEntries, wordMultiple: 1, wordSize: NetBSDKcovABI.entrySize),
            remapAfterRemoteAttach: true)
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
                (.deviceMissing, "\(devicePath) does not exist: create it with `cd /dev && sh MAKEDEV kcov`, on a kernel built with options KCOV")
            case ENXIO, ENODEV:
                (.deviceMissing,
                 "\(devicePath) has no driver: this is a kernel without options KCOV; build one with `options KCOV` and `makeoptions KCOV=1`")
            case EACCES, EPERM: (.permissionDenied, "no permission to open \(devicePath): run as root or give the user access to the node")
            case EMFILE, ENFILE:
                (.system, "no file descriptor left to open \(devicePath): close some descriptors (each open is a new kcov instance)")
            default: nil
            }
        }
    }

    public func closeDevice(_ fd: Int32) {
        kernel.closeDevice(fd)
    }

    // MARK: Buffer

    public func initialize(_ fd: Int32, words: Int) throws(CoverageError) {
        try setBufferSize(fd, entries: UInt64(clamping: words))
    }

    /// KCOV_IOC_SETBUFSIZE with any entry count, for misuse checks.
    package func setBufferSize(_ fd: Int32, entries: UInt64) throws(CoverageError) {
        let range = NetBSDKcovABI.bufferEntries
        try Self.ioctlErrors.check(
            kernel.ioctl(fd, NetBSDKcovABI.setBufferSize, passing: entries), "ioctl(KCOV_IOC_SETBUFSIZE, \(entries))"
        ) {
            switch $0 {
            case EINVAL: (.bufferSize, "the kernel refused a buffer of \(entries) entries: use \(range.lowerBound)…\(range.upperBound) entries")
            case EEXIST: (.busy, "this kcov fd already has a buffer: SETBUFSIZE is allowed once per open; open the device again")
            case EBUSY: (.busy, "coverage is enabled on this kcov fd: its buffer cannot change; disable it and open the device again")
            case ENOMEM: (.outOfMemory, "the kernel could not allocate \(entries) entries: use a smaller buffer")
            default: nil
            }
        }
    }

    public func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        try map(fd, bytes: words * NetBSDKcovABI.entrySize)
    }

    /// A shared read-write mmap of `bytes` at `offset`, for misuse checks.
    package func map(_ fd: Int32, bytes: Int, offset: Int = 0) throws(CoverageError) -> UnsafeMutableRawPointer {
        let maxBytes = NetBSDKcovABI.bufferEntries.upperBound * NetBSDKcovABI.entrySize
        return try kernel.mapShared(fd, bytes: bytes, offset: offset, call: "mmap(\(bytes) bytes at \(offset))") {
            switch $0 {
            case ENOMEM:
                (.invalidState,
                 "the kernel refused the mapping: set the buffer size first (KCOV_IOC_SETBUFSIZE), and map no more than entries × 8 bytes of it")
            case EINVAL:
                (.bufferSize,
                 "kcov maps at most \(maxBytes) bytes (\(NetBSDKcovABI.bufferEntries.upperBound) entries) at a non-negative offset within them")
            case EACCES: (.permissionDenied, "kcov refuses executable mappings, and a shared writable one needs the fd opened O_RDWR")
            case ENXIO: (.invalidState, "the kcov fd is being closed: open the device again")
            default: nil
            }
        }
    }

    public func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) {
        kernel.unmapBuffer(address, bytes: words * NetBSDKcovABI.entrySize)
    }

    // MARK: Collection

    /// KCOV_IOC_ENABLE's `int` for `mode`.
    static func modeArgument(_ mode: CoverageMode) -> Int32 {
        switch mode {
        case .pc: NetBSDKcovABI.modeTracePC
        case .comparisons: NetBSDKcovABI.modeTraceCMP
        }
    }

    public func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        try enable(fd, rawMode: Self.modeArgument(mode))
    }

    /// KCOV_IOC_ENABLE with any mode number, including KCOV_MODE_NONE (0), which binds the thread
    /// but records nothing.
    public func enable(_ fd: Int32, rawMode: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, NetBSDKcovABI.enable, passing: rawMode), "ioctl(KCOV_IOC_ENABLE, \(rawMode))") {
            enableMeaning($0, rawMode: rawMode) { fdIsEnabled(fd) ? Self.alreadyEnabled : Self.threadBusy }
        }
    }

    /// Whether `fd` itself is enabled (or attached to a remote), asked without changing anything:
    /// SETBUFSIZE(0) is EBUSY on an enabled fd, 0 on an attached one, and EINVAL otherwise.
    func fdIsEnabled(_ fd: Int32) -> Bool {
        let saved = errno
        defer { errno = saved }
        return kernel.ioctl(fd, NetBSDKcovABI.setBufferSize, passing: UInt64(0)) == 0 || errno == EBUSY
    }

    /// ENABLE's EBUSY when the fd itself is enabled.
    static let alreadyEnabled: ErrnoMeaning = (
        .invalidState,
        "coverage is already enabled on this kcov fd (by this or another thread, or on the remote it is attached to): one enabled thread per fd; disable it first"
    )

    /// ENABLE's EBUSY when the calling thread has another fd enabled.
    static let threadBusy: ErrnoMeaning = (
        .busy,
        "this thread already has kcov enabled on another fd (perhaps one closed while enabled, which stays bound until the thread exits): disable that one first"
    )

    /// What an ENABLE errno means, with `busy` saying which EBUSY this is (asked only for EBUSY);
    /// the same table serves a remote's ENABLE and the forked child's.
    func enableMeaning(_ code: Int32, rawMode: Int32, busy: () -> ErrnoMeaning) -> ErrnoMeaning? {
        switch code {
        case EBUSY: busy()
        case EINVAL: (.invalidArgument, "\(rawMode) is not a kcov mode: use 0 (NONE), 1 (TRACE_PC) or 2 (TRACE_CMP)")
        case ENOBUFS: (.invalidState, "this kcov fd has no buffer: set the buffer size first (KCOV_IOC_SETBUFSIZE)")
        case ENXIO: (.invalidState, "the kcov fd is being closed: open the device again")
        default: nil
        }
    }

    public func disable(_ fd: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, NetBSDKcovABI.disable, value: 0), "ioctl(KCOV_IOC_DISABLE)") {
            switch $0 {
            case ENOENT:
                (.notOwner, "coverage on this kcov fd is not enabled, or not by the calling thread: disable from the thread that enabled it")
            default: nil
            }
        }
    }

    /// Attaches `fd` to the remote coverage of one VHCI port and enables it in `mode`. NetBSD has
    /// one remote per fd and a fixed buffer of 262144 entries, so `sectionWords` is not used; map
    /// the fd after attaching to see the remote's buffer.
    public func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        var port: (bus: UInt32, port: UInt32)?
        for target in request.targets {
            switch target {
            case .vhciPort(let bus, let number):
                guard port == nil else {
                    throw CoverageError(.invalidArgument, "NetBSD attaches one VHCI port per kcov fd: open one fd per port")
                }
                port = (bus, number)
            case .common, .usbBus:
                throw CoverageError(
                    .unsupportedOperation,
                    "NetBSD's remote coverage attaches to VHCI ports only; \(target.kind.rawValue) targets are Linux's")
            }
        }
        guard let port else {
            throw CoverageError(.invalidArgument, "a remote request needs one VHCI port")
        }
        try attachRemote(fd, subsystem: NetBSDKcovABI.remoteVHCI, id: NetBSDKcovABI.vhciID(bus: port.bus, port: port.port))
        let argument = Self.modeArgument(mode)
        try Self.ioctlErrors.check(
            kernel.ioctl(fd, NetBSDKcovABI.enable, passing: argument), "ioctl(KCOV_IOC_ENABLE, \(argument)) of a remote"
        ) {
            enableMeaning($0, rawMode: argument) {
                (.handleInUse, "VHCI bus \(port.bus) port \(port.port) is already being traced through another kcov fd: disable that one first")
            }
        }
    }

    /// KCOV_IOC_REMOTE_ATTACH with a raw `(subsystem, id)`, for misuse checks.
    package func attachRemote(_ fd: Int32, subsystem: UInt64, id: UInt64) throws(CoverageError) {
        try Self.ioctlErrors.check(
            kernel.ioctl(fd, NetBSDKcovABI.remoteAttach, passing: (subsystem, id)),
            "ioctl(KCOV_IOC_REMOTE_ATTACH, \(subsystem), 0x\(String(id, radix: 16)))"
        ) {
            switch $0 {
            case EEXIST: (.invalidState, "coverage is enabled on this kcov fd for its thread: disable it before attaching to a remote")
            case ENOENT:
                (.invalidArgument,
                 "no remote is registered as subsystem \(subsystem), id 0x\(String(id, radix: 16)): attach vhci(4) and use a bus it created, ports 0…7")
            case EINVAL: (.unsupportedOperation, "this kernel has no remote kcov (it predates NetBSD 10's KCOV_IOC_REMOTE_ATTACH)")
            default: nil
            }
        }
    }

    /// KCOV_IOC_REMOTE_DETACH: the fd leaves its remote, which is disabled.
    public func detachRemote(_ fd: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, NetBSDKcovABI.remoteDetach, value: 0), "ioctl(KCOV_IOC_REMOTE_DETACH)") {
            switch $0 {
            case EEXIST: (.invalidState, "coverage is enabled on this kcov fd for its thread: disable it first")
            case ENOENT: (.invalidState, "this kcov fd is not attached to a remote")
            case EINVAL: (.unsupportedOperation, "this kernel has no remote kcov (it predates NetBSD 10's KCOV_IOC_REMOTE_DETACH)")
            default: nil
            }
        }
    }

    /// `_IO('K', 127)`: a request in kcov's group that NetBSD does not define.
    static let undefinedRequest = BSDIoctl.request(direction: BSDIoctl.void, group: "K", number: 127, length: 0)

    /// Any request number by value, for misuse checks. NetBSD's driver answers an unknown request
    /// with EINVAL (its `default:` case).
    package func rawIoctl(_ fd: Int32, request: UInt, value: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, request, value: value), "ioctl(0x\(String(request, radix: 16)))") {
            switch $0 {
            case EINVAL: (.unsupportedOperation, "NetBSD's kcov does not define request 0x\(String(request, radix: 16))")
            default: nil
            }
        }
    }

    public func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) {
        try rawIoctl(fd, request: Self.undefinedRequest, value: 0)
    }

    public func currentThreadID() -> Int32 { kernel.currentThreadID() }

    public func probe() { kernel.probeSyscall() }

    public func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit {
        let child = childEnable(mode)
        return try kernel.run(
            command, fd: fd, enable: child.call, buffer: buffer, bufferBytes: words * NetBSDKcovABI.entrySize, enableError: child.error)
    }

    public func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        let child = childEnable(mode)
        return try kernel.runForked(fd: fd, enable: child.call, buffer: buffer, timeout: timeout, body: body, enableError: child.error)
    }

    /// A child's KCOV_IOC_ENABLE in `mode`, and what its errno means.
    func childEnable(_ mode: CoverageMode) -> (call: EnableCall, error: (Int32) -> CoverageError) {
        let argument = Self.modeArgument(mode)
        return (EnableCall(request: NetBSDKcovABI.enable, argument: UInt(argument), byPointer: true), { code in
            // The child is a fresh LWP: an EBUSY can only mean the fd is enabled elsewhere.
            Self.ioctlErrors.error("ioctl(KCOV_IOC_ENABLE) in the child", code) {
                enableMeaning($0, rawMode: argument) { Self.alreadyEnabled }
            }
        })
    }

    // MARK: Errors

    /// Errors any ioctl can give, in NetBSD's words.
    static let ioctlErrors = IoctlErrors(unknownRequest: "this descriptor is not NetBSD's kcov: the kernel does not know the request")
}
