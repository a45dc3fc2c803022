public import CoverageAPI
package import KernelSeam

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// FreeBSD kcov(4) through `/dev/kcov`: per-thread, ordered PC traces and comparison records in
/// 64-bit entries; no remote coverage.
///
/// The corresponding ioctls are KIOSETBUFSIZE and KIOENABLE (arguments by value, `_IOWINT`) and
/// KIODISABLE (Docs/kcov-freebsd.md#ioctls).
///
/// FreeBSD's errnos are unambiguous for the shared codes: ENABLE's EBUSY always means the fd is not
/// READY (no buffer yet, already enabled, or closing: `.invalidState`), and its EINVAL with a valid
/// mode always means the calling thread already has an fd (`.busy`).
public struct FreeBSDKcovBackend: KcovDriver {
    /// `/dev/kcov` and the kernel it is reached through.
    package let device: KcovDeviceNode
    package var kernel: any KernelInterface { device.kernel }
    /// Where the kcov device is.
    public var devicePath: String { device.path }

    /// The host kernel's kcov at `devicePath` (only usable on FreeBSD; see ``availability()``).
    public init(devicePath: String = FreeBSDKcovABI.devicePath) {
        device = .host(path: devicePath, system: FreeBSDKcovABI.systemName, kernelNeeded: Self.kernelNeeded)
    }

    /// A backend over any implementation of the seam, such as the FreeBSD reference model.
    package init(kernel: any KernelInterface, devicePath: String = FreeBSDKcovABI.devicePath) {
        device = KcovDeviceNode(kernel: kernel, path: devicePath, system: FreeBSDKcovABI.systemName, kernelNeeded: Self.kernelNeeded)
    }

    /// The kernel to run on, said on a host of another system.
    static let kernelNeeded = "a FreeBSD kernel with options COVERAGE and options KCOV"

    public var name: String { "freebsd" }

