#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Clients' front door for every backend: one coverage instance, collected for the thread that
/// enables it, read as a ``Trace`` that carries its unit, mode, truncation and backend.
///
/// A kcov backend (``KcovDriver``) gets a device descriptor and a shared buffer of `bufferWords`
/// words; a function-level backend (``FunctionCounterDriver``) gets counting probes on the
/// functions `functions` selects. The collector owns them and releases each exactly once: on a
/// failed `init`, or in `deinit` (which first disables, if enabled).
///
/// Threads: a collector is not copyable and not `Sendable`, so an enabled collector cannot leave
/// the thread that enabled it, and it is always disabled and released there. To open and map in
/// one thread and enable in another (syzkaller's pattern: the parent prepares, each worker
/// enables), pass a collector that is not enabled through a ``CollectorHandoff``.
///
/// ```swift
/// var collector = try CoverageCollector(backend: LinuxKcovBackend())
/// let trace = try collector.collect { _ = read(-1, nil, 0) }
/// // Fuzzer loop: try collector.enable(); then per call: try collector.reset(); syscall; try collector.read()
/// ```
public struct CoverageCollector: ~Copyable {
    /// A 2 MiB buffer: large enough for most single syscalls, and a multiple of every kcov
    /// backend's mappable size (512 words).
    public static let defaultBufferWords = 256 * 1024

    public let backend: any CoverageBackend
    /// The backend's capabilities, read once.
    public let capabilities: BackendCapabilities
    public let mode: CoverageMode
    /// The backend's name, stamped on every trace.
    private let backendName: String
    @usableFromInline let source: Source
    /// The kcov buffer as mapped now (`nil` for function counters), kept beside ``source`` so the
    /// per-call reset and read touch no reference count; refreshed wherever the mapping can change.
    @usableFromInline var mapped: CoverageBuffer?
    /// The thread that enabled collection, while enabled.
    @usableFromInline private(set) var enabledThread: Int32?
    /// How the kcov buffer is protected from the traced code's writes.
    public let protection: BufferProtection
    /// The buffer's memory protection key (``BufferProtection/writeProtected``), kept beside
    /// ``mapped`` for the reset.
    @usableFromInline let writeKey: BufferKey?

    /// What the collector owns.
    @usableFromInline enum Source {
        case buffer(KcovInstance)
        case counters(any FunctionCounters)
    }

