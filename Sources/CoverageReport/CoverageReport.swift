public import CoverageAPI

/// Merged coverage files measured against every coverable PC: per file, per function, per line.
///
/// The unit counted is the coverable PC (one kcov callback site, about one basic block); a line
/// or a function is covered when any of its PCs is. Functions and lines are the innermost source
/// frame's, so code inlined from a header counts in that header's function.
public struct CoverageReport: Sendable {
    /// Covered and coverable counts, and how many times covered PCs were recorded.
    public struct Counts: Sendable, Hashable, Encodable {
        public var covered = 0
        public var coverable = 0
        public var hits = 0

        public init(covered: Int = 0, coverable: Int = 0, hits: Int = 0) {
            self.covered = covered
            self.coverable = coverable
            self.hits = hits
        }

        /// Covered as a percentage of coverable (0 when nothing is coverable).
        public var percent: Double { coverable == 0 ? 0 : Double(covered) * 100 / Double(coverable) }

        mutating func add(hits pcHits: Int) {
            coverable += 1
            if pcHits > 0 { covered += 1 }
            hits += pcHits
        }
    }

    /// One source line with coverable PCs.
    public struct Line: Sendable, Hashable, Encodable {
        public var number: Int
        public var counts: Counts
    }

    /// One function's coverable PCs in one file; `line` is the first line with a coverable PC.
    public struct Function: Sendable, Hashable, Encodable {
        public var name: String
        public var line: Int
        public var counts: Counts
    }

    /// One source file: its functions and lines in source order.
    public struct File: Sendable, Hashable, Encodable {
        /// The path as the symbolizer gave it.
        public var path: String
        public var counts: Counts
        public var functions: [Function]
        public var lines: [Line]
    }

    /// What one input file contributed.
    public struct Input: Sendable, Hashable, Encodable {
        public var path: String
        public var entries: Int
        public var uniquePCs: Int
        public var truncated: Bool
    }

    public var mode: CoverageMode
    /// What one coverable unit is: a kcov callback site, or a probed function (kprobe).
    public var granularity: BackendCapabilities.Granularity
    public var inputs: [Input]
    /// Files sorted by path.
    public var files: [File]
    /// Totals over every coverable PC.
    public var totals: Counts
    /// Recorded PCs that are not coverable PCs of this image (another build), sorted; left out of every count.
    public var unknownPCs: [UInt64]
    /// Recorded PCs the image explains but the denominator cannot hold (returns after indirect
    /// calls into tail-calling functions); left out of every count.
    public var uncountedPCs: Int
    /// What a coverable PC is, in words.
    public var unitDescription: String {
        if granularity == .function { return "the probed function (kprobe: entered or not)" }
        return mode == .pc ? "the coverable PC (one kcov callback site, about one basic block)" : "the comparison site (one call of a comparison or switch callback)"
    }

    /// Things the reader must know: truncated inputs, PCs left out.
    public var warnings: [String]

    /// Merges `inputs` and counts them against `symbolizer`'s coverable PCs.
    ///
    /// Fails when the inputs mix PC and CMP mode, or when PCs were recorded but none is coverable
    /// (the coverage is from another build); unknown PCs among known ones are a counted warning.
    /// `uncounted` tells which PCs outside the coverable set are still this image's (see ``uncountedPCs``).
    public init(
        inputs: [CoverageInput], symbolizer: some CoverageSymbolizer, imageName: String, uncounted: (UInt64) -> Bool = { _ in false }
    ) throws(CoverageInputError) {
        guard let mode = inputs.first?.mode else {
            throw CoverageInputError(path: imageName, "no coverage files were given")
        }
        if let other = inputs.first(where: { $0.mode != mode }) {
            throw CoverageInputError(
                path: other.path, "is \(other.mode.rawValue) mode but \(inputs[0].path) is \(mode.rawValue) mode; report one mode at a time")
        }
        self.mode = mode
        granularity = inputs[0].probedFunctions == nil ? .basicBlock : .function
        var hits: [UInt64: Int] = [:]
        var warnings: [String] = []
        if let other = inputs.first(where: { ($0.probedFunctions == nil) != (inputs[0].probedFunctions == nil) }) {
            throw CoverageInputError(path: other.path, "mixes function-level (kprobe) and kcov coverage with \(inputs[0].path); report them apart")
        }
        self.inputs = inputs.map { input in
            var unique = Set<UInt64>()
            for pc in input.pcs {
                hits[pc, default: 0] += input.hits?[pc] ?? 1
                unique.insert(pc)
            }
            if input.truncated {
                warnings.append("\(input.path): the trace was truncated (its buffer filled up), so its coverage is a lower bound")
            }
            if input.pcs.isEmpty { warnings.append("\(input.path): holds no PCs") }
            return Input(path: input.path, entries: input.pcs.count, uniquePCs: unique.count, truncated: input.truncated)
        }

        var known = Set<UInt64>()
        var byFile: [String: (counts: Counts, functions: [String: Function], lines: [Int: Counts])] = [:]
        var totals = Counts()
        for (pc, source) in symbolizer.coverable {
            known.insert(pc)
            let pcHits = hits[pc] ?? 0
            totals.add(hits: pcHits)
            var file = byFile[source.file] ?? (Counts(), [:], [:])
            file.counts.add(hits: pcHits)
            let name = source.function ?? "??"
            var function = file.functions[name] ?? Function(name: name, line: 0, counts: Counts())
            if source.startLine > 0 { function.line = function.line == 0 ? source.startLine : min(function.line, source.startLine) }
            function.counts.add(hits: pcHits)
            file.functions[name] = function
            // Line 0 is code DWARF gives no line (compiler-made): counted in the file, not as a line.
            for line in source.lines where line > 0 { file.lines[line, default: Counts()].add(hits: pcHits) }
            byFile[source.file] = file
        }
        self.totals = totals
        files = byFile.map { path, file in
            File(
                path: path, counts: file.counts,
                functions: file.functions.values.sorted { ($0.line, $0.name) < ($1.line, $1.name) },
                lines: file.lines.map { Line(number: $0.key, counts: $0.value) }.sorted { $0.number < $1.number })
        }.sorted { $0.path < $1.path }

        let outside = hits.keys.filter { !known.contains($0) }
        unknownPCs = outside.filter { !uncounted($0) }.sorted()
        uncountedPCs = outside.count - unknownPCs.count
        if !unknownPCs.isEmpty {
            if unknownPCs.count + uncountedPCs == hits.count {
                throw CoverageInputError(
                    path: inputs[0].path,
                    "none of its \(hits.count) unique PCs is a coverable PC of \(imageName): the coverage comes from another kernel build (or KASLR was not undone); pass the vmlinux of the kernel that was traced")
            }
            warnings.append(
                "\(unknownPCs.count) of \(hits.count) unique PCs are not coverable PCs of \(imageName) and were left out (another build, or not a \(mode.rawValue)-mode callback site); first: \(hex(unknownPCs[0]))")
        }
        self.warnings = warnings
    }
}

/// `0x%016x`.
func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}
