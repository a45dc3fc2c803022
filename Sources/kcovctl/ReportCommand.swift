import ArgumentParser
import CoverageAPI
import CoverageReport
import Foundation
import KernelImage
import KernelSymbolizer
import TraceFile

/// The output formats of `report`.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case summary, lcov, html, json, cobertura
    case syzJSONL = "syz-jsonl", syzFunctionCSV = "syz-func-csv", syzFileCSV = "syz-file-csv"
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
            is, the report fails. PCs stored as their low 32 bits (old syzkaller corpora) get the \
            upper half of the vmlinux's text addresses back, with a warning. LCOV output is for \
            genhtml, lcov 2.x's by default (--lcov-version 1 for lcov 1.x); --source-dir names where \
            the sources are when the build tree has moved (SF: paths and the HTML source view use it). \
            HTML is a directory (--output DIR): an index per source directory with coverage rolled \
            up, a page per source file with each line's state, tables sortable by name and coverage.
            """)

    @Option(help: "The unstripped vmlinux of the traced kernel (built with CONFIG_KCOV and CONFIG_DEBUG_INFO).")
    var vmlinux: String

    @Option(help: "The kernel source tree, when it is not where the vmlinux was built.")
    var sourceDir: String?

    @Option(name: .customLong("module"), help: "A loaded module's .ko, as NAME=PATH (repeatable): its PCs are mapped through the trace's kernel layout and reported at its source lines.")
    var module: [String] = []

    @Option(help: "A folder of .ko files (searched to any depth): every module the traces' kernels had loaded that is found there is reported.")
    var modules: String?

    @Option(help: "Output: summary, lcov (a tracefile for genhtml), html (a directory of pages; needs --output DIR), json, cobertura (XML for GitLab, Jenkins, Azure), syz-jsonl, syz-func-csv or syz-file-csv (syzkaller's coverage exports).")
    var format: ReportFormat = .summary

    @Option(help: "Write the report to this file instead of standard output (html: this directory, created or replaced).")
    var output: String?

    @Option(help: "lcov: the test name (TN:) to record: letters, digits and _ only.")
    var testName: String = ""

    @Option(help: "lcov: the lcov that reads the tracefile: 2 (lcov 2.x: functions with end lines) or 1 (lcov 1.x, e.g. Debian 12's genhtml 1.16).")
    var lcovVersion: LCOVVersionArgument = .v2

    @Option(help: "summary, json: coverage per MAINTAINERS subsystem (maintainers) or per directory to a depth (dir:N, e.g. dir:2 for fs/ext4).")
    var groupBy: GroupByArgument?

    @Option(help: "With --group-by maintainers: the MAINTAINERS file (default: the one at the top of the source tree).")
    var maintainers: String?

    @Option(help: "Whole runs (trace --follow): report only the records of the task with this start order (repeatable).")
    var task: [Int] = []

    @Option(help: "Whole runs (trace --follow): report only the records whose executable is this path (repeatable).")
    var executable: [String] = []

    @Option(help: "Whole runs (trace --follow): instead of a report, list the records (task, executable) that covered this place: a PC (0x…) or FILE:LINE (FILE may be a trailing part of the path, e.g. namei.c:2404).")
    var coveredBy: String?

    @Argument(help: "Coverage files: rawcover (one 0x… PC a line) or `kcovctl trace --format json`.")
    var coverage: [String] = []

    func validate() throws {
        if groupBy != nil, format != .summary, format != .json {
            throw ValidationError("--group-by applies to --format summary and json")
        }
        if maintainers != nil, groupBy != .maintainers {
            throw ValidationError("--maintainers is for --group-by maintainers")
        }
        if format == .html, output == nil {
            throw ValidationError("--format html writes a directory of pages: name it with --output DIR")
        }
        guard !coverage.isEmpty else {
            throw ValidationError("name at least one coverage file, for example: kcovctl trace --format rawcover --output run.cover -- CMD")
        }
        if let coveredBy {
            guard CoverageAttribution.Location(coveredBy) != nil else {
                throw ValidationError("--covered-by takes a PC (0xffffffff81234567) or FILE:LINE (fs/namei.c:2404), not '\(coveredBy)'")
            }
            guard task.isEmpty, executable.isEmpty, format == .summary, groupBy == nil else {
                throw ValidationError("--covered-by lists every record that covered the place: --task, --executable, --format and --group-by do not apply")
            }
        }
        for entry in module where ModuleArguments.parse(entry) == nil {
            throw ValidationError("--module takes NAME=PATH.ko (for example kcov_test_module=/lib/modules/6.12.0/extra/kcov_test_module.ko), not '\(entry)'")
        }
        guard CoverageReport.isValidLCOVTestName(testName) else {
            throw ValidationError("--test-name '\(testName.debugDescription.dropFirst().dropLast())' may hold only letters, digits and _ (what lcov allows in TN:)")
        }
    }

    func run() throws {
        if let coveredBy, let location = CoverageAttribution.Location(coveredBy) {
            do { return try attribute(location) } catch { throw fail(error) }
        }
        do {
            let selection = CoverageInput.TaskSelection(orders: Set(task), executables: Set(executable))
            var inputs = try coverage.map { path throws(CoverageInputError) in try CoverageInput.read(path: path, tasks: selection) }
            let map = try coverageMap(vmlinux: vmlinux, modules: ModuleArguments(module: module, folder: modules), for: &inputs)
            let report = try CoverageReport(inputs: inputs, symbolizer: map, imageName: vmlinux, uncounted: map.isUncountedReturn)
            for warning in report.warnings { note("warning: \(warning)") }
            let sources = SourceLocator(sourceDirectory: sourceDir, buildDirectory: map.buildDirectory)
            let text: String
            switch format {
            case .summary:
                text = try grouping(report, sources).map { report.groupSummary(imageName: vmlinux, $0) } ?? report.summary(imageName: vmlinux)
            case .json: text = report.json(imageName: vmlinux, grouping: try grouping(report, sources))
            case .lcov: text = report.lcov(testName: testName, version: lcovVersion.version, sourcePath: sources.path(of:))
            case .cobertura:
                let top = sources.path(of: "")
                text = report.cobertura(sourceDirectory: top.isEmpty ? "." : top, timestamp: Int(Date().timeIntervalSince1970 * 1000))
            case .syzJSONL:
                let functionLevel = report.granularity == .function
                text = report.syzkallerJSONL(points: map.coverable.enumerated().map { index, entry in
                    let frames = map.frames[index].isEmpty
                        ? [SourceFrame(function: entry.source.function, file: entry.source.file, line: entry.source.startLine)] : map.frames[index]
                    return CoverageReport.SyzkallerPoint(pc: entry.pc, callSite: functionLevel ? entry.pc : entry.pc - CoverablePCs.callLength, frames: frames)
                })
            case .syzFunctionCSV: text = report.syzkallerFunctionCSV()
            case .syzFileCSV:
                let (csv, warnings) = report.syzkallerFileCSV { path in
                    sources.text(of: path).map { text in text.utf8.count { $0 == 0x0a } + (text.utf8.last == 0x0a || text.isEmpty ? 0 : 1) }
                }
                for warning in warnings { note("warning: \(warning)") }
                text = csv
            case .html:
                let directory = try OutputDirectory(output ?? "")
                try report.htmlTree(imageName: vmlinux, source: sources.text(of:)) { page throws(CoverageError) in try directory.write(page.path, page.contents) }
                return try directory.commit()
            }
            try write(text)
        } catch {
            throw fail(error)
        }
    }

    /// `--covered-by`: the records of the whole-run files that hold a PC of `location`, one a line
    /// (file, start order, pid, tid, executable, how many of the place's PCs), then a count.
    private func attribute(_ location: CoverageAttribution.Location) throws {
        var traces: [(path: String, file: TraceFile)] = []
        var inputs: [CoverageInput] = []
        for path in coverage {
            let name = path == "-" ? "standard input" : path
            guard case .trace(let file) = try CoverageFile.read(path: path), file.tasks.contains(where: { $0.order != nil }) else {
                throw CoverageInputError(path: name, "is not a whole-run trace: --covered-by needs files written by `kcovctl trace --follow --format json`")
            }
            traces.append((name, file))
            inputs.append(try CoverageInput(file, path: name))
        }
        let recorded = inputs.map(\.pcs)
        let map = try coverageMap(vmlinux: vmlinux, modules: ModuleArguments(module: module, folder: modules), for: &inputs)
        // A module PC moved to where its .ko answers (Docs/modules.md): a PC asked for as a trace
        // recorded it is looked up where it moved, and each trace's records are matched on the PCs
        // it recorded.
        var place = location
        if case .pc(let pc) = location, let (index, at) = recorded.indices.lazy.compactMap({ index in recorded[index].firstIndex(of: pc).map { (index, $0) } }).first {
            place = .pc(inputs[index].pcs[at])
        }
        let pcs = CoverageAttribution.pcs(at: place, in: map)
        guard !pcs.isEmpty else {
            throw CoverageInputError(
                path: vmlinux, "has no coverable PC at \(location): give a PC a trace holds, or a FILE:LINE with code (the report's LCOV or HTML shows which lines have)")
        }
        var records: [CoverageAttribution.Record] = []
        for (index, trace) in traces.enumerated() {
            let asRecorded = Set(zip(recorded[index], inputs[index].pcs).compactMap { pcs.contains($0.1) ? $0.0 : nil })
            records += CoverageAttribution.records(covering: asRecorded, in: [trace])
        }
        var text = ""
        for record in records {
            let task = record.task
            let who = [task.order.map { "task \($0)" }, task.pid.map { "pid \($0)" }, task.tid.map { "tid \($0)" }].compactMap { $0 }.joined(separator: " ")
            text += "\(record.path): \(who) \(task.executable ?? "(executable unknown)"): \(record.pcs) of \(pcs.count) PCs\n"
        }
        text += "\(records.count) records covered \(location) (\(pcs.count) coverable PCs there)\n"
        try write(text)
    }

    /// What `--group-by` asks for; MAINTAINERS read from `--maintainers` or the top of the source tree.
    private func grouping(_ report: CoverageReport, _ sources: SourceLocator) throws -> CoverageReport.Grouping? {
        switch groupBy {
        case nil: return nil
        case .directory(let depth): return .directory(depth: depth)
        case .maintainers:
            let path = maintainers ?? sources.path(of: "MAINTAINERS")
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                let hint = maintainers == nil ? "; pass the kernel's MAINTAINERS with --maintainers FILE, or the source tree with --source-dir" : ""
                throw CoverageError(.invalidArgument, "cannot read \(path): \((error as NSError).localizedFailureReason ?? error.localizedDescription)\(hint)")
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                throw CoverageInputError(path: path, "is not text (not UTF-8): pass the kernel's MAINTAINERS")
            }
            // A pattern without a trailing / names a directory if the source tree has one there;
            // without the tree, if a reported file lies below it.
            let top = sources.path(of: "")
            var isDirectoryStatus: ObjCBool = false
            let treeExists = FileManager.default.fileExists(atPath: top, isDirectory: &isDirectoryStatus) && isDirectoryStatus.boolValue && !top.isEmpty
            let paths = report.files.map(\.path)
            return .maintainers(try Maintainers(text: text, source: path) { pattern in
                if treeExists {
                    var directory: ObjCBool = false
                    return FileManager.default.fileExists(atPath: sources.path(of: pattern), isDirectory: &directory) && directory.boolValue
                }
                return paths.contains { $0.hasPrefix(pattern + "/") }
            })
        }
    }

    private func write(_ text: String) throws {
        guard let output else { return try StandardStream.writeOutput(Array(text.utf8)) }
        try OutputFile.write(Array(text.utf8), to: output)
    }
}

/// `--module NAME=PATH` and `--modules DIR`.
struct ModuleArguments {
    var module: [String] = []
    var folder: String?

    static func parse(_ entry: String) -> (name: String, path: String)? {
        guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex, entry.index(after: equals) != entry.endIndex else { return nil }
        return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
    }

    /// Module name to `.ko` path: the `--module` entries, then those of the modules the traces'
    /// kernels had loaded that `--modules` finds.
    func paths(loaded: Set<String>) throws(CoverageInputError) -> [String: String] {
        var paths: [String: String] = [:]
        if let folder, !loaded.isEmpty {
            paths = try ModuleCoverage.find(in: folder, names: loaded)
        }
        for entry in module.compactMap(ModuleArguments.parse) { paths[ModuleCoverage.canonicalName(entry.name)] = entry.path }
        return paths
    }
}

/// The coverable PCs of `vmlinux` for `inputs` (their probed functions, for kprobe traces),
/// symbolized, and of the modules `modules` names (Docs/modules.md), whose PCs in `inputs` are
/// moved to where the modules' images answer for them; the images' warnings are printed, and so
/// is a count of PCs in loaded modules no `.ko` was given for.
func coverageMap(vmlinux: String, modules: ModuleArguments = ModuleArguments(), for inputs: inout [CoverageInput]) throws -> KernelCoverageMap {
    let image = try KernelImage(path: vmlinux)
    for warning in image.warnings { note("warning: \(warning)") }
    let symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
    if inputs[0].probedFunctions != nil {
        guard modules.module.isEmpty, modules.folder == nil else {
            throw CoverageError(.invalidArgument, "--module and --modules map kcov PCs; a function-level (kprobe) trace names its functions already")
        }
        return try KernelCoverageMap(functions: try probedFunctions(inputs, in: image, vmlinux: vmlinux), symbolizer: symbolizer)
    }
    let core = try KernelCoverageMap(image: image, symbolizer: symbolizer, mode: inputs[0].mode)
    let loaded = Set(inputs.flatMap { $0.kernel?.modules.map(\.name) ?? [] })
    let given = try ModuleCoverage(paths: try modules.paths(loaded: loaded), vmlinux: image)
    var unmapped: [String: Int] = [:]
    for index in inputs.indices {
        let (mapped, left) = try given.mapped(inputs[index])
        inputs[index] = mapped
        unmapped.merge(left, uniquingKeysWith: +)
    }
    noteUnmappedModules(unmapped)
    guard !given.modules.isEmpty else { return core }
    for module in given.modules { for warning in module.image.warnings { note("warning: \(warning)") } }
    let maps = try given.modules.map { try KernelCoverageMap(image: $0.image, symbolizer: $0.symbolizer, mode: inputs[0].mode) }
    return KernelCoverageMap(core, adding: maps)
}

/// Warns of the PCs, counted by module, in loaded modules no `.ko` was given for.
func noteUnmappedModules(_ unmapped: [String: Int]) {
    for (name, count) in unmapped.sorted(by: { $0.key < $1.key }) {
        note("warning: \(count) unique PCs are in module \(name), which no .ko was given for: pass --module \(name)=PATH.ko (or --modules DIR) to place them")
    }
}

/// The functions the kprobe traces probed, each checked against this vmlinux's symbol at
/// that address: a name that differs means the trace is of another build.
func probedFunctions(_ inputs: [CoverageInput], in image: KernelImage, vmlinux: String) throws(CoverageInputError) -> [UInt64: String] {
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

/// `--group-by`: `maintainers` or `dir:N`.
enum GroupByArgument: ExpressibleByArgument, Equatable {
    case maintainers
    case directory(Int)

    init?(argument: String) {
        if argument == "maintainers" {
            self = .maintainers
        } else if argument.hasPrefix("dir:"), let depth = Int(argument.dropFirst(4)), (1...64).contains(depth) {
            self = .directory(depth)
        } else {
            return nil
        }
    }

    static var defaultCompletionKind: CompletionKind { .list(["maintainers", "dir:1", "dir:2", "dir:3"]) }
}

/// `--lcov-version`: which lcov reads the tracefile (`LCOVVersion`).
enum LCOVVersionArgument: String, ExpressibleByArgument, CaseIterable {
    case v2 = "2", v1 = "1"

    var version: LCOVVersion { self == .v2 ? .v2 : .v1 }
}
