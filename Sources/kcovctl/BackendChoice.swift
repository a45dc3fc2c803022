import ArgumentParser
import CoverageAPI
import LinuxBackend

/// The backends `--backend` names, and `auto`.
enum BackendChoice: String, ExpressibleByArgument, CaseIterable {
    case auto
    case linux

    static var allValueStrings: [String] { allCases.map(\.rawValue) }

    /// Every concrete backend, in the order `auto` tries them.
    static func allBackends() -> [any CoverageBackend] {
        [LinuxKcovBackend()]
    }

    /// The backend to use; `auto` takes the first available one and explains a failure.
    func resolve() throws(CoverageError) -> any CoverageBackend {
        switch self {
        case .linux:
            return LinuxKcovBackend()
        case .auto:
            var reasons: [String] = []
            for backend in Self.allBackends() {
                let availability = backend.availability()
                if availability.available { return backend }
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
