public import CoverageAPI
package import KernelSeam

#if canImport(Glibc)
import Glibc
#endif

/// Linux kcov through `/sys/kernel/debug/kcov`: per-thread, ordered PC traces and comparison
/// records, remote coverage through common and USB handles.
///
/// The corresponding ioctls are KCOV_INIT_TRACE, KCOV_ENABLE, KCOV_DISABLE and KCOV_REMOTE_ENABLE.
public struct LinuxKcovBackend: KcovDriver {
    package let kernel: any KernelInterface
    /// Where the kcov file is.
    public let devicePath: String

    /// The real kernel's kcov at `devicePath`.
    public init(devicePath: String = LinuxKcovABI.devicePath) {
        self.init(kernel: SystemKernel(), devicePath: devicePath)
    }

    /// A backend over any implementation of the seam, such as a reference model.
    package init(kernel: any KernelInterface, devicePath: String = LinuxKcovABI.devicePath) {
        self.kernel = kernel
        self.devicePath = devicePath
    }

    public var name: String { "linux" }

    public var capabilities: BackendCapabilities {
        BackendCapabilities(
            supportedModes: [.pc, .comparisons], pcKind: .kernelAddress, granularity: .basicBlock,
            perThread: true, orderedTrace: true, remote: [.commonHandle, .usbBus],
            requiresMapBeforeEnable: false, remapAfterDisable: false, mapLengthMustMatch: true,
            oneEnabledInstancePerThread: true, collectsAfterClose: true,
            buffer: BufferRules(words: LinuxKcovABI.bufferWords, wordMultiple: Self.pageSize / 8, wordSize: 8), wholeRunAgent: true,
            kernelOptions: [
                KernelOption("DEBUG_FS", "the kcov device is /sys/kernel/debug/kcov"),
                KernelOption("KCOV", "the coverage device itself"),
            ])
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    public func availability() -> Availability {
        if let refusal = gVisorRefusal() { return Availability(available: false, reason: refusal.message) }
        return kernel.availability(of: devicePath, reason: "\(devicePath) opened read-write", explain: openError)
    }

    // MARK: Device

    /// Opens the kcov file; inside gVisor refuses with `.wrongBackend` before opening anything.
    public func openDevice() throws(CoverageError) -> Int32 {
        if let refusal = gVisorRefusal() { throw refusal }
        return try kernel.openDevice(devicePath, explain: openError)
    }

    /// Why this backend must not be used here: inside gVisor, whose kcov answers Linux's ioctls
    /// with global, unordered synthetic block ids that this backend would report as kernel
    /// addresses of one thread. Recognised by gVisor's fixed kernel version in `/proc/version`.
    func gVisorRefusal() -> CoverageError? {
        guard let version = kernel.readTextFile("/proc/version"), version.contains(GVisorSignature.kernelVersion) else { return nil }
        return CoverageError(
            .wrongBackend,
            "this is a gVisor sandbox (its kernel version is gVisor's fixed \"\(GVisorSignature.kernelVersion)\"): its kcov records the whole sandbox's Go coverage blocks as synthetic ids, not this thread's kernel PCs; use the gvisor backend (GVisorKcovBackend, or --backend gvisor)")
    }

    /// Why opening the kcov file failed, with what to do about it.
    func openError(_ code: Int32) -> CoverageError {
        .system("open(\(devicePath))", errno: code) {
            switch $0 {
            case ENOENT where devicePath != LinuxKcovABI.devicePath:
                (.deviceMissing, "\(devicePath) does not exist: check the device path (Linux's kcov file is \(LinuxKcovABI.devicePath))")
            case ENOENT where !debugfsMounted:
                (.deviceMissing, "debugfs is not mounted: run `mount -t debugfs none /sys/kernel/debug`")
            case ENOENT:
                (.deviceMissing,
                 "\(devicePath) does not exist: this kernel was built without CONFIG_KCOV (use a kernel with CONFIG_KCOV=y, or the kprobe backend)")
            case EACCES: (.permissionDenied, "no permission to open \(devicePath): run as root (the file is 0600 root)")
            case EPERM:
                (.permissionDenied,
                 "the kernel refused \(devicePath): debugfs is locked down (lockdown=integrity or confidentiality); boot without lockdown")
            default: nil
            }
        }
    }

    /// Whether a debugfs is mounted at the directory that holds the device.
    public var debugfsMounted: Bool {
        guard let mounts = kernel.readTextFile("/proc/mounts") else { return false }
        let directory = String(devicePath[..<(devicePath.lastIndex(of: "/") ?? devicePath.startIndex)])
        return mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 2 && fields[1] == directory && fields[2] == "debugfs"
        }
    }

