/// The driver side of a kcov-style backend: a device whose instances each own a shared buffer
/// (word 0 the entry count, entries after it) that the kernel appends to while an instance is
/// enabled for a thread. ``CoverageCollector`` drives it; the conformance suite drives it step by
/// step, misuse included, which is why the operations take a raw descriptor.
///
/// Each backend owns its ABI (ioctl numbers, argument passing, mode numbers) and its rules (call
/// order, what DISABLE undoes, what each errno means); each kernel's are specified in `Docs/`.
///
/// Implementation requirements (the conformance suite checks each one):
/// - Every failing syscall becomes a ``CoverageError`` whose code means the same thing on every
///   backend: a size the kernel refuses is `.bufferSize`, a call in the wrong state is
///   `.invalidState`, a second INIT or a thread that already has coverage elsewhere is `.busy`,
///   DISABLE by a non-owner is `.notOwner`, a mode the kernel lacks is `.unsupportedMode`, an
///   unknown request is `.unsupportedOperation`.
/// - A programmer error that can only come from this library (EFAULT, EBADF) traps.
/// - ``enable(_:mode:)`` binds coverage to the calling thread only; ``disable(_:)`` must come from
///   that thread. When that thread exits, the kernel disables the instance and another thread may
///   enable it (`lifecycle.thread-exit-disables`).
/// - ``mapBuffer(_:words:)`` returns a shared mapping of the kernel's buffer (count word first);
///   ``unmapBuffer(_:words:)`` and ``closeDevice(_:)`` are called exactly once per success.
/// - ``capabilities`` has `granularity == .basicBlock` and a non-nil `buffer`.
public protocol KcovDriver: CoverageBackend {
    /// Opens a new, independent coverage instance.
    func openDevice() throws(CoverageError) -> Int32
    /// Closes an instance from ``openDevice()``.
    func closeDevice(_ fd: Int32)
    /// Sizes the instance's buffer in words; allowed once per instance.
    func initialize(_ fd: Int32, words: Int) throws(CoverageError)
    /// Maps the instance's buffer shared, readable and writable.
    func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer
    /// Unmaps a buffer from ``mapBuffer(_:words:)``.
    func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int)
    /// Starts collection on the calling thread.
    func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError)
    /// Starts collection of background kernel work attached to `request` instead of this thread's syscalls.
    func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError)
    /// Stops collection; must be called by the thread that enabled it.
    func disable(_ fd: Int32) throws(CoverageError)
    /// Sends a request number this backend's kernel does not define, which a conforming kernel
    /// refuses as `.unsupportedOperation` (for the conformance suite).
    func sendUndefinedRequest(_ fd: Int32) throws(CoverageError)
    /// Empties the buffer mapped at `buffer` (`words` long), starts a child that enables coverage
    /// on `fd` in `mode` and runs `command` (without touching the buffer), and waits for it, at
    /// most `command.timeout`. The parent must have initialised and mapped `fd`.
    func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit
    /// The fork server's step: empties the buffer mapped at `buffer` (`words` long), forks without
    /// exec, and in the child enables coverage on `fd` in `mode`, runs `body` and exits with its
    /// status; waits for the child at most `timeout` (then SIGKILL) and reaps it. The parent must
    /// have initialised and mapped `fd`.
    func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild
}

extension KcovDriver {
    public var driver: BackendDriver { .kcovBuffer(self) }
}