    /// Opens the backend's device and sizes and maps its buffer (kcov), or probes the functions
    /// `functions` selects (function counters). Nothing is left open if this throws.
    ///
    /// - Parameters:
    ///   - mode: `.pc` or `.comparisons`; refused as `.unsupportedMode` before any syscall when
    ///     the backend lacks it.
    ///   - bufferWords: kcov backends: buffer size in words, count word included; refused as
    ///     `.bufferSize` before any syscall unless it fits ``BufferRules/mappableWords``.
    ///   - functions: function-level backends: which functions to probe (required there, and
    ///     refused as `.invalidArgument` by a kcov backend, which records every block).
    ///   - protection: kcov backends: guard pages always; `.writeProtected` also makes the buffer
    ///     read-only to the enabling thread while enabled, or throws `.unsupportedOperation` where
    ///     the CPU or kernel has no memory protection keys (function counters have no buffer:
    ///     `.invalidArgument`).
    public init(
        backend: any CoverageBackend, mode: CoverageMode = .pc, bufferWords: Int = defaultBufferWords,
        functions: FunctionSelection = FunctionSelection(), protection: BufferProtection = .guardPages
    ) throws(CoverageError) {
        let capabilities = backend.capabilities
        guard capabilities.supportedModes.contains(mode) else {
            throw CoverageError(
                .unsupportedMode,
                "the \(backend.name) backend has no \(mode.rawValue) mode; it supports \(capabilities.supportedModes.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        switch backend.driver {
        case .kcovBuffer(let driver):
            guard functions.isEmpty else {
                throw CoverageError(
                    .invalidArgument,
                    "the \(backend.name) backend records every block it covers: a function selection applies to function-level backends (kprobe) only")
            }
            guard let rules = capabilities.buffer else {
                throw CoverageError(.unsupportedOperation, "the \(backend.name) backend declares no buffer rules: it cannot be a kcov driver")
            }
            try rules.validate(words: bufferWords)
            let instance = try KcovInstance(driver: driver, words: bufferWords, protection: protection)
            source = .buffer(instance)
            mapped = instance.buffer
            writeKey = instance.key
        case .functionCounters(let driver):
            guard protection == .guardPages else {
                throw CoverageError(
                    .invalidArgument, "the \(backend.name) backend counts with perf events and has no shared buffer to write-protect")
            }
            guard !functions.isEmpty else {
                throw CoverageError(
                    .invalidArgument,
                    "the \(backend.name) backend counts named functions only: pass functions, for example FunctionSelection(patterns: [\"vfs_*\", \"ksys_read\"])")
            }
            source = .counters(try driver.openCounters(functions, mode: mode))
            mapped = nil
            writeKey = nil
        }
        self.protection = protection
        self.backend = backend
        self.capabilities = capabilities
        self.mode = mode
        self.backendName = backend.name
    }

    deinit {
        // A collector cannot leave its thread while enabled, so the enabling thread is this one.
        let disable = enabledThread != nil && enabledThread == backend.currentThreadID()
        switch source {
        case .buffer(let instance): instance.release(disable: disable)
        case .counters(let counters):
            if disable { try? counters.disable() }
            counters.close()
        }
    }

    /// Whether collection is on.
    public var isEnabled: Bool { enabledThread != nil }

    /// The buffer's size in words (count word included); `nil` for function counters.
    public var bufferWords: Int? {
        if case .buffer(let instance) = source { return instance.words }
        return nil
    }

    /// Function counters: the functions with a probe; empty for kcov backends.
    public var probedFunctions: [ProbedFunction] {
        if case .counters(let counters) = source { return counters.probedFunctions }
        return []
    }

    /// Function counters: the functions asked for that could not be probed, with why.
    public var skippedFunctions: [SkippedFunction] {
        if case .counters(let counters) = source { return counters.skipped }
        return []
    }

    /// Starts recording the calling thread's kernel execution into an empty trace.
    public mutating func enable() throws(CoverageError) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "coverage is already enabled on this collector; disable it first")
        }
        // gettid before enabling: on a kcov backend it would be recorded.
        let thread = backend.currentThreadID()
        switch source {
        case .buffer(let instance):
            defer { mapped = instance.buffer }
            try instance.enable(mode: mode)
        case .counters(let counters): try counters.enable()
        }
        enabledThread = thread
    }

    /// Starts recording background kernel work attached to `request`; the thread's own syscalls
    /// are not recorded. Function counters have no remote coverage (`.unsupportedOperation`).
    public mutating func enableRemote(_ request: RemoteRequest) throws(CoverageError) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "coverage is already enabled on this collector; disable it first")
        }
        guard case .buffer(let instance) = source else {
            throw CoverageError(.unsupportedOperation, "the \(backendName) backend has no remote coverage: its probes count one thread's own kernel work")
        }
        let thread = backend.currentThreadID()
        defer { mapped = instance.buffer }
        try instance.enableRemote(mode: mode, request, remap: capabilities.remapAfterRemoteAttach)
        enabledThread = thread
    }

    /// Empties the trace; the kernel keeps recording. The fuzzer's per-syscall reset: for kcov a
    /// store to the buffer's count word (no syscall; write-protected, it opens the buffer to this
    /// thread around the store).
    @inlinable
    public func reset() throws(CoverageError) {
        if let mapped {
            if writeKey == nil || enabledThread == nil { return mapped.reset() }
            return resetWriteProtected(mapped)
        }
        if case .counters(let counters) = source { try counters.reset() }
    }

    /// The reset of an enabled, write-protected buffer.
    @usableFromInline func resetWriteProtected(_ buffer: CoverageBuffer) {
        writeKey?.setWritable(true)
        buffer.reset()
        writeKey?.setWritable(false)
    }

    /// What the kernel has recorded since the last reset: for kcov, read from the shared buffer
    /// with relaxed atomic loads (no syscall); a full buffer is reported as `truncated`.
    public func read() throws(CoverageError) -> Trace {
        switch source {
        case .buffer(let instance):
            var trace = instance.buffer.read(mode: mode, pcKind: capabilities.pcKind)
            trace.backend = backendName
            return trace
        case .counters(let counters):
            return Trace(backend: backendName, functions: try counters.read())
        }
    }

    /// The fuzzer's hot path: calls `body` with the PCs recorded since the last reset, read in
    /// place from the shared buffer (relaxed atomic loads, no copy, no allocation, no syscall).
    /// The view is valid only inside `body`. Its `truncated` says the buffer was full.
    ///
    /// - Throws: `.unsupportedOperation` for function counters (no buffer: use ``read()``) and in
    ///   comparison mode (records, not PCs: use ``read()``).
    @inlinable
    public func withPCs<Result>(_ body: (CoverageBuffer.PCs) -> Result) throws(CoverageError) -> Result {
        guard let mapped, mode == .pc else {
            throw CoverageError(.unsupportedOperation, "only a kcov collector in pc mode has PCs to read in place: use read()")
        }
        return body(mapped.pcs)
    }

    /// Copies the PCs recorded since the last reset into `pcs`, reusing its capacity (no
    /// allocation once it is large enough); returns whether the buffer was full. Same rules as
    /// ``withPCs(_:)``.
    @inlinable @discardableResult
    public func read(into pcs: inout [UInt64]) throws(CoverageError) -> Bool {
        guard let mapped, mode == .pc else {
            throw CoverageError(.unsupportedOperation, "only a kcov collector in pc mode has PCs to read in place: use read()")
        }
        return mapped.readPCs(into: &pcs)
    }

    /// Stops recording; the trace stays readable.
    public mutating func disable() throws(CoverageError) {
        guard enabledThread != nil else {
            throw CoverageError(.invalidState, "coverage is not enabled on this collector")
        }
        switch source {
        case .buffer(let instance): try instance.disable(remapNext: capabilities.remapAfterDisable)
        case .counters(let counters): try counters.disable()
        }
        enabledThread = nil
    }

    /// Records what the kernel executes for the calling thread while `body` runs.
    ///
    /// A kcov buffer is read before DISABLE (whose own path the kernel would record); function
    /// counters are read after it (reading a counter is a `read(2)`, which probes could count).
    public mutating func collect(_ body: () -> Void) throws(CoverageError) -> Trace {
        try enable()
        body()
        guard case .buffer = source else {
            try disable()
            return try read()
        }
        let trace: Trace
        do {
            trace = try read()
        } catch {
            try? disable()
            throw error
        }
        try disable()
        return trace
    }

    /// Runs `command` in a child that enables coverage for itself before exec (kcov: this
    /// process opened, sized and mapped, and the child only enables; function counters: the
    /// probes are armed at the child's exec and inherited by its threads and children), waits,
    /// and returns how it ended and what it covered. A kcov child cannot reset the count after its
    /// ENABLE, so the trace starts with that ioctl's return path (a few PCs).
    ///
    /// A `command.path` without a `/` is looked up on `PATH`; one that cannot be found or run is
    /// `.commandFailed`, saying so.
    public mutating func run(_ command: Command) throws(CoverageError) -> (exit: CommandExit, trace: Trace) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "disable coverage on this collector before running a command")
        }
        var command = command
        command.path = try command.resolvedPath()
        switch source {
        case .buffer(let instance):
            defer { mapped = instance.buffer }
            let exit = try instance.run(command, mode: mode)
            return (exit, try read())
        case .counters(let counters):
            let result = try counters.run(command)
            return (result.exit, Trace(backend: backendName, functions: result.functions))
        }
    }

    /// The fork server's step, as syzkaller's executor runs programs: forks this process without
    /// exec; the child enables coverage for itself, runs `body` and exits with the status it
    /// returns (`_exit`: nothing this process buffered is flushed twice); this process waits, at
    /// most `timeout` (then kills the child with SIGKILL: ``CommandExit/timedOut``), reaps it and
    /// reads what it covered from the shared buffer. The trace starts with the child's ENABLE
    /// return path and ends with its exit path.
    ///
    /// The child is a copy of this process with one thread, as after fork(2): a lock another
    /// thread held at the fork stays held in the child, so `body` should make syscalls and
    /// avoid work that takes process-wide locks. The child keeps a copy of this collector's
    /// descriptors and mapping, which its exit releases.
    ///
    /// - Throws: `.invalidState` while enabled; `.unsupportedOperation` for function counters;
    ///   `.invalidArgument` for a non-positive timeout; the backend's ENABLE error from the child;
    ///   `.system` when fork fails.
    public mutating func runForked(timeout: Duration? = nil, _ body: () -> Int32) throws(CoverageError) -> (child: ForkedChild, trace: Trace) {
        guard enabledThread == nil else {
            throw CoverageError(.invalidState, "disable coverage on this collector before forking a child")
        }
        guard case .buffer(let instance) = source else {
            throw CoverageError(
                .unsupportedOperation, "the \(backendName) backend arms its probes at a command's exec: use run(_:) with a Command")
        }
        defer { mapped = instance.buffer }
        let child = try instance.runForked(mode: mode, timeout: timeout, body: body)
        return (child, try read())
    }
}

