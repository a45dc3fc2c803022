import ArgumentParser
import CoverageAPI
import CoverageReport
import Foundation

/// The output formats of `diff`.
enum DiffFormat: String, ExpressibleByArgument, CaseIterable {
    case summary, json, html
}

/// `kcovctl diff BASE NEW`: what each of two coverages covers that the other does not.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What NEW covers that BASE does not, and the reverse, per file and function.",
        discussion: """
            BASE and NEW are trace files (rawcover or `kcovctl trace --format json`) or set files \
            (`kcovctl merge`, `kcovctl signal --output`); merge several runs into one first. Both \
            are measured against the coverable PCs of --vmlinux and compared as sets of PCs (hit \
            counts make no difference). Files and functions are listed when one side covers a PC \
            the other does not: +N for PCs only NEW covers, -N for PCs only BASE covers; a function \
            is newly entered when BASE covers none of its PCs and NEW some.
            """)

    @Option(help: "The unstripped vmlinux of the traced kernel.")
    var vmlinux: String

    @Option(help: "Output: summary, json or html (one page).")
    var format: DiffFormat = .summary

    @Option(help: "Write to this file instead of standard output.")
    var output: String?

    @Argument(help: "The coverage to compare against.")
    var base: String

    @Argument(help: "The coverage compared with BASE.")
    var new: String

    func run() throws {
        do {
            let baseInput = try CoverageInput.read(path: base)
            let newInput = try CoverageInput.read(path: new)
            var inputs = [baseInput, newInput]
            let map = try coverageMap(vmlinux: vmlinux, for: &inputs)
            let diff = try CoverageDiff(base: [baseInput], new: [newInput], symbolizer: map, imageName: vmlinux, uncounted: map.isUncountedReturn)
            for warning in diff.base.warnings { note("warning: \(warning)") }
            for warning in diff.new.warnings { note("warning: \(warning)") }
            let text: String
            switch format {
            case .summary: text = diff.summary(baseName: base, newName: new)
            case .json: text = diff.json(imageName: vmlinux)
            case .html: text = diff.html(imageName: vmlinux, baseName: base, newName: new)
            }
            if let output {
                try OutputFile.write(Array(text.utf8), to: output)
            } else {
                try StandardStream.writeOutput(Array(text.utf8))
            }
        } catch {
            throw fail(error)
        }
    }
}
