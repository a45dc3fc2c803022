public import CoverageAPI
public import KernelImage
public import KernelSymbolizer
import Foundation

/// A kernel image's coverable PCs, each with the source line of its call site: the
/// ``CoverageSymbolizer`` a kernel report is measured against. For function-level coverage
/// (kprobe) the coverable PCs are the probed functions' entry points instead.
///
/// Paths are normalized (``normalizedPath(_:)``) and made relative to the build directory (the
/// longest directory all source paths share), so reports read `fs/read_write.c`;
/// ``buildDirectory`` puts them back. Each PC's function comes with its DWARF definition.
public struct KernelCoverageMap: FunctionDefining {
    public let coverable: [(pc: UInt64, source: SourceRange)]
    /// For each of ``coverable``, where its innermost frame's function is defined (`nil` for code
    /// the DWARF gives no function, or a definition without a line).
    public let definitions: [FunctionDefinition?]
    /// For each of ``coverable``, its source frames, innermost first: all but the last are
    /// inlined into the next (paths as in ``coverable``).
    public let frames: [[SourceFrame]]
    /// The directory every source path was under, with a trailing `/`; empty if they share none.
    public let buildDirectory: String
    private let index: [UInt64: Int]
    private let image: KernelImage?

    /// Symbolizes the call (PC minus the call's length) before every coverable PC of `mode`.
    /// Throws ``KernelImageError`` when the scan fails and ``SymbolizerError`` (`.badDebugInfo`)
    /// when a unit's DWARF is malformed: a report is never built on partly symbolized code.
    public init(image: KernelImage, symbolizer: KernelSymbolizer, mode: CoverageMode) throws {
        let pcs = try image.coverablePCs().sites(comparisons: mode == .comparisons).all
        let stacks = try symbolizer.checkedFrames(for: pcs.map { $0 - CoverablePCs.callLength })
        self.init(pcs: pcs, stacks: stacks, image: image) { image.function(containing: $0)?.name }
    }

    /// Symbolizes each probed function's entry PC to its file and line, defined where the DWARF
    /// says. The name is the probe's (kallsyms'), which is what the user asked for, except for a
    /// compiler's clone (`foo.isra.0`, `foo.constprop.0`, `foo.part.0`, `foo.cold`): the DWARF
    /// names the function it was cloned from (`DW_AT_abstract_origin`), and the clone counts under
    /// that function. Static functions that share a name stay apart by their files.
    public init(functions: [UInt64: String], symbolizer: KernelSymbolizer) throws(SymbolizerError) {
        let pcs = functions.keys.sorted()
        let entries = zip(pcs, try symbolizer.checkedFrames(for: pcs)).map { pc, stack in
            stack.last.map {
                [SymbolFrame(
                    function: Self.cloneOrigin(symbol: functions[pc], dwarf: $0.function), file: $0.file, line: $0.line,
                    column: $0.column, functionFile: $0.functionFile, functionLine: $0.functionLine)]
            } ?? []
        }
        self.init(pcs: pcs, stacks: entries, image: nil) { functions[$0] }
    }

