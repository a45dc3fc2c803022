import ArgumentParser
import BackendSelection
import CoverageAPI

extension BackendSelection {
    /// The backend `--backend` names (or `auto`), resolved on this machine; for `auto`, `explain` is
    /// told what was found and why.
    static func resolveOption(_ name: String, explain: (String) -> Void) throws(CoverageError) -> any CoverageBackend {
        let choice = try BackendSelection.system.resolve(name)
        if name == BackendSelection.auto { explain(choice.explanation) }
        return choice.backend
    }

    /// `--backend` values, for help texts.
    static var optionValues: String { system.names.joined(separator: ", ") }
}

/// `--mode` values.
enum ModeOption: String, ExpressibleByArgument, CaseIterable {
    case pc, cmp

    var mode: CoverageMode { self == .pc ? .pc : .comparisons }
}
