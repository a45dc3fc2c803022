#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
    /// Where the running kernel's code is (its text base and loaded modules), read when a trace
    /// ends so a report can map module PCs (Docs/modules.md); `nil` where the backend's PCs are
    /// not kernel addresses or the kernel does not say.
    func kernelLayout() -> KernelLayout?
}

extension CoverageBackend {
    /// No layout: the default for backends whose kernels do not expose one here.
    public func kernelLayout() -> KernelLayout? { nil }
}

/// The two shapes of kernel coverage interface.
public enum BackendDriver: Sendable {
    /// A shared buffer the kernel appends entries to (kcov).
    case kcovBuffer(any KcovDriver)
    /// Counters of entries into probed functions.
    case functionCounters(any FunctionCounterDriver)
}

/// A program to run with coverage: its path, its arguments (`arguments[0]` is its name), its
/// environment as `NAME=value` strings, where its standard streams go, and how long it may run.
/// A path without a `/` is looked up on the `PATH` of ``environment`` (or of this process) when the
/// command runs, as a shell would.
public struct Command: Sendable, Hashable {
    public var path: String
    public var arguments: [String]
    /// `NAME=value` strings; by default this process's environment when the command was made.
    public var environment: [String]
    /// Descriptors of this process that become the program's standard input, output and error
    /// (dup2 in the child before it enables coverage, so the redirection is not traced); `nil`
    /// shares this process's.
    public var standardInput: Int32?
    public var standardOutput: Int32?
    public var standardError: Int32?
    /// How long the program may run; when the time is up it is killed with SIGKILL and the run
    /// ends ``CommandExit/timedOut``. `nil`: no limit.
    public var timeout: Duration?

    public init(
        path: String, arguments: [String], environment: [String] = Command.callerEnvironment,
        standardInput: Int32? = nil, standardOutput: Int32? = nil, standardError: Int32? = nil, timeout: Duration? = nil
    ) {
        self.path = path
        self.arguments = arguments
        self.environment = environment
        self.standardInput = standardInput
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.timeout = timeout
    }

    /// This process's environment now (`environ`), as `NAME=value` strings.
    public static var callerEnvironment: [String] {
        var strings: [String] = []
        var entry = environ
        while let string = entry.pointee {
            strings.append(String(cString: string))
            entry += 1
        }
        return strings
    }

    /// `timeout` in whole milliseconds, rounded up and clamped to what a C `int` holds, for a C
    /// wait; `nil` for no limit.
    ///
    /// - Throws: `.invalidArgument` for a timeout that is not positive.
    public static func milliseconds(of timeout: Duration?) throws(CoverageError) -> Int32? {
        guard let timeout else { return nil }
        guard timeout > .zero else {
            throw CoverageError(.invalidArgument, "a timeout must be positive, not \(timeout)")
        }
        let (seconds, attoseconds) = timeout.components
        let whole = seconds.multipliedReportingOverflow(by: 1000)
        let partial = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        guard !whole.overflow, whole.partialValue <= Int64(Int32.max) - partial else { return Int32.max }
        return Int32(whole.partialValue + partial)
    }
}

/// How a traced command ended.
public enum CommandExit: Sendable, Hashable {
    case exited(Int32)
    case signaled(Int32)
    /// Its ``Command/timeout`` (or the fork server's) expired and it was killed with SIGKILL.
    case timedOut
}

/// A child the fork server ran (``CoverageCollector/runForked(timeout:_:)``): its pid (already
/// reaped) and how it ended.
public struct ForkedChild: Sendable, Hashable {
    public var pid: Int32
    public var exit: CommandExit

    public init(pid: Int32, exit: CommandExit) {
        self.pid = pid
        self.exit = exit
    }
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
