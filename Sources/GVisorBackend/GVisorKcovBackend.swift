public import CoverageAPI
package import KernelSeam
public import LinuxBackend

#if canImport(Glibc)
import Glibc
#endif

/// gVisor's kcov emulation in a `runsc` sandbox: Linux's ioctl numbers and file, gVisor's rules.
///
/// The sentry is written in Go and has no instruction addresses to report. A coverage build of
/// `runsc` counts Go coverage blocks and, each time the enabling thread returns to user space,
/// appends one synthetic PC (``SyntheticPC``) per block that ran anywhere in the sandbox since the
/// last such write. So what one syscall yields is a **set**: deduplicated, in (package, function,
/// block) order rather than execution order, and not limited to the enabling thread — edges
/// cannot be derived from it, and ``BackendCapabilities/orderedTrace`` and
/// ``BackendCapabilities/perThread`` are false. Read the buffer after the traced syscall has
/// returned; nothing is written while it runs.
///
/// The rules, all as capability data: the word count must be a multiple of 512 (whole 4096-byte
/// pages) and at most 10485760; the buffer must be mapped before ENABLE, and mapped again after
/// each DISABLE (the old mapping is disconnected); PC mode only; no remote coverage; closing the
/// descriptor stops collection at once.
///
/// The corresponding ioctls are KCOV_INIT_TRACE, KCOV_ENABLE and KCOV_DISABLE (Linux's numbers);
/// gVisor answers every other request, KCOV_REMOTE_ENABLE included, with ENOTTY.
public struct GVisorKcovBackend: KcovDriver {
    package let kernel: any KernelInterface
    /// Where the kcov file is in the sandbox: inside sysfs, not on a debugfs mount.
    public let devicePath: String
    /// Linux's operations, reused where gVisor's errnos mean what Linux's do.
    let linux: LinuxKcovBackend
    /// Whether this process runs inside gVisor; decides availability and the messages.
    let detect: @Sendable () -> GVisorDetection.Verdict

    /// The sandbox's kcov at `devicePath`, with detection from this machine.
    public init(devicePath: String = LinuxKcovABI.devicePath) {
        let kernel = SystemKernel()
        self.init(kernel: kernel, devicePath: devicePath) {
            GVisorDetection.Evidence.gather(kernel: kernel, devicePath: devicePath).verdict
        }
    }

    /// A backend over any implementation of the seam, such as a reference model. Detection
    /// defaults to the seam's evidence only (the INIT_TRACE fingerprint and `/proc/version`).
    package init(
        kernel: any KernelInterface, devicePath: String = LinuxKcovABI.devicePath,
        detect: (@Sendable () -> GVisorDetection.Verdict)? = nil
    ) {
        self.kernel = kernel
        self.devicePath = devicePath
        self.linux = LinuxKcovBackend(kernel: kernel, devicePath: devicePath)
        self.detect = detect ?? {
            GVisorDetection.Evidence.gather(kernel: kernel, devicePath: devicePath, kernelVersion: nil, bootLog: nil).verdict
        }
    }

    public var name: String { "gvisor" }

    /// gVisor's largest INIT_TRACE size, `kcovAreaSizeMax`: 10 Mi words (80 MiB).
    public static let maxWords = 10 * 1024 * 1024
    /// INIT_TRACE wants `8 * words` to be a multiple of gVisor's 4096-byte page.
    public static let wordMultiple = 512

    public var capabilities: BackendCapabilities {
        BackendCapabilities(
            supportedModes: [.pc], pcKind: .synthetic, granularity: .basicBlock,
            perThread: false, orderedTrace: false, remote: [],
            requiresMapBeforeEnable: true, remapAfterDisable: true, mapLengthMustMatch: false,
            oneEnabledInstancePerThread: false, collectsAfterClose: false,
            buffer: BufferRules(words: Self.wordMultiple...Self.maxWords, wordMultiple: Self.wordMultiple, wordSize: 8))
    }

    /// What a release `runsc` (such as Debian's) lacks, and which build has the kcov file.
    public static let coverageBuildAdvice =
        "this runsc is a release build without kcov (Debian's runsc is one): the kcov file exists only in a coverage build of runsc — bazel target //runsc:runsc_coverage, or `go build -cover` with the `kcov` build tag — run without a coverage report file (no --coverage-report, no GO_COVERAGE_FILE)"