    /// One map of a vmlinux's and its modules' coverable PCs (Docs/modules.md): `first` (the
    /// vmlinux's) keeps its build-relative paths, and the others' paths are made absolute (a
    /// module is built in its own folder), so every file is found where it was built.
    public init(_ first: KernelCoverageMap, adding others: [KernelCoverageMap]) {
        image = first.image
        buildDirectory = first.buildDirectory
        var coverable = first.coverable
        var definitions = first.definitions
        var frames = first.frames
        for other in others {
            func absolute(_ path: String) -> String { path.hasPrefix("/") || path == "??" ? path : other.buildDirectory + path }
            coverable += other.coverable.map { entry in
                var source = entry.source
                source.file = absolute(source.file)
                return (entry.pc, source)
            }
            definitions += other.definitions.map { $0.map { FunctionDefinition(name: $0.name, file: absolute($0.file), line: $0.line) } }
            frames += other.frames.map { $0.map { SourceFrame(function: $0.function, file: absolute($0.file), line: $0.line) } }
        }
        self.coverable = coverable
        self.definitions = definitions
        self.frames = frames
        index = Dictionary(coverable.enumerated().map { ($1.pc, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The DWARF's name when `symbol` is a clone of it (the name, a dot, gcc's suffix); otherwise
    /// `symbol` (`nil` lets the caller fall back to it).
    static func cloneOrigin(symbol: String?, dwarf: String?) -> String? {
        guard let symbol, let dwarf, symbol.count > dwarf.count + 1, symbol.hasPrefix(dwarf + ".") else { return symbol }
        return dwarf
    }

    private init(pcs: [UInt64], stacks: [[SymbolFrame]], image: KernelImage?, fallbackName: (UInt64) -> String?) {
        self.image = image
        let innermost = stacks.map(\.first)
        let buildDirectory = commonDirectory(innermost.lazy.compactMap { $0.map { normalizedPath($0.file) } })
        // A kernel has some 1,500 source files for 190,000 PCs: each spelling is worked out once.
        var reportPaths: [String: String] = [:]
        func reportPath(_ path: String) -> String {
            if let known = reportPaths[path] { return known }
            let clean = normalizedPath(path)
            let relative = clean.hasPrefix(buildDirectory) ? String(clean.dropFirst(buildDirectory.count)) : clean
            reportPaths[path] = relative
            return relative
        }
        var coverable: [(pc: UInt64, source: SourceRange)] = []
        var definitions: [FunctionDefinition?] = []
        coverable.reserveCapacity(pcs.count)
        definitions.reserveCapacity(pcs.count)
        for (pc, frame) in zip(pcs, innermost) {
            guard let frame else {
                coverable.append((pc, SourceRange(file: "??", function: fallbackName(pc), startLine: 0, startColumn: 0, endLine: 0, endColumn: 0)))
                definitions.append(nil)
                continue
            }
            let function = frame.function ?? fallbackName(pc)
            coverable.append((pc, SourceRange(
                file: reportPath(frame.file), function: function, startLine: frame.line, startColumn: frame.column,
                endLine: frame.line, endColumn: frame.column)))
            if let function, let file = frame.functionFile, frame.functionLine > 0 {
                definitions.append(FunctionDefinition(name: function, file: reportPath(file), line: frame.functionLine))
            } else {
                definitions.append(nil)
            }
        }
        self.buildDirectory = buildDirectory
        frames = zip(pcs, stacks).map { pc, stack in
            stack.map { SourceFrame(function: $0.function ?? fallbackName(pc), file: reportPath($0.file), line: $0.line) }
        }
        self.coverable = coverable
        self.definitions = definitions
        index = Dictionary(uniqueKeysWithValues: coverable.enumerated().map { ($1.pc, $0) })
    }

    public func sourceRange(of pc: UInt64) -> SourceRange? {
        index[pc].map { coverable[$0].source }
    }

    /// A PC kcov records after an indirect call into a function that tail-called the callback:
    /// real, but not enumerable, so outside the denominator.
    public func isUncountedReturn(_ pc: UInt64) -> Bool {
        image?.followsIndirectCall(pc) ?? false
    }
}

/// The longest directory prefix (ending in `/`) of every path; empty when they share none.
func commonDirectory(_ paths: some Sequence<String>) -> String {
    var common: Substring?
    for path in paths where path.hasPrefix("/") {
        guard let current = common else {
            common = path[...path.lastIndex(of: "/")!]
            continue
        }
        if path.hasPrefix(current) { continue }
        var shared = current
        while !shared.isEmpty, !path.hasPrefix(shared) {
            shared = shared.dropLast()
            if let slash = shared.lastIndex(of: "/") { shared = shared[...slash] } else { shared = "" }
        }
        common = shared
    }
    return common.map(String.init) ?? ""
}

/// Where a report's (build-relative) source paths are read from: `--source-dir`, else the build directory.
public struct SourceLocator: Sendable {
    public var sourceDirectory: String?
    public var buildDirectory: String

    public init(sourceDirectory: String?, buildDirectory: String) {
        self.sourceDirectory = sourceDirectory
        self.buildDirectory = buildDirectory
    }

    /// The path to read `reportPath` from.
    public func path(of reportPath: String) -> String {
        if reportPath.hasPrefix("/") { return reportPath }
        guard let sourceDirectory else { return buildDirectory + reportPath }
        return sourceDirectory.hasSuffix("/") ? sourceDirectory + reportPath : sourceDirectory + "/" + reportPath
    }

    /// The file's text, if it can be read.
    public func text(of reportPath: String) -> String? {
        try? String(contentsOfFile: path(of: reportPath), encoding: .utf8)
    }
}
