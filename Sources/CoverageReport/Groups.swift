import Foundation

extension CoverageReport {
    /// Files gathered under one name (a subsystem, a directory), with their coverage rolled up.
    public struct Group: Sendable, Hashable, Encodable {
        public var name: String
        /// The files' paths, sorted.
        public var paths: [String]
        public var coverage: Rollup
    }

    /// How files are gathered: what `--group-by` names.
    public enum Grouping: Sendable {
        /// By `MAINTAINERS` section; a file may be in several, and one in none is in ``unassigned``.
        case maintainers(Maintainers)
        /// By the first `depth` directories of the path (`fs/ext4` at depth 2); a file less deep
        /// is grouped by its whole directory, one at the top by `.`.
        case directory(depth: Int)

        /// The group of files no `MAINTAINERS` section covers.
        public static let unassigned = "(no subsystem)"

        var noun: String {
            switch self {
            case .maintainers: "subsystem"
            case .directory(let depth): "directory (depth \(depth))"
            }
        }

        func groups(of path: String) -> [String] {
            switch self {
            case .maintainers(let maintainers):
                let names = maintainers.subsystems(of: path)
                return names.isEmpty ? [Self.unassigned] : names
            case .directory(let depth):
                let components = path.split(separator: "/", omittingEmptySubsequences: true).dropLast()
                guard !components.isEmpty else { return [path.hasPrefix("/") ? "/" : "."] }
                return [(path.hasPrefix("/") ? "/" : "") + components.prefix(depth).joined(separator: "/")]
            }
        }
    }

    /// Every group with its files, sorted by name. With ``Grouping/maintainers(_:)`` a file in
    /// several sections counts in each, so the groups' totals may add up to more than the report's.
    public func groups(_ grouping: Grouping) -> [Group] {
        var byName: [String: Group] = [:]
        for file in files {
            for name in grouping.groups(of: file.path) {
                byName[name, default: Group(name: name, paths: [], coverage: Rollup())].paths.append(file.path)
                byName[name]?.coverage.add(file)
            }
        }
        return byName.values.sorted { $0.name < $1.name }
    }

    /// The summary's header, then one line per group with coverable PCs, most covered first:
    /// PCs, lines and functions covered out of coverable, and how many files.
    public func groupSummary(imageName: String, _ grouping: Grouping) -> String {
        let groups = groups(grouping).sorted { ($1.coverage.pcs.covered, $0.name) < ($0.coverage.pcs.covered, $1.name) }
        var lines = [summaryHeader(imageName: imageName).joined(separator: "\n")]
        lines.append("by \(grouping.noun): \(groups.count) groups, \(groups.count { $0.coverage.pcs.covered > 0 }) with coverage")
        if case .maintainers = grouping { lines.append("(a file in several subsystems counts in each)") }
        for group in groups {
            let rollup = group.coverage
            lines.append(
                "  \(percentText(rollup.pcs).leftPadded(7)) \(String(rollup.pcs.covered).leftPadded(6))/\(String(rollup.pcs.coverable).leftPadded(6)) \(unitNoun)"
                    + "  \(rollup.lines.covered)/\(rollup.lines.coverable) lines  \(rollup.functions.covered)/\(rollup.functions.coverable) functions"
                    + "  \(group.paths.count) files  \(group.name)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
