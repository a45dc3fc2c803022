public import CoverageAPI
import FreeBSDBackend
public import GVisorBackend
import KernelSeam
import KprobeBackend
import LinuxBackend
import NetBSDBackend
import OpenBSDBackend

/// Which backend to use: every backend by name, whether each works here and why not, and `auto`.
///
/// `auto` first tells the five kernels apart without touching any coverage device: uname(3)'s
/// system name says Linux, NetBSD, FreeBSD or OpenBSD, and on Linux the gVisor detection says
/// whether this "Linux" is a gVisor sandbox (Docs/README.md#telling-the-kernels-apart). Only the
/// backends for that kernel are then asked whether they work: NetBSD and OpenBSD share request
/// numbers, so trying one kernel's ioctls on another's device is never done. Among them `auto`
/// takes the first available in ``backends`` order (kcov first, the function-level kprobe backend
/// last, for kernels built without kcov). Inside gVisor it takes the gvisor backend or nothing:
/// gVisor's kcov answers Linux's ioctls with global, unordered synthetic block ids, which the
/// linux backend would misreport (and refuses, with `.wrongBackend`).
///
/// ```swift
/// let choice = try BackendSelection.system.resolve("auto")
/// print(choice.explanation)
/// var collector = try CoverageCollector(backend: choice.backend)
/// ```
public struct BackendSelection: Sendable {
    /// A backend and the kernel it drives.
    public struct Candidate: Sendable {
        public var backend: any CoverageBackend
        /// uname(3)'s system name of the kernels the backend drives: "Linux" for linux, gvisor
        /// (gVisor reports Linux) and kprobe; "NetBSD", "FreeBSD", "OpenBSD".
        public var systemName: String

        public init(_ backend: any CoverageBackend, systemName: String) {
            self.backend = backend
            self.systemName = systemName
        }
    }

    /// The backends `resolve` and `list` know, in the order `auto` tries them.
    public let candidates: [Candidate]
    /// The host's uname(3) system name, or nil if it cannot be read.
    private let hostSystem: @Sendable () -> String?
    /// Whether this process runs inside gVisor, and the evidence (asked only on Linux).
    private let detectGVisor: @Sendable () -> GVisorDetection.Verdict

    /// The name that asks for detection.
    public static let auto = "auto"

    /// This machine's backends: linux, netbsd, freebsd, openbsd, gvisor, kprobe.
    public static var system: BackendSelection {
        BackendSelection(
            candidates: [
                Candidate(LinuxKcovBackend(), systemName: "Linux"),
                Candidate(NetBSDKcovBackend(), systemName: NetBSDKcovABI.systemName),
                Candidate(FreeBSDKcovBackend(), systemName: FreeBSDKcovABI.systemName),
                Candidate(OpenBSDKcovBackend(), systemName: OpenBSDKcovABI.systemName),
                Candidate(GVisorKcovBackend(), systemName: "Linux"),
                Candidate(KprobeBackend(), systemName: "Linux"),
            ],
            hostSystem: { SystemKernel.hostSystemName() }, detectGVisor: { GVisorDetection.current() })
    }

    /// A selection over `candidates` (names must be unique) on a host whose system name
    /// `hostSystem` gives, with gVisor detected by `detectGVisor`.
    public init(
        candidates: [Candidate], hostSystem: @escaping @Sendable () -> String?,
        detectGVisor: @escaping @Sendable () -> GVisorDetection.Verdict
    ) {
        self.candidates = candidates
        self.hostSystem = hostSystem
        self.detectGVisor = detectGVisor
    }

    /// The backends, in order.
    public var backends: [any CoverageBackend] { candidates.map(\.backend) }

    /// Every name `resolve` accepts: `auto`, then the backends'.
    public var names: [String] { [Self.auto] + backends.map(\.name) }

    /// Which of the five kernels this is, and how that was told.
    public struct Kernel: Sendable, Hashable {
        /// uname(3)'s system name, or nil if it could not be read.
        public var systemName: String?
        /// On Linux: whether this is a gVisor sandbox (never asked on other systems).
        public var gVisor: GVisorDetection.Verdict?
        /// "Linux", "gVisor", "NetBSD", "FreeBSD", "OpenBSD", another system's name, or "unknown".
        public var name: String {
            if gVisor?.insideGVisor == true { return "gVisor" }
            return systemName ?? "unknown"
        }
        /// One sentence: the evidence.
        public var explanation: String {
            guard let systemName else { return "uname(3) failed, so the kernel is unknown" }
            guard let gVisor else { return "uname says \(systemName)" }
            return gVisor.insideGVisor
                ? "uname says \(systemName), but this is inside gVisor (\(gVisor.explanation))"
                : "uname says \(systemName), not gVisor (\(gVisor.explanation))"
        }
    }

