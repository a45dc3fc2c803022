/// Clients' front door: one coverage instance with its buffer, used from one thread.
///
/// A session owns the device descriptor and the buffer mapping and releases each exactly once:
/// on a failed `init`, or in `deinit`. It is not copyable and not `Sendable`; coverage is recorded
/// for the thread that enables it.
///
/// ```swift
/// var session = try CoverageSession(backend: LinuxKcovBackend())
/// let trace = try session.collect { _ = read(-1, nil, 0) }
/// ```
public struct CoverageSession: ~Copyable {
    /// A 2 MiB buffer: large enough for most single syscalls, and a multiple of every backend's
    /// mappable size (512 words).
    public static let defaultBufferWords = 256 * 1024

    public let backend: any CoverageBackend
    /// The backend's capabilities, read once: `read()` is on a fuzzer's per-syscall path.
    public let capabilities: BackendCapabilities
    public let mode: CoverageMode
    public let bufferWords: Int
    private let fd: Int32
    private var mapping: UnsafeMutableRawPointer?
    /// The mapping was disconnected by DISABLE on a backend that drops its buffer then.
    private var mappingIsStale = false
    /// The thread that enabled collection, while enabled.
    private var enabledThread: Int32?

    /// Opens the device, sizes the buffer and maps it. Nothing is left open if this throws.
    public init(
        backend: any CoverageBackend, mode: CoverageMode = .pc, bufferWords: Int = defaultBufferWords
    ) throws(CoverageError) {
        let capabilities = backend.capabilities
        guard capabilities.supportedModes.contains(mode) else {
            throw CoverageError(
                .unsupportedMode,
                "the \(backend.name) backend has no \(mode.rawValue) mode; it supports \(capabilities.supportedModes.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        try capabilities.validate(bufferWords: bufferWords)
        let fd = try backend.openDevice()
        let address: UnsafeMutableRawPointer
        do {
            try backend.initialize(fd, words: bufferWords)
            address = try backend.mapBuffer(fd, words: bufferWords)
        } catch {
            backend.closeDevice(fd)
            throw error
        }
        self.backend = backend
        self.capabilities = capabilities
        self.mode = mode
        self.bufferWords = bufferWords
        self.fd = fd
        self.mapping = address
    }

    deinit {
        if let enabledThread, enabledThread == backend.currentThreadID() {
            // Best effort: the kernel disables on thread exit anyway.
            try? backend.disable(fd)
        }
        if let mapping { backend.unmapBuffer(mapping, words: bufferWords) }
        backend.closeDevice(fd)
    }

    /// The buffer the kernel is writing to now.
    private var buffer: CoverageBuffer {
        CoverageBuffer(address: mapping!, wordCount: bufferWords)
    }

    /// Whether collection is on.
    public var isEnabled: Bool { enabledThread != nil }

    /// Maps a fresh buffer when the backend disconnected the old one at DISABLE.
    private mutating func remapIfStale() throws(CoverageError) {
        guard mappingIsStale else { return }
        try remap()
    }

    /// Replaces the mapping with a new one; the old one is unmapped only once the new one exists.
    private mutating func remap() throws(CoverageError) {
        let fresh = try backend.mapBuffer(fd, words: bufferWords)
        if let old = mapping { backend.unmapBuffer(old, words: bufferWords) }
        mapping = fresh
        mappingIsStale = false
    }

    /// Starts recording the calling thread's kernel execution into an empty trace.
    public mutating func enable() throws(CoverageError) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "coverage is already enabled on this session; disable it first")
        }
        try remapIfStale()
        try backend.enable(fd, mode: mode)
        enabledThread = backend.currentThreadID()
        // ENABLE's own return path was recorded; start empty.
        buffer.reset()
    }

    /// Starts recording background kernel work attached to `request`; the thread's own syscalls
    /// are not recorded.
    public mutating func enableRemote(_ request: RemoteRequest) throws(CoverageError) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "coverage is already enabled on this session; disable it first")
        }
        try remapIfStale()
        try backend.enableRemote(fd, mode: mode, request)
        enabledThread = backend.currentThreadID()
        if capabilities.remapAfterRemoteAttach {
            do {
                try remap()
            } catch {
                try? disable()
                throw error
            }
        }
        buffer.reset()
    }

    /// Empties the trace; the kernel keeps appending. The fuzzer's per-syscall reset.
    public func reset() {
        buffer.reset()
    }

    /// What the kernel has recorded since the last reset.
    public func read() -> Trace {
        buffer.read(mode: mode, pcKind: capabilities.pcKind)
    }

    /// Stops recording; call it from the thread that enabled. The trace stays readable.
    public mutating func disable() throws(CoverageError) {
        guard enabledThread != nil else {
            throw CoverageError(.invalidState, "coverage is not enabled on this session")
        }
        try backend.disable(fd)
        enabledThread = nil
        mappingIsStale = capabilities.remapAfterDisable
    }

    /// Records what the kernel executes for the calling thread while `body` runs.
    public mutating func collect(_ body: () throws -> Void) throws -> Trace {
        try enable()
        do {
            try body()
        } catch {
            try? disable()
            throw error
        }
        let trace = read()
        try disable()
        return trace
    }

    /// Runs `command` in a child that enables coverage on this session's buffer before exec (the
    /// kcov fork pattern: this process opened, sized and mapped; the child only enables), waits,
    /// and returns how it ended and what its thread covered. The child cannot reset the count after
    /// its ENABLE, so the trace starts with that ioctl's return path (a few PCs).
    public mutating func run(_ command: Command) throws(CoverageError) -> (exit: CommandExit, trace: Trace) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "disable coverage on this session before running a command")
        }
        try remapIfStale()
        let exit = try backend.runEnabled(fd, mode: mode, buffer: mapping!, words: bufferWords, command: command)
        return (exit, read())
    }
}