    /// FreeBSD's capabilities.
    ///
    /// - `wordMultiple` is a page of entries and `mapLengthMustMatch` is true: `kcov_mmap_single`
    ///   accepts only a mapping whose page-rounded length is exactly `entries × 8`, so a size that
    ///   is not whole pages can never be mapped (Docs/kcov-freebsd.md#mmap).
    /// - `collectsAfterClose` is false: closing an enabled fd moves it to DYING, which stops tracing
    ///   at once (Docs/kcov-freebsd.md#close-while-enabled).
    public var capabilities: BackendCapabilities {
        BackendCapabilities(
            supportedModes: [.pc, .comparisons], pcKind: .kernelAddress, granularity: .basicBlock,
            perThread: true, orderedTrace: true, remote: [],
            requiresMapBeforeEnable: false, remapAfterDisable: false, mapLengthMustMatch: true,
            oneEnabledInstancePerThread: true, collectsAfterClose: false,
            buffer: BufferRules(words: FreeBSDKcovABI.bufferEntries, wordMultiple: pageSize / 8, wordSize: FreeBSDKcovABI.entrySize))
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
            case ENOENT, ENXIO, ENODEV:
                (.deviceMissing, "\(devicePath) does not exist: this kernel was built without kcov; build one with `options COVERAGE` and `options KCOV`")
            case EACCES, EPERM: (.permissionDenied, "no permission to open \(devicePath): it is 0600 root:wheel; run as root")
            case EMFILE, ENFILE:
                (.system, "no file descriptor left to open \(devicePath): close some descriptors (each open is a new kcov instance)")
            default: nil
            }
        }
    }

    public func closeDevice(_ fd: Int32) {
        // kcov_close answers EBUSY on the last close of an enabled fd; the descriptor is gone all
        // the same (Docs/kcov-freebsd.md#close-while-enabled), so only EBADF is an error here.
        kernel.closeDevice(fd)
    }

    // MARK: Buffer

    public func initialize(_ fd: Int32, words: Int) throws(CoverageError) {
        try setBufferSize(fd, entries: words)
    }

    /// KIOSETBUFSIZE with any entry count, for misuse checks. The kernel takes the value as an
    /// `int` and reads it as `u_int`, so a count outside 0…UInt32.max would be truncated into
    /// another size: refused here before any syscall.
    package func setBufferSize(_ fd: Int32, entries: Int) throws(CoverageError) {
        let range = FreeBSDKcovABI.bufferEntries
        guard let value = UInt32(exactly: entries) else {
            throw CoverageError(
                .bufferSize, "a buffer of \(entries) entries cannot be asked for: FreeBSD passes the size as a 32-bit int; use \(range.lowerBound)…\(range.upperBound) entries")
        }
        try Self.ioctlErrors.check(kernel.ioctl(fd, FreeBSDKcovABI.setBufferSize, value: UInt(value)), "ioctl(KIOSETBUFSIZE, \(entries))") {
            switch $0 {
            case EINVAL:
                (.bufferSize,
                 "the kernel refused a buffer of \(entries) entries: use \(range.lowerBound)…\(range.upperBound) entries (kern.kcov.max_entries may lower the maximum)")
            case EBUSY: (.busy, "this kcov fd already has a buffer: KIOSETBUFSIZE is allowed once per open; open the device again")
            case ENOMEM: (.outOfMemory, "the kernel could not allocate \(entries) entries: use a smaller buffer")
            default: nil
            }
        }
    }

    public func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        let (bytes, overflow) = words.multipliedReportingOverflow(by: FreeBSDKcovABI.entrySize)
        guard !overflow, words > 0 else { throw CoverageError(.bufferSize, "\(words) words cannot be mapped: give the buffer's size in entries") }
        return try map(fd, bytes: bytes)
    }

    /// A shared read-write mmap of `bytes` at offset 0, for misuse checks.
    package func map(_ fd: Int32, bytes: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        try kernel.mapShared(fd, bytes: bytes, call: "mmap(\(bytes) bytes)") {
            switch $0 {
            case EINVAL:
                (.invalidState,
                 "the kernel refused the mapping: set the buffer size first (KIOSETBUFSIZE) and map exactly its size, entries × 8 bytes, a whole number of pages")
            case EACCES: (.permissionDenied, "a shared writable mapping needs the fd opened O_RDWR")
            case ENOMEM: (.outOfMemory, "no address space for \(bytes) bytes: use a smaller buffer")
            default: nil
            }
        }
    }

    public func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) {
        kernel.unmapBuffer(address, bytes: words * FreeBSDKcovABI.entrySize)
    }

    // MARK: Collection

    /// KIOENABLE's `int` for `mode`.
    static func modeArgument(_ mode: CoverageMode) -> Int32 {
        switch mode {
        case .pc: FreeBSDKcovABI.modeTracePC
        case .comparisons: FreeBSDKcovABI.modeTraceCMP
        }
    }

    public func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        try enable(fd, rawMode: Self.modeArgument(mode))
    }

    /// KIOENABLE with any mode number, passed by value as the kernel's `int` (sign-extended into
    /// the `unsigned long` argument, so -1 arrives as -1).
    public func enable(_ fd: Int32, rawMode: Int32) throws(CoverageError) {
        let argument = UInt(bitPattern: Int(rawMode))
        try Self.ioctlErrors.check(kernel.ioctl(fd, FreeBSDKcovABI.enable, value: argument), "ioctl(KIOENABLE, \(rawMode))") {
            Self.enableMeaning($0, rawMode: rawMode)
        }
    }

    /// What an ENABLE errno means; the same table serves the forked child's ENABLE.
    static func enableMeaning(_ code: Int32, rawMode: Int32) -> ErrnoMeaning? {
        let validMode = rawMode == FreeBSDKcovABI.modeTracePC || rawMode == FreeBSDKcovABI.modeTraceCMP
        switch code {
        case EBUSY:
            return (.invalidState,
                    "this kcov fd is not ready: set its buffer size first (KIOSETBUFSIZE), and enable it once, from one thread; a closed fd cannot be enabled")
        case EINVAL where validMode:
            return (.busy,
                    "this thread already has kcov enabled on another fd (perhaps one closed while enabled, which stays bound until the thread exits): disable that one first")
        case EINVAL:
            return (.invalidArgument,
                    "\(rawMode) is not a FreeBSD kcov mode: use 0 (KCOV_MODE_TRACE_PC) or 1 (KCOV_MODE_TRACE_CMP) — or this thread already has another kcov fd enabled")
        default:
            return nil
        }
    }

    public func disable(_ fd: Int32) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, FreeBSDKcovABI.disable, value: 0), "ioctl(KIODISABLE)") {
            switch $0 {
            case EINVAL:
                (.notOwner, "coverage on this kcov fd is not enabled, or not by the calling thread: disable from the thread that enabled it")
            default: nil
            }
        }
    }

    /// FreeBSD has no remote coverage (kcov(4), BUGS): every request is refused before any syscall.
    public func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        let kinds = Set(request.targets.map(\.kind.rawValue)).sorted().joined(separator: ", ")
        throw CoverageError(
            .unsupportedOperation,
            "FreeBSD's kcov has no remote coverage (\(kinds.isEmpty ? "no target" : kinds) asked for): trace the thread that does the work")
    }

    /// `_IO('c', 127)`: a request in kcov's group that FreeBSD does not define.
    static let undefinedRequest = BSDIoctl.request(direction: BSDIoctl.void, group: "c", number: 127, length: 0)

    /// Any request number by value, for misuse checks. FreeBSD's driver answers an unknown
    /// request with EINVAL (the `default:` of `kcov_ioctl`).
    package func rawIoctl(_ fd: Int32, request: UInt, value: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, request, value: value), "ioctl(0x\(String(request, radix: 16)))") {
            switch $0 {
            case EINVAL: (.unsupportedOperation, "FreeBSD's kcov does not define request 0x\(String(request, radix: 16))")
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
            command, fd: fd, enable: child.call, buffer: buffer, bufferBytes: words * FreeBSDKcovABI.entrySize, enableError: child.error)
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
        return (EnableCall(request: FreeBSDKcovABI.enable, argument: UInt(argument), byPointer: false), { code in
            Self.ioctlErrors.error("ioctl(KIOENABLE) in the child", code) { Self.enableMeaning($0, rawMode: argument) }
        })
    }

    // MARK: Errors

    /// Errors any ioctl can give, in FreeBSD's words.
    static let ioctlErrors = IoctlErrors(unknownRequest: "this descriptor is not FreeBSD's kcov: the kernel does not know the request")
}
