public import CoverageAPI
public import GVisorBackend
import KprobeBackend
import LinuxBackend
import NetBSDBackend

/// Which backend to use: every backend by name, whether each works here and why not, and `auto`.
///
/// `auto` takes the first available backend in ``backends`` order (kcov first, the function-level
/// kprobe backend last, for kernels built without kcov). Inside gVisor it takes the gvisor backend
/// or nothing: gVisor's kcov answers Linux's ioctls with global, unordered synthetic block ids,
/// which the linux backend would misreport (and refuses, with `.wrongBackend`).
///
/// ```swift
/// let choice = try BackendSelection.system.resolve("auto")
/// print(choice.explanation)
/// var collector = try CoverageCollector(backend: choice.backend)
/// ```
public struct BackendSelection: Sendable {
    /// The backends `resolve` and `list` know, in the order `auto` tries them.
    public let backends: [any CoverageBackend]
    /// Whether this process runs inside gVisor, and the evidence.
    private let detectGVisor: @Sendable () -> GVisorDetection.Verdict

    /// The name that asks for detection.
    public static let auto = "auto"

    /// This machine's backends: linux, netbsd, gvisor, kprobe.
    public static var system: BackendSelection {
        BackendSelection(
            backends: [LinuxKcovBackend(), NetBSDKcovBackend(), GVisorKcovBackend(), KprobeBackend()],
            detectGVisor: { GVisorDetection.current() })
    }

    /// A selection over `backends` (names must be unique), with gVisor detected by `detectGVisor`.
    public init(backends: [any CoverageBackend], detectGVisor: @escaping @Sendable () -> GVisorDetection.Verdict) {
        self.backends = backends
        self.detectGVisor = detectGVisor
    }

    /// Every name `resolve` accepts: `auto`, then the backends'.
    public var names: [String] { [Self.auto] + backends.map(\.name) }

    /// One backend's state here.
    public struct Status: Sendable {
        public var backend: any CoverageBackend
        public var availability: Availability
        public var name: String { backend.name }
        public var capabilities: BackendCapabilities { backend.capabilities }
    }

    /// Every backend with whether it works here and why (or why not).
    public func list() -> [Status] {
        backends.map { Status(backend: $0, availability: $0.availability()) }
    }

    /// The backend chosen for a name, and why.
    public struct Choice: Sendable {
        public var backend: any CoverageBackend
        /// One sentence: what was found and why this backend (for `auto`, why not the others).
        public var explanation: String
    }

    /// The backend called `name`, or for `auto` the one that works here.
    ///
    /// - Throws: `.invalidArgument` for an unknown name (the message lists the names);
    ///   `.deviceMissing` when `auto` finds nothing available (the message gives each backend's
    ///   reason); `.wrongBackend` for `linux` inside gVisor.
    public func resolve(_ name: String) throws(CoverageError) -> Choice {
        guard name == Self.auto else {
            guard let backend = backends.first(where: { $0.name == name }) else {
                throw CoverageError(
                    .invalidArgument, "there is no backend called \"\(name)\": use one of \(names.joined(separator: ", "))")
            }
            let verdict = detectGVisor()
            if verdict.insideGVisor && backend.capabilities.pcKind == .kernelAddress && backend.capabilities.granularity == .basicBlock {
                throw CoverageError(
                    .wrongBackend,
                    "inside gVisor (\(verdict.explanation)) the \(name) backend would take gVisor's synthetic block ids for kernel PCs: use the gvisor backend")
            }
            return Choice(backend: backend, explanation: "\(name): chosen by name")
        }
        let verdict = detectGVisor()
        if verdict.insideGVisor {
            guard let backend = backends.first(where: { $0.capabilities.pcKind == .synthetic }) else {
                throw CoverageError(.deviceMissing, "inside gVisor (\(verdict.explanation)), but no backend here reads gVisor's synthetic coverage")
            }
            let availability = backend.availability()
            guard availability.available else {
                throw CoverageError(
                    .deviceMissing, "inside gVisor (\(verdict.explanation)), so only the \(backend.name) backend can be used, but it is unavailable — \(availability.reason)")
            }
            return Choice(backend: backend, explanation: "auto: inside gVisor (\(verdict.explanation)): using the \(backend.name) backend")
        }
        var reasons: [String] = []
        for backend in backends where backend.capabilities.pcKind != .synthetic {
            let availability = backend.availability()
            if availability.available {
                let others = reasons.isEmpty ? "" : "; not " + reasons.joined(separator: "; ")
                return Choice(backend: backend, explanation: "auto: using the \(backend.name) backend (\(availability.reason))\(others)")
            }
            reasons.append("\(backend.name): \(availability.reason)")
        }
        for backend in backends where backend.capabilities.pcKind == .synthetic {
            reasons.append("\(backend.name): not inside gVisor (\(verdict.explanation))")
        }
        throw CoverageError(.deviceMissing, "no coverage backend is available here — " + reasons.joined(separator: "; "))
    }
}