/// One kcov instance: a descriptor, its buffer's mapping and the buffer's protection key, released once.
@usableFromInline final class KcovInstance {
    let driver: any KcovDriver
    let fd: Int32
    let words: Int
    /// The memory protection key on the mapping (``BufferProtection/writeProtected``).
    let key: BufferKey?
    private var mapping: UnsafeMutableRawPointer
    /// The buffer over ``mapping``, bound once per mapping.
    @usableFromInline private(set) var buffer: CoverageBuffer
    /// The mapping was disconnected by DISABLE on a backend that drops its buffer then.
    private var mappingIsStale = false

    /// Opens, sizes, maps and (write-protected) tags the mapping with a protection key; releases
    /// what it got if a step fails.
    init(driver: any KcovDriver, words: Int, protection: BufferProtection) throws(CoverageError) {
        let fd = try driver.openDevice()
        let mapping: UnsafeMutableRawPointer
        do {
            try driver.initialize(fd, words: words)
            mapping = try driver.mapBuffer(fd, words: words)
        } catch {
            driver.closeDevice(fd)
            throw error
        }
        do {
            key = protection == .writeProtected ? try Self.protect(mapping, words: words) : nil
        } catch {
            driver.unmapBuffer(mapping, words: words)
            driver.closeDevice(fd)
            throw error
        }
        self.mapping = mapping
        self.driver = driver
        self.fd = fd
        self.words = words
        self.buffer = CoverageBuffer(address: mapping, wordCount: words)
    }

