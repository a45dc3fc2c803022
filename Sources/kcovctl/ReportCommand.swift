import ArgumentParser
import CoverageAPI
import CoverageReport
import Foundation
import KernelImage
import KernelSymbolizer

/// The output formats of `report`.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case summary, lcov, html, json
}

/// `kcovctl report`: merges coverage files and measures them against every coverable PC of a vmlinux.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Merge coverage files from `trace` and report covered / coverable per file, function and line.",
        discussion: """
            COVERAGE are rawcover or JSON files written by `kcovctl trace` (all PC mode, or all CMP mode). \
            The denominator is every call site of the kcov callbacks in --vmlinux (the coverable PCs), \
            each symbolized from DWARF to its innermost source line and function. PCs that are not \
            coverable in this vmlinux (another build) are left out and counted in a warning; if none \
            is, the report fails. LCOV output is for genhtml; --source-dir names where the sources \
            are when the build tree has moved (SF: paths and the HTML source view use it).
            """)

    @Option(help: "The unstripped vmlinux of the traced kernel (built with CONFIG_KCOV and CONFIG_DEBUG_INFO).")
    var vmlinux: String

    @Option(help: "The kernel source tree, when it is not where the vmlinux was built.")
    var sourceDir: String?

    @Option(help: "Output: summary, lcov (a tracefile for genhtml), html (one self-contained page) or json.")
    var format: ReportFormat = .summary

    @Option(help: "Write the report to this file instead of standard output.")
    var output: String?

    @Option(help: "lcov: the test name (TN:) to record.")
    var testName: String = ""

    @Argument(help: "Coverage files: rawcover (one 0x… PC a line) or `kcovctl trace --format json`.")
    var coverage: [String] = []

    func validate() throws {
        guard !coverage.isEmpty else {
            throw ValidationError("name at least one coverage file, for example: kcovctl trace --format rawcover --output run.cover -- CMD")
        }
    }

    func run() throws {
        do {
            let inputs = try coverage.map { path throws(CoverageInputError) in try CoverageInput.read(path: path) }
            let image = try KernelImage(path: vmlinux)
            let symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
            let map: KernelCoverageMap
            if inputs[0].probedFunctions != nil {
                map = KernelCoverageMap(functions: try probedFunctions(inputs, in: image), symbolizer: symbolizer)
            } else {
                map = try KernelCoverageMap(image: image, symbolizer: symbolizer, mode: inputs[0].mode)
            }
            let report = try CoverageReport(inputs: inputs, symbolizer: map, imageName: vmlinux, uncounted: map.isUncountedReturn)
            for warning in report.warnings { note("warning: \(warning)") }
            let sources = SourceLocator(sourceDirectory: sourceDir, buildDirectory: map.buildDirectory)
            let text: String
            switch format {
            case .summary: text = report.summary(imageName: vmlinux)
            case .json: text = report.json(imageName: vmlinux)
            case .lcov: text = report.lcov(testName: testName, sourcePath: sources.path(of:))
            case .html: text = report.html(imageName: vmlinux, source: sources.text(of:))
            }
            try write(text)
        } catch {
            throw fail(error)
        }
    }

    /// The functions the kprobe traces probed, each checked against this vmlinux's symbol at
    /// that address: a name that differs means the trace is of another build.
    private func probedFunctions(_ inputs: [CoverageInput], in image: KernelImage) throws(CoverageInputError) -> [UInt64: String] {
        var functions: [UInt64: String] = [:]
        for input in inputs { functions.merge(input.probedFunctions ?? [:]) { first, _ in first } }
        let mismatched = functions.filter { pc, name in image.function(containing: pc).map { $0.address != pc || $0.name != name } ?? true }
        if !functions.isEmpty, mismatched.count == functions.count {
            throw CoverageInputError(
                path: inputs[0].path,
                "none of its \(functions.count) probed functions is at its kallsyms address in \(vmlinux): a trace of another kernel build (or KASLR was on); pass the vmlinux of the kernel that was traced")
        }
        if let example = mismatched.first {
            note("warning: \(mismatched.count) of \(functions.count) probed functions are not at their kallsyms address in \(vmlinux) (first: \(example.value)); their lines may be wrong")
        }
        return functions
    }

    private func write(_ text: String) throws {
        guard let output else { return print(text, terminator: "") }
        do {
            try text.write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
            throw CoverageError(.system, "cannot write \(output): \(error.localizedDescription)")
        }
    }
}