    /// Tells the kernels apart: the system name first; the gVisor detection only on Linux.
    public func identify() -> Kernel {
        let system = hostSystem()
        return Kernel(systemName: system, gVisor: system == "Linux" ? detectGVisor() : nil)
    }

    /// One backend's state here.
    public struct Status: Sendable {
        public var backend: any CoverageBackend
        public var availability: Availability
        /// The uname system name of the kernels it drives.
        public var systemName: String
        public var name: String { backend.name }
        public var capabilities: BackendCapabilities { backend.capabilities }
    }

    /// Every backend with whether it works here and why (or why not).
    public func list() -> [Status] {
        candidates.map { Status(backend: $0.backend, availability: $0.backend.availability(), systemName: $0.systemName) }
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
    ///   `.deviceMissing` when `auto` finds nothing available (the message gives the kernel and each
    ///   backend's reason); `.wrongBackend` for a backend named for another system than the one
    ///   `uname` reports, and for a kernel-address backend inside gVisor.
    public func resolve(_ name: String) throws(CoverageError) -> Choice {
        guard name == Self.auto else {
            guard let candidate = candidates.first(where: { $0.backend.name == name }) else {
                throw CoverageError(
                    .invalidArgument, "there is no backend called \"\(name)\": use one of \(names.joined(separator: ", "))")
            }
            let backend = candidate.backend
            let kernel = identify()
            if let running = kernel.systemName, running != candidate.systemName {
                let mine = candidates.filter { $0.systemName == running }.map(\.backend.name)
                throw CoverageError(
                    .wrongBackend,
                    "the \(name) backend drives \(candidate.systemName) kernels, and this one is not (\(kernel.explanation)): "
                        + (mine.isEmpty ? "no backend here drives \(running)" : "use --backend auto or \(mine.joined(separator: ", "))"))
            }
            if let verdict = kernel.gVisor, verdict.insideGVisor,
               backend.capabilities.pcKind == .kernelAddress && backend.capabilities.granularity == .basicBlock {
                throw CoverageError(
                    .wrongBackend,
                    "inside gVisor (\(verdict.explanation)) the \(name) backend would take gVisor's synthetic block ids for kernel PCs: use the gvisor backend")
            }
            return Choice(backend: backend, explanation: "\(name): chosen by name")
        }
        let kernel = identify()
        let others = candidates.filter { $0.systemName != kernel.systemName }
        let elsewhere = others.isEmpty ? "" : "; " + others.map { "\($0.backend.name) is for \($0.systemName)" }.joined(separator: ", ")
        if let verdict = kernel.gVisor, verdict.insideGVisor {
            guard let backend = backends.first(where: { $0.capabilities.pcKind == .synthetic }) else {
                throw CoverageError(.deviceMissing, "\(kernel.explanation), but no backend here reads gVisor's synthetic coverage")
            }
            let availability = backend.availability()
            guard availability.available else {
                throw CoverageError(
                    .deviceMissing, "\(kernel.explanation), so only the \(backend.name) backend can be used, but it is unavailable — \(availability.reason)")
            }
            return Choice(backend: backend, explanation: "auto: \(kernel.explanation): using the \(backend.name) backend")
        }
        let mine = candidates.filter { $0.systemName == kernel.systemName }
        guard !mine.isEmpty else {
            throw CoverageError(
                .deviceMissing, "no coverage backend drives this kernel — \(kernel.explanation)\(elsewhere)")
        }
        var reasons: [String] = []
        for backend in mine.map(\.backend) where backend.capabilities.pcKind != .synthetic {
            let availability = backend.availability()
            if availability.available {
                let notThese = reasons.isEmpty ? "" : "; not " + reasons.joined(separator: "; ")
                return Choice(
                    backend: backend,
                    explanation: "auto: \(kernel.explanation): using the \(backend.name) backend (\(availability.reason))\(notThese)\(elsewhere)")
            }
            reasons.append("\(backend.name): \(availability.reason)")
        }
        for backend in mine.map(\.backend) where backend.capabilities.pcKind == .synthetic {
            reasons.append("\(backend.name): not inside gVisor")
        }
        throw CoverageError(
            .deviceMissing, "no coverage backend is available here — \(kernel.explanation): " + reasons.joined(separator: "; ") + elsewhere)
    }
}