    /// A new key tagging `mapping`.
    private static func protect(_ mapping: UnsafeMutableRawPointer, words: Int) throws(CoverageError) -> BufferKey {
        let key = try BufferKey.allocate()
        do {
            try key.assign(to: mapping, bytes: words * MemoryLayout<UInt64>.size)
        } catch {
            key.free()
            throw error
        }
        return key
    }

    /// Disables (best effort: the kernel disables at thread exit anyway), gives this thread back
    /// write access, unmaps, closes and frees the key.
    func release(disable: Bool) {
        if disable { try? driver.disable(fd) }
        key?.setWritable(true)
        driver.unmapBuffer(mapping, words: words)
        driver.closeDevice(fd)
        key?.free()
    }

    /// Replaces the mapping with a new one (tagged with the key); the old one is unmapped only
    /// once the new one exists.
    private func remap() throws(CoverageError) {
        let fresh = try driver.mapBuffer(fd, words: words)
        do {
            try key?.assign(to: fresh, bytes: words * MemoryLayout<UInt64>.size)
        } catch {
            driver.unmapBuffer(fresh, words: words)
            throw error
        }
        driver.unmapBuffer(mapping, words: words)
        mapping = fresh
        buffer = CoverageBuffer(address: fresh, wordCount: words)
        mappingIsStale = false
    }

    private func remapIfStale() throws(CoverageError) {
        if mappingIsStale { try remap() }
    }

    func enable(mode: CoverageMode) throws(CoverageError) {
        try remapIfStale()
        try driver.enable(fd, mode: mode)
        // ENABLE's own return path was recorded; start empty.
        buffer.reset()
        key?.setWritable(false)
    }

    func enableRemote(mode: CoverageMode, _ request: RemoteRequest, remap remapAfterAttach: Bool) throws(CoverageError) {
        try remapIfStale()
        try driver.enableRemote(fd, mode: mode, request)
        if remapAfterAttach {
            do {
                try remap()
            } catch {
                try? driver.disable(fd)
                throw error
            }
        }
        buffer.reset()
        key?.setWritable(false)
    }

    func disable(remapNext: Bool) throws(CoverageError) {
        try driver.disable(fd)
        key?.setWritable(true)
        mappingIsStale = remapNext
    }

    func run(_ command: Command, mode: CoverageMode) throws(CoverageError) -> CommandExit {
        try remapIfStale()
        return try driver.runEnabled(fd, mode: mode, buffer: mapping, words: words, command: command)
    }

    func runForked(mode: CoverageMode, timeout: Duration?, body: () -> Int32) throws(CoverageError) -> ForkedChild {
        try remapIfStale()
        return try driver.runForked(fd, mode: mode, buffer: mapping, words: words, timeout: timeout, body: body)
    }
}

extension Command {
    /// The program to exec: ``path`` itself if it contains a `/`; otherwise the first executable
    /// `DIR/path` for DIR on the `PATH` of ``environment`` (else of this process, else
    /// `/usr/bin:/bin`), as a shell finds it.
    ///
    /// - Throws: `.commandFailed` when the file does not exist, is not executable, or the name is
    ///   on no directory of `PATH`.
    public func resolvedPath() throws(CoverageError) -> String {
        guard !path.isEmpty else { throw CoverageError(.commandFailed, "no program named: the command's path is empty") }
        if path.contains("/") {
            guard access(path, X_OK) == 0 else {
                let code = errno
                let reason = code == ENOENT ? "does not exist" : "is not an executable file"
                throw CoverageError(
                    .commandFailed, "\(path) \(reason): give the program's path (absolute, or relative to the current directory) or a name on PATH",
                    syscall: "access(\(path), X_OK)", errno: code)
            }
            return path
        }
        let searchPath = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
            ?? getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = "\(directory)/\(path)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw CoverageError(
            .commandFailed, "command not found: \(path) is on no directory of PATH (\(searchPath)): give the program's absolute path, or a name on PATH")
    }
}
