import CoverageAPI
import Foundation

extension CoverageReport.Counts {
    private enum Keys: String, CodingKey { case covered, coverable, percent, hits }

    /// Adds the percentage, rounded to hundredths, so readers need not compute it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(covered, forKey: .covered)
        try container.encode(coverable, forKey: .coverable)
        try container.encode((percent * 100).rounded() / 100, forKey: .percent)
        try container.encode(hits, forKey: .hits)
    }
}

extension CoverageReport {
    /// The document `--format json` writes.
    private struct Document: Encodable {
        var image: String
        var mode: String
        var unit: String
        var inputs: [Input]
        var totals: Counts
        var unknownPCs: [String]
        var uncountedPCs: Int
        var warnings: [String]
        var files: [File]
        var groupBy: String?
        var groups: [Group]?
    }

    /// The whole report as JSON: inputs, totals, warnings, and per file its functions and lines;
    /// with `grouping`, also `groupBy` and `groups` (each with its name, paths and rolled-up
    /// `coverage`: `pcs`, `lines`, `functions`, `files`). PCs are hex strings (kernel addresses do
    /// not fit a JSON double).
    public func json(imageName: String, grouping: Grouping? = nil) -> String {
        let document = Document(
            image: imageName, mode: mode.rawValue, unit: unitDescription, inputs: inputs, totals: totals, unknownPCs: unknownPCs.map(hex), uncountedPCs: uncountedPCs,
            warnings: warnings, files: files, groupBy: grouping?.noun, groups: grouping.map { groups($0) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain structs of strings and integers cannot fail.
        let data = try! encoder.encode(document)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Totals, inputs, warnings, then each file with coverage, most covered first: covered/coverable
    /// PCs and functions entered.
    public func summary(imageName: String) -> String {
        var lines = summaryHeader(imageName: imageName)
        let covered = files.filter { $0.counts.covered > 0 }.sorted { ($1.counts.covered, $0.path) < ($0.counts.covered, $1.path) }
        for file in covered {
            let entered = file.functions.count { $0.counts.covered > 0 }
            lines.append(
                "  \(percentText(file.counts).leftPadded(7)) \(String(file.counts.covered).leftPadded(6))/\(String(file.counts.coverable).leftPadded(6)) \(unitNoun)  \(entered)/\(file.functions.count) functions  \(file.path)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The image, inputs, totals, notes and warnings: the first lines of every summary.
    func summaryHeader(imageName: String) -> [String] {
        var lines = ["image: \(imageName) (\(mode.rawValue) mode; unit: \(unitDescription))"]
        for input in inputs {
            lines.append("input: \(input.path): \(input.entries) entries, \(input.uniquePCs) unique PCs\(input.truncated ? ", truncated" : "")")
        }
        let functions = files.flatMap(\.functions)
        lines.append(
            "total: \(totals.covered) of \(totals.coverable) \(unitNoun) (\(percentText(totals))), "
                + "\(functions.count { $0.counts.covered > 0 }) of \(functions.count) functions, "
                + "\(files.count { $0.counts.covered > 0 }) of \(files.count) files")
        if uncountedPCs > 0 { lines.append(uncountedNote) }
        for warning in warnings { lines.append("warning: \(warning)") }
        return lines
    }
}

extension CoverageReport {
    /// What the counts count, in a word or two.
    var unitNoun: String { granularity == .function ? "probed functions" : "PCs" }

    /// Why some recorded PCs are in no count.
    var uncountedNote: String {
        "note: \(uncountedPCs) recorded PCs follow indirect calls into functions that tail-call the callback: real coverage, but not enumerable, so outside every count"
    }
}

/// `12.3%`.
func percentText(_ counts: CoverageReport.Counts) -> String { percentText(counts.percent) }

/// `12.3%`.
func percentText(_ percent: Double) -> String { String(format: "%.1f%%", percent) }

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
