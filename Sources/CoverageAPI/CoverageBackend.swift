/// A kernel's coverage interface: the driver side of ``CoverageSession``.
///
/// Each backend owns its ABI (ioctl numbers, argument passing, mode numbers) and its rules (call
/// order, what DISABLE undoes, what each errno means). The operations below take a raw descriptor
/// so that sessions and the conformance suite can drive the device step by step, misuse included.
///
/// Implementation requirements (the conformance suite checks each one):
/// - ``capabilities`` describes the device truthfully; clients branch on it, never on ``name``.
/// - Every failing syscall becomes a ``CoverageError`` whose code means the same thing on every
///   backend: a size the kernel refuses is `.bufferSize`, a call in the wrong state is
///   `.invalidState`, a second INIT or a thread that already has coverage elsewhere is `.busy`,
///   DISABLE by a non-owner is `.notOwner`, a mode the kernel lacks is `.unsupportedMode`, an
///   unknown request is `.unsupportedOperation`.
/// - A programmer error that can only come from this library (EFAULT, EBADF) traps.
/// - ``enable(_:mode:)`` binds coverage to the calling thread only; ``disable(_:)`` must come from
///   that thread.
/// - ``mapBuffer(_:words:)`` returns a shared mapping of the kernel's buffer (count word first);
///   ``unmapBuffer(_:words:)`` and ``closeDevice(_:)`` are called exactly once per success.
public protocol CoverageBackend: Sendable {
    /// The name users pick with `--backend`.
    var name: String { get }
    /// What this backend can do.
    var capabilities: BackendCapabilities { get }
    /// Whether the device is usable here; says what was found or what to do.
    func availability() -> Availability

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
    /// The calling thread's kernel thread id.
    func currentThreadID() -> Int32
    /// Makes a short, deterministic syscall (the probe) on the calling thread.
    func probe()
    /// Empties the buffer mapped at `buffer` (`words` long), starts a child that enables coverage
    /// on `fd` in `mode` and runs `command` (without touching the buffer), and waits for it.
    /// The parent must have initialised and mapped `fd`.
    func runEnabled(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command
    ) throws(CoverageError) -> CommandExit
}

/// A program to run with coverage: an absolute path, its arguments (`arguments[0]` is its name),
/// and its environment as `NAME=value` strings.
public struct Command: Sendable, Hashable {
    public var path: String
    public var arguments: [String]
    public var environment: [String]

    public init(path: String, arguments: [String], environment: [String]) {
        self.path = path
        self.arguments = arguments
        self.environment = environment
    }
}

/// How a traced command ended.
public enum CommandExit: Sendable, Hashable {
    case exited(Int32)
    case signaled(Int32)
}

/// What remote coverage should attach to.
public struct RemoteRequest: Sendable, Hashable {
    /// One background source of kernel work.
    public enum Target: Sendable, Hashable {
        /// A Linux common handle (instance must be non-zero): work the kernel tags with it.
        case common(instance: UInt32)
        /// A Linux USB bus: the hub events of that bus.
        case usbBus(UInt32)
        /// A NetBSD VHCI port.
        case vhciPort(bus: UInt32, port: UInt32)

        /// The capability a backend needs to accept this target.
        public var kind: BackendCapabilities.RemoteKind {
            switch self {
            case .common: .commonHandle
            case .usbBus: .usbBus
            case .vhciPort: .vhciPort
            }
        }
    }

    public var targets: [Target]
    /// Words of the kernel's temporary buffer for each remote section (Linux `area_size`).
    public var sectionWords: Int

    public init(targets: [Target], sectionWords: Int) {
        self.targets = targets
        self.sectionWords = sectionWords
    }
}