    public func availability() -> Availability {
        let verdict = detect()
        guard verdict.insideGVisor else {
            return Availability(available: false, reason: "not running inside gVisor (\(verdict.explanation)); start the program with `runsc do`")
        }
        return kernel.availability(of: devicePath, reason: "inside gVisor (\(verdict.explanation)); \(devicePath) opened read-write") {
            openError($0, insideGVisor: true)
        }
    }

    // MARK: Device

    public func openDevice() throws(CoverageError) -> Int32 {
        try kernel.openDevice(devicePath) { openError($0, insideGVisor: nil) }
    }

    /// Why opening the kcov file failed, with what to do about it. In gVisor ENOENT means a runsc
    /// built without kcov, or one writing a coverage report (Docs/kcov-gvisor.md#availability).
    func openError(_ code: Int32, insideGVisor: Bool?) -> CoverageError {
        .system("open(\(devicePath))", errno: code) {
            switch $0 {
            case ENOENT where insideGVisor ?? detect().insideGVisor:
                (.deviceMissing, "\(devicePath) does not exist in this gVisor sandbox: " + Self.coverageBuildAdvice)
            case ENOENT: (.deviceMissing, "\(devicePath) does not exist and this is not gVisor; if it is, " + Self.coverageBuildAdvice)
            case EACCES: (.permissionDenied, "no permission to open \(devicePath): run as root in the sandbox (the file is 0600 in a 0700 directory)")
            default: nil
            }
        }
    }

    public func closeDevice(_ fd: Int32) {
        kernel.closeDevice(fd)
    }

    // MARK: Buffer

    public func initialize(_ fd: Int32, words: Int) throws(CoverageError) {
        try initTrace(fd, words: UInt(clamping: words))
    }

    /// KCOV_INIT_TRACE with any word count, for misuse checks. gVisor checks the state first
    /// (EBUSY), then that the size is whole pages, then the range (EINVAL for both).
    package func initTrace(_ fd: Int32, words: UInt) throws(CoverageError) {
        do {
            try linux.initTrace(fd, words: words)
        } catch where error.errno == EINVAL {
            throw CoverageError(
                .bufferSize,
                "gVisor refused a buffer of \(words) words: the word count must be a multiple of \(Self.wordMultiple) (whole 4096-byte pages) and between \(Self.wordMultiple) and \(Self.maxWords)",
                syscall: error.syscall, errno: error.errno)
        } catch where error.errno == EBUSY {
            throw CoverageError(
                .busy, "this kcov fd is already initialised (gVisor checks this before the size): INIT_TRACE is allowed once per open; open the device again",
                syscall: error.syscall, errno: error.errno)
        }
    }

