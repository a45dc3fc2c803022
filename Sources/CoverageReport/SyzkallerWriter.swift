/// One source frame of a coverable PC: the function, the file (a report path) and the line.
public struct SourceFrame: Sendable, Hashable {
    public var function: String?
    public var file: String
    public var line: Int

    public init(function: String?, file: String, line: Int) {
        self.function = function
        self.file = file
        self.line = line
    }
}

extension CoverageReport {
    /// One coverable PC for syzkaller's exports: the PC kcov records, the address of its call of
    /// the callback (what syzkaller symbolizes and writes as `pc`), and its frames, innermost first.
    public struct SyzkallerPoint: Sendable {
        public var pc: UInt64
        public var callSite: UInt64
        public var frames: [SourceFrame]

        public init(pc: UInt64, callSite: UInt64, frames: [SourceFrame]) {
            self.pc = pc
            self.callSite = callSite
            self.frames = frames
        }
    }

    /// syzkaller's coverage JSONL (its `/cover?jsonl=1`, `pkg/cover` `CoverageInfo`): for every
    /// coverable PC, one object a line per source frame, innermost first: `file_path`,
    /// `func_name`, `sl` and `el` (the line), `sc` 0 and `ec` -1 (syzkaller's "whole line"),
    /// `hit_count` (how many inputs recorded the PC, syzkaller's program count), `inline` (true
    /// for every frame but the outermost) and `pc` (the call site, as a JSON integer). See
    /// Docs/reports.md.
    public func syzkallerJSONL(points: [SyzkallerPoint]) -> String {
        var out = ""
        out.reserveCapacity(points.count * 160)
        for point in points {
            let count = inputCounts[point.pc] ?? 0
            for (index, frame) in point.frames.enumerated() {
                out += "{\"file_path\":\(jsonString(frame.file)),\"func_name\":\(jsonString(frame.function ?? "")),"
                out += "\"sl\":\(frame.line),\"sc\":0,\"el\":\(frame.line),\"ec\":-1,\"hit_count\":\(count),"
                out += "\"inline\":\(index < point.frames.count - 1),\"pc\":\(point.callSite)}\n"
            }
        }
        return out
    }

    /// syzkaller's function CSV (`DoFuncCover`): `Module,Filename,Function,Covered PCs,Total PCs`,
    /// one row per function, by file then function; the module of vmlinux is empty.
    public func syzkallerFunctionCSV() -> String {
        var out = "Module,Filename,Function,Covered PCs,Total PCs\n"
        for file in files {
            for function in file.functions.sorted(by: { ($0.name, $0.line) < ($1.name, $1.line) }) {
                out += ",\(csvField(file.path)),\(csvField(function.name)),\(function.counts.covered),\(function.counts.coverable)\n"
            }
        }
        return out
    }

    /// syzkaller's file CSV (`DoFileCover`): `Module,Filename,CoveredLines,TotalLines,CoveredPCs,
    /// TotalPCs,TotalFunctions,CoveredPCsInFunctions,TotalPCsInFunctions,TotalPCsInCoveredFunctions`,
    /// one row per file by name. TotalLines is the source file's line count, as syzkaller's; for a
    /// file whose source `lineCount` cannot give, the count of its lines with coverable PCs, and
    /// the file is named in the returned warnings.
    public func syzkallerFileCSV(lineCount: (String) -> Int?) -> (csv: String, warnings: [String]) {
        var out = "Module,Filename,CoveredLines,TotalLines,CoveredPCs,TotalPCs,TotalFunctions,CoveredPCsInFunctions,TotalPCsInFunctions,TotalPCsInCoveredFunctions\n"
        var missing: [String] = []
        for file in files {
            let total: Int
            if let count = lineCount(file.path) {
                total = count
            } else {
                total = file.lines.count
                missing.append(file.path)
            }
            let coveredLines = file.lines.count { $0.counts.covered > 0 }
            let inFunctions = file.functions.reduce(into: (covered: 0, total: 0, ofCovered: 0)) { sum, function in
                sum.covered += function.counts.covered
                sum.total += function.counts.coverable
                if function.counts.covered > 0 { sum.ofCovered += function.counts.coverable }
            }
            out += ",\(csvField(file.path)),\(coveredLines),\(total),\(file.counts.covered),\(file.counts.coverable),\(file.functions.count),"
            out += "\(inFunctions.covered),\(inFunctions.total),\(inFunctions.ofCovered)\n"
        }
        var warnings: [String] = []
        if let first = missing.first {
            warnings.append("the source of \(missing.count) files was not found (first: \(first)): their TotalLines counts only lines with coverable PCs; pass --source-dir")
        }
        return (out, warnings)
    }
}

/// A JSON string literal: `"` and `\\` escaped, control characters as `\\u00XX`.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20:
            let digits = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// A CSV field as Go's encoding/csv writes it (RFC 4180): quoted, with quotes doubled, when it
/// holds a comma, a quote, a line break, or starts with a space.
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) || text.hasPrefix(" ") else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
