/// A kernel's coverage interface, as clients and ``CoverageCollector`` see it: a name, what it can
/// do, whether it works here, and which driver protocol it implements.
///
/// A backend implements exactly one driver protocol, and ``driver`` says which:
/// - ``KcovDriver``: a kcov-style shared buffer the kernel appends PCs or comparison records to
///   (Linux, NetBSD, gVisor; see `Docs/`).
/// - ``FunctionCounterDriver``: one counter per probed kernel function (kprobes), for kernels
///   built without kcov.
///
/// Implementation requirements:
/// - ``capabilities`` describes the device truthfully; clients branch on it, never on ``name``.
/// - ``availability()`` makes no lasting change: it may open and close the device, nothing more.
/// - ``probe()`` makes the same short syscall every time, on the calling thread.
public protocol CoverageBackend: Sendable {
    /// The name users pick with `--backend`.
    var name: String { get }
    /// What this backend can do.
    var capabilities: BackendCapabilities { get }
    /// Whether the device is usable here; says what was found or what to do.
    func availability() -> Availability
    /// The calling thread's kernel thread id.
    func currentThreadID() -> Int32
    /// Makes a short, deterministic syscall (the probe) on the calling thread: `read(-1, NULL, 0)`.
    func probe()
    /// The driver protocol this backend implements.
    var driver: BackendDriver { get }
}

/// The two shapes of kernel coverage interface.
public enum BackendDriver: Sendable {
    /// A shared buffer the kernel appends entries to (kcov).
    case kcovBuffer(any KcovDriver)
    /// Counters of entries into probed functions.
    case functionCounters(any FunctionCounterDriver)
}

/// A program to run with coverage: its path, its arguments (`arguments[0]` is its name), and its
/// environment as `NAME=value` strings. A path without a `/` is looked up on the `PATH` of
/// ``environment`` (or of this process) when the command runs, as a shell would.
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