    public func closeDevice(_ fd: Int32) {
        kernel.closeDevice(fd)
    }

    // MARK: Buffer

    public func initialize(_ fd: Int32, words: Int) throws(CoverageError) {
        try initTrace(fd, words: UInt(clamping: words))
    }

    /// KCOV_INIT_TRACE with any word count, for misuse checks.
    package func initTrace(_ fd: Int32, words: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, LinuxKcovABI.initTrace, value: words), "ioctl(KCOV_INIT_TRACE, \(words))") {
            switch $0 {
            case EINVAL:
                (.bufferSize,
                 "the kernel refused a buffer of \(words) words: use \(LinuxKcovABI.bufferWords.lowerBound)…\(LinuxKcovABI.bufferWords.upperBound) words")
            case EBUSY: (.busy, "this kcov fd is already initialised: INIT_TRACE is allowed once per open; open the device again")
            case ENOMEM: (.outOfMemory, "the kernel could not allocate \(words) words: use a smaller buffer")
            default: nil
            }
        }
    }

    public func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        try map(fd, bytes: words * 8)
    }

    /// mmap of `bytes` at offset 0, for misuse checks.
    package func map(_ fd: Int32, bytes: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        return try kernel.mapShared(fd, bytes: bytes, call: "mmap(\(bytes) bytes)") {
            switch $0 {
            case EINVAL where bytes % Self.pageSize != 0:
                (.bufferSize, "\(bytes) bytes is not a whole number of \(Self.pageSize)-byte pages: kcov can only map a page-multiple buffer")
            case EINVAL: (.invalidState, "the kernel refused the mapping: initialise the fd first and map exactly its buffer size")
            case EACCES: (.permissionDenied, "a shared writable mapping needs the fd opened O_RDWR")
            case ENOMEM: (.outOfMemory, "no address space for \(bytes) bytes: use a smaller buffer")
            default: nil
            }
        }
    }

    public func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) {
        kernel.unmapBuffer(address, bytes: words * 8)
    }

    // MARK: Collection

    public func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        try enable(fd, rawMode: LinuxKcovABI.modeArgument(mode))
    }

    /// KCOV_ENABLE with any argument, for misuse checks.
    package func enable(_ fd: Int32, rawMode: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, LinuxKcovABI.enable, value: rawMode), "ioctl(KCOV_ENABLE, \(rawMode))") {
            enableMeaning($0, rawMode: rawMode)
        }
    }

    /// What an ENABLE errno means; the same table serves the forked child's ENABLE.
    func enableMeaning(_ code: Int32, rawMode: UInt) -> ErrnoMeaning? {
        switch code {
        case EINVAL where rawMode > LinuxKcovABI.traceCMP: (.invalidArgument, "\(rawMode) is not a kcov mode: use 0 (PC) or 1 (CMP)")
        case EINVAL:
            (.invalidState,
             "the fd is not initialised, or coverage is already enabled on it (by this or another thread): one enabled thread per fd")
        case EBUSY: (.busy, "this thread already has kcov enabled on another fd: disable that one first")
        case LinuxKcovABI.enotsupp, EOPNOTSUPP:
            (.unsupportedMode, "this kernel was built without CONFIG_KCOV_ENABLE_COMPARISONS: comparison mode is unavailable; use PC mode")
        default: nil
        }
    }

    public func disable(_ fd: Int32) throws(CoverageError) {
        try disable(fd, argument: 0)
    }

    /// KCOV_DISABLE with any argument, for misuse checks.
    package func disable(_ fd: Int32, argument: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, LinuxKcovABI.disable, value: argument), "ioctl(KCOV_DISABLE, \(argument))") {
            switch $0 {
            case EINVAL where argument != 0: (.invalidArgument, "KCOV_DISABLE takes 0 as its argument")
            case EINVAL: (.notOwner, "coverage on this fd is not enabled by the calling thread: disable from the thread that enabled it")
            default: nil
            }
        }
    }

    public func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        var common: UInt64 = 0
        var handles: [UInt64] = []
        for target in request.targets {
            switch target {
            case .common(let instance):
                guard common == 0 else {
                    throw CoverageError(.invalidArgument, "Linux takes one common handle per remote enable")
                }
                guard instance != 0 else {
                    // The kernel reads a zero common handle as "none" and would attach to nothing.
                    throw CoverageError(.invalidArgument, "a common handle needs a non-zero instance (0 means no handle)")
                }
                common = LinuxKcovABI.remoteHandle(subsystem: LinuxKcovABI.subsystemCommon, instance: instance)
            case .usbBus(let bus):
                handles.append(LinuxKcovABI.remoteHandle(subsystem: LinuxKcovABI.subsystemUSB, instance: bus))
            case .vhciPort:
                throw CoverageError(.unsupportedOperation, "VHCI ports are NetBSD's remote targets; on Linux use a common handle or a USB bus")
            }
        }
        try remoteEnable(
            fd, mode: LinuxKcovABI.modeArgument(mode), sectionWords: UInt32(clamping: request.sectionWords),
            common: common, handles: handles)
    }

    /// KCOV_REMOTE_ENABLE with raw handles, for misuse checks. Layout: `trace_mode` u32,
    /// `area_size` u32, `num_handles` u32, padding, `common_handle` u64, `handles[]` u64.
    package func remoteEnable(
        _ fd: Int32, mode: UInt, sectionWords: UInt32, common: UInt64, handles: [UInt64]
    ) throws(CoverageError) {
        var argument = [UInt64](repeating: 0, count: 3 + handles.count)
        argument[0] = UInt64(UInt32(truncatingIfNeeded: mode)) | UInt64(sectionWords) << 32
        argument[1] = UInt64(UInt32(truncatingIfNeeded: handles.count))
        argument[2] = common
        for (index, handle) in handles.enumerated() { argument[3 + index] = handle }
        let result = argument.withUnsafeMutableBytes {
            kernel.ioctl(fd, LinuxKcovABI.remoteEnable, pointer: $0.baseAddress!)
        }
        try Self.ioctlErrors.check(result, "ioctl(KCOV_REMOTE_ENABLE, \(handles.count) handles)") {
            switch $0 {
            case EINVAL where handles.count > LinuxKcovABI.maxRemoteHandles:
                (.invalidArgument, "\(handles.count) remote handles is more than the kernel's \(LinuxKcovABI.maxRemoteHandles)")
            case EINVAL:
                (.invalidArgument,
                 "the kernel refused remote coverage: the fd must be initialised and not enabled, and each handle well-formed (USB handles in the list, a non-zero common instance)")
            case EEXIST: (.handleInUse, "a remote handle is already taken by another kcov fd (or listed twice)")
            case EBUSY: (.busy, "this thread already has kcov enabled on another fd: disable that one first")
            case LinuxKcovABI.enotsupp, EOPNOTSUPP: (.unsupportedMode, "this kernel was built without CONFIG_KCOV_ENABLE_COMPARISONS: use PC mode")
            default: nil
            }
        }
    }

    /// Any request number, for misuse checks.
    package func rawIoctl(_ fd: Int32, request: UInt, value: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, request, value: value), "ioctl(0x\(String(request, radix: 16)))")
    }

    public func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) {
        try rawIoctl(fd, request: LinuxKcovABI.undefinedRequest, value: 0)
    }

    public func currentThreadID() -> Int32 { kernel.currentThreadID() }

    public func probe() { kernel.probeSyscall() }

    public func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit {
        let child = childEnable(mode)
        return try kernel.run(command, fd: fd, enable: child.call, buffer: buffer, bufferBytes: words * 8, enableError: child.error)
    }

    public func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        let child = childEnable(mode)
        return try kernel.runForked(fd: fd, enable: child.call, buffer: buffer, timeout: timeout, body: body, enableError: child.error)
    }

    /// A child's KCOV_ENABLE in `mode`, and what its errno means.
    func childEnable(_ mode: CoverageMode) -> (call: EnableCall, error: (Int32) -> CoverageError) {
        let argument = LinuxKcovABI.modeArgument(mode)
        return (EnableCall(request: LinuxKcovABI.enable, argument: argument, byPointer: false), { code in
            Self.ioctlErrors.error("ioctl(KCOV_ENABLE) in the child", code) { enableMeaning($0, rawMode: argument) }
        })
    }

    // MARK: Errors

    /// Errors any ioctl can give, in Linux's words.
    static let ioctlErrors = IoctlErrors(unknownRequest: "the kernel does not know this kcov request (too old, or not Linux kcov)")
}