    public func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        try map(fd, bytes: words * 8)
    }

    /// mmap of `bytes` at offset 0. gVisor checks neither length nor offset (touching past the
    /// buffer raises SIGBUS); EINVAL means the fd is not between INIT_TRACE and ENABLE.
    package func map(_ fd: Int32, bytes: Int) throws(CoverageError) -> UnsafeMutableRawPointer {
        return try kernel.mapShared(fd, bytes: bytes, call: "mmap(\(bytes) bytes)") {
            switch $0 {
            case EINVAL:
                (.invalidState,
                 "gVisor maps a kcov buffer only after INIT_TRACE and while coverage is not enabled: initialise first, and map before ENABLE")
            case EACCES: (.permissionDenied, "a shared writable mapping needs the fd opened O_RDWR")
            case ENOMEM: (.outOfMemory, "the sandbox could not allocate \(bytes) bytes: use a smaller buffer")
            default: nil
            }
        }
    }

    public func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) {
        kernel.unmapBuffer(address, bytes: words * 8)
    }

    // MARK: Collection

    /// Starts collection. Comparison mode is refused before any syscall (gVisor has PC mode only).
    public func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        try refuseUnsupported(mode)
        try enable(fd, rawMode: LinuxKcovABI.modeArgument(mode))
    }

    func refuseUnsupported(_ mode: CoverageMode) throws(CoverageError) {
        guard capabilities.supportedModes.contains(mode) else {
            throw CoverageError(.unsupportedMode, "gVisor's kcov has no \(mode.rawValue) mode (its Go coverage counts blocks, not comparisons): use PC mode")
        }
    }

    /// KCOV_ENABLE with any argument, for misuse checks. gVisor truncates it to 8 bits, so 256
    /// enables PC mode.
    package func enable(_ fd: Int32, rawMode: UInt) throws(CoverageError) {
        try Self.ioctlErrors.check(kernel.ioctl(fd, LinuxKcovABI.enable, value: rawMode), "ioctl(KCOV_ENABLE, \(rawMode))") {
            enableMeaning($0, rawMode: rawMode)
        }
    }

    /// What an ENABLE errno means in gVisor; the same table serves the forked child's ENABLE.
    func enableMeaning(_ code: Int32, rawMode: UInt) -> ErrnoMeaning? {
        switch code {
        case EINVAL where rawMode & 0xff > LinuxKcovABI.traceCMP:
            (.invalidArgument, "\(rawMode) is not a kcov mode (gVisor reads its low 8 bits, \(rawMode & 0xff)): use 0 (PC)")
        case EINVAL:
            (.invalidState,
             "gVisor enables only an initialised, mapped fd that is not enabled: map the buffer before ENABLE, and map it again after each DISABLE (one enabled thread per fd)")
        case EOPNOTSUPP: (.unsupportedMode, "gVisor's kcov has no comparison mode (EOPNOTSUPP): use PC mode")
        case EBUSY: (.busy, "the fd is enabled by another thread")
        default: nil
        }
    }

    /// Errors any ioctl can give, in gVisor's words.
    static let ioctlErrors = IoctlErrors(unknownRequest: "gVisor does not know this kcov request")

    public func disable(_ fd: Int32) throws(CoverageError) {
        // Same numbers and meanings as Linux: EINVAL for a non-zero argument or a non-owner.
        try linux.disable(fd)
    }

    /// gVisor has no remote coverage: refused before any syscall.
    public func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        throw CoverageError(
            .unsupportedOperation,
            "gVisor's kcov has no remote coverage (KCOV_REMOTE_ENABLE is ENOTTY there); its coverage is already global to the sandbox")
    }

    /// KCOV_REMOTE_ENABLE sent anyway, with an empty request, for misuse checks: gVisor says ENOTTY.
    package func sendRemoteEnable(_ fd: Int32) throws(CoverageError) {
        do {
            try linux.remoteEnable(fd, mode: LinuxKcovABI.tracePC, sectionWords: 0, common: 0, handles: [])
        } catch where error.errno == ENOTTY {
            throw CoverageError(.unsupportedOperation, "gVisor does not know KCOV_REMOTE_ENABLE", syscall: error.syscall, errno: error.errno)
        }
    }

    public func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) {
        do {
            try linux.sendUndefinedRequest(fd)
        } catch where error.errno == ENOTTY {
            throw CoverageError(
                .unsupportedOperation, "gVisor's kcov knows only INIT_TRACE, ENABLE and DISABLE", syscall: error.syscall, errno: error.errno)
        }
    }

    public func currentThreadID() -> Int32 { kernel.currentThreadID() }

    public func probe() { kernel.probeSyscall() }

    public func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit {
        try refuseUnsupported(mode)
        let child = childEnable(mode)
        return try kernel.run(command, fd: fd, enable: child.call, buffer: buffer, bufferBytes: words * 8, enableError: child.error)
    }

    public func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        try refuseUnsupported(mode)
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

    // MARK: Traces

    /// Which synthetic-PC format `trace` is in (current `~(block | func << 8 | pkg << 20)`, or
    /// legacy `file << 16 + block`); `nil` for an empty trace or one that mixes formats.
    public static func pcFormat(of trace: Trace) -> SyntheticPC.Format? {
        SyntheticPC.format(ofTrace: trace.mode == .pc ? trace.pcs : trace.comparisons.map(\.pc))
    }

    /// The blocks of `trace`, decoded in its format; `nil` when ``pcFormat(of:)`` is.
    public static func blocks(of trace: Trace) -> [SyntheticPC]? {
        guard let format = pcFormat(of: trace) else { return nil }
        return trace.pcs.map { SyntheticPC.decode($0, as: format) }
    }
}
