public import CoverageAPI

/// Where a function is defined: its name, the file (spelled like the report's paths) and the
/// 1-based line of its definition. For a kernel, DWARF's `DW_AT_decl_file` and `DW_AT_decl_line`
/// of the subprogram, through `DW_AT_abstract_origin` and `DW_AT_specification`.
public struct FunctionDefinition: Sendable, Hashable {
    public var name: String
    public var file: String
    public var line: Int

    public init(name: String, file: String, line: Int) {
        self.name = name
        self.file = file
        self.line = line
    }
}

/// A symbolizer that also knows where the function of each coverable PC is defined, so a report
/// lists each function once, in its own file (``KernelCoverageMap`` reads it from DWARF).
/// Without it a report places a function in the file of its lowest coverable PC, at its first line there.
public protocol FunctionDefining: CoverageSymbolizer {
    /// For `coverable[i]`, the definition of the function its code is in (the innermost frame's:
    /// an inlined function's own), or `nil` when unknown.
    var definitions: [FunctionDefinition?] { get }
}

/// The report's functions per file, each PC counted for the function whose span holds its line
/// (see ``CoverageReport``).
func functionsByFile(
    _ coverable: [(pc: UInt64, source: SourceRange)], definitions: [FunctionDefinition?], hits: (UInt64) -> Int
) -> [String: [CoverageReport.Function]] {
    struct Key: Hashable {
        var file: String
        var name: String
    }
    // Each PC's function, and each function's definition line (the smallest, should one name be
    // defined twice in a file: lcov allows one start line per name).
    var owner = [Key?](repeating: nil, count: coverable.count)
    var start: [Key: Int] = [:]
    var defined = Set<Key>()
    var undefined: [(index: Int, name: String)] = []
    for (index, entry) in coverable.enumerated() {
        if index < definitions.count, let definition = definitions[index], definition.line > 0 {
            let key = Key(file: normalizedPath(definition.file), name: definition.name)
            owner[index] = key
            start[key] = min(start[key] ?? .max, definition.line)
            defined.insert(key)
        } else if let name = entry.source.function {
            undefined.append((index, name))
        }
    }
    // Without a definition: the function of that name defined in the PC's file, else the file of
    // the function's lowest coverable PC with a line, from its first line there.
    var fallbackFile: [String: String] = [:]
    for (index, name) in undefined.sorted(by: { coverable[$0.index].pc < coverable[$1.index].pc }) {
        let source = coverable[index].source
        if defined.contains(Key(file: source.file, name: name)) {
            owner[index] = Key(file: source.file, name: name)
            continue
        }
        guard source.startLine > 0 else { continue }
        let file = fallbackFile[name] ?? source.file
        fallbackFile[name] = file
        let key = Key(file: file, name: name)
        owner[index] = key
        if file == source.file { start[key] = min(start[key] ?? .max, source.startLine) }
    }
    // A function ends at the last line of its own code in its file.
    var end = start
    for (index, entry) in coverable.enumerated() {
        guard let key = owner[index], let first = start[key], entry.source.file == key.file, entry.source.startLine >= first else { continue }
        end[key] = max(end[key] ?? first, entry.source.lines.upperBound)
    }
    // Per file: functions defined on one line share one span, ending where the last of them
    // does; a span stops before the next one starts.
    struct Span {
        var start: Int
        var end: Int
        /// Sorted; the first takes the span's PCs that belong to none of them.
        var names: [String]
    }
    var spansByFile: [String: [Span]] = [:]
    for (key, first) in start {
        var spans = spansByFile[key.file] ?? []
        if let index = spans.firstIndex(where: { $0.start == first }) {
            spans[index].names.append(key.name)
            spans[index].end = max(spans[index].end, end[key] ?? first)
        } else {
            spans.append(Span(start: first, end: end[key] ?? first, names: [key.name]))
        }
        spansByFile[key.file] = spans
    }
    for (file, unsorted) in spansByFile {
        var spans = unsorted.sorted { $0.start < $1.start }
        for index in spans.indices {
            spans[index].names.sort()
            if index + 1 < spans.count { spans[index].end = min(spans[index].end, spans[index + 1].start - 1) }
        }
        spansByFile[file] = spans
    }

    var counts: [Key: CoverageReport.Counts] = [:]
    for (index, entry) in coverable.enumerated() {
        let lines = entry.source.lines
        guard lines.lowerBound > 0, let spans = spansByFile[entry.source.file] else { continue }
        let pcHits = hits(entry.pc)
        // The spans holding one of its lines: the last starting at or before its last line, and
        // earlier ones while they reach its first.
        var low = 0
        var high = spans.count
        while low < high {
            let middle = (low + high) / 2
            if spans[middle].start <= lines.upperBound { low = middle + 1 } else { high = middle }
        }
        var candidate = low - 1
        while candidate >= 0, spans[candidate].end >= lines.lowerBound {
            let span = spans[candidate]
            let own = owner[index].flatMap { $0.file == entry.source.file && span.names.contains($0.name) ? $0.name : nil }
            counts[Key(file: entry.source.file, name: own ?? span.names[0]), default: CoverageReport.Counts()].add(hits: pcHits)
            candidate -= 1
        }
    }

    var result: [String: [CoverageReport.Function]] = [:]
    for (file, spans) in spansByFile {
        var functions: [CoverageReport.Function] = []
        for span in spans {
            for name in span.names {
                // A function none of whose PCs is on a line of its span is not coverable there.
                guard let counted = counts[Key(file: file, name: name)] else { continue }
                functions.append(CoverageReport.Function(name: name, line: span.start, endLine: span.end, counts: counted))
            }
        }
        if !functions.isEmpty { result[file] = functions }
    }
    return result
}

/// The path with `//`, `.` and `dir/..` folded away, lexically (DWARF keeps each `#include`'s
/// spelling, `asm//msr-trace.h`, `amd/../perf_event.h`), so one source file is one record.
/// A leading `..` of a relative path stays; `/..` is `/`.
public func normalizedPath(_ path: String) -> String {
    guard !isNormalized(path) else { return path }
    let absolute = path.hasPrefix("/")
    var parts: [Substring] = []
    for part in path.split(separator: "/") where part != "." {
        if part == ".." {
            if let last = parts.last, last != ".." {
                parts.removeLast()
                continue
            }
            if absolute { continue }
        }
        parts.append(part)
    }
    let joined = parts.joined(separator: "/")
    return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
}

/// Whether `path` has no empty (`//`), `.` or `..` part: one pass over its bytes, as a kernel's
/// 190,000 coverable PCs each ask it.
private func isNormalized(_ path: String) -> Bool {
    let slash = UInt8(ascii: "/")
    let dot = UInt8(ascii: ".")
    var length = 0
    var dots = 0
    var first = true
    for byte in path.utf8 {
        guard byte == slash else {
            length += 1
            if byte == dot { dots += 1 }
            continue
        }
        if length == 0 && !first { return false }
        if length > 0 && length == dots && dots <= 2 { return false }
        length = 0
        dots = 0
        first = false
    }
    return !(length > 0 && length == dots && dots <= 2)
}
