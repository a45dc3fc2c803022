import ArgumentParser
import CoverageAPI
import GVisorBackend
import KprobeBackend
import LinuxBackend
import NetBSDBackend

/// The backends `--backend` names, and `auto`.
enum BackendChoice: String, ExpressibleByArgument, CaseIterable {
    case auto
    case linux
    case netbsd
    case gvisor
    case kprobe

    static var allValueStrings: [String] { allCases.map(\.rawValue) }

    /// Every concrete backend, in the order `auto` tries them outside gVisor: kcov first, the
    /// function-level kprobe backend last (for kernels built without kcov).
    static func allBackends() -> [any CoverageBackend] {
        [LinuxKcovBackend(), NetBSDKcovBackend(), GVisorKcovBackend(), KprobeBackend()]
    }

    /// The backend to use; `auto` takes the first available one and explains a failure. Inside
    /// gVisor `auto` takes gVisor's backend or nothing: its kcov answers Linux's ioctls, but with
    /// global, unordered coverage that the Linux backend would misreport. `explain` is told why.
    func resolve(explain: (String) -> Void = { _ in }) throws(CoverageError) -> any CoverageBackend {
        switch self {
        case .linux:
            return LinuxKcovBackend()
        case .netbsd:
            return NetBSDKcovBackend()
        case .gvisor:
            return GVisorKcovBackend()
        case .kprobe:
            return KprobeBackend()
        case .auto:
            let verdict = GVisorDetection.current()
            if verdict.insideGVisor {
                let backend = GVisorKcovBackend()
                let availability = backend.availability()
                guard availability.available else {
                    throw CoverageError(.deviceMissing, "inside gVisor, so the gvisor backend was chosen, but it is unavailable — \(availability.reason)")
                }
                explain("auto: inside gVisor (\(verdict.explanation)): using the gvisor backend")
                return backend
            }
            var reasons: [String] = []
            for backend in Self.allBackends() {
                let availability = backend.availability()
                if availability.available {
                    explain("auto: using the \(backend.name) backend (\(availability.reason))")
                    return backend
                }
                reasons.append("\(backend.name): \(availability.reason)")
            }
            throw CoverageError(.deviceMissing, "no coverage backend is available here — " + reasons.joined(separator: "; "))
        }
    }
}

/// `--mode` values.
enum ModeOption: String, ExpressibleByArgument, CaseIterable {
    case pc, cmp

    var mode: CoverageMode { self == .pc ? .pc : .comparisons }
}
