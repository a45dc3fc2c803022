/// The rules an lcov 2.x tracefile must keep, as lcov 2.x documents them: geninfo(1) "TRACEFILE
/// FORMAT" (the records, `FN:<start>[,<end>],<name>` or `FNL`/`FNA`, `FNF`/`FNH` counting
/// function groups as of 2.2, positive line numbers, `TN` names of letters, digits and `_` as
/// lcov(1) `--test-name` says) and lcovrc(5) `check_data_consistency` (a function with a non-zero
/// count has a hit line in its span, and the reverse), and one rule lcov 2.x's genhtml enforces
/// beyond them (a `DA` on each function's first line). lcov 2.x is not in Debian 12, so the
/// report's tracefiles are checked here; each rule has a defective tracefile that breaks it
/// (LCOVCheckerTests).
struct LCOVTracefileChecker {
    enum Rule: String, CaseIterable, Sendable {
        /// Records are `[TN:]SF:` … `end_of_record`, of the documented kinds only.
        case structure
        /// `TN:` holds letters, digits and `_` only.
        case testName
        /// `SF:` is a non-empty path without empty, `.` or `..` parts.
        case cleanPath
        /// One record per source file and test name ("duplicate merge record" otherwise).
        case oneRecordPerFile
        /// Line numbers (`DA`, function start and end) are positive; an end is not before its start.
        case lineNumber
        /// Counts are non-negative integers.
        case count
        /// A line has one `DA` in a record.
        case lineOnce
        /// `FNDA` (or `FNA`) names a function an `FN` (or `FNL`) of the record declared.
        case functionDeclared
        /// A function name starts on one line in a record ("duplicate function").
        case functionOnce
        /// Functions starting on one line are one group and end on one line ("mismatched end line").
        case sharedStart
        /// `FNF`/`FNH` count function groups found/hit; `LF`/`LH` the `DA` lines found/hit.
        case summary
        /// A function group with an end line is hit exactly when one of the `DA` lines in its span is.
        case consistency
        /// A function's first line has a `DA`: lcov 2.x's genhtml takes it for an executable line
        /// (gcov's always is) and stops with "unexpected category UNK for line" otherwise.
        case functionStartLine
    }

    struct Violation: Sendable, CustomStringConvertible {
        var rule: Rule
        /// 1-based line of the tracefile.
        var line: Int
        var message: String
        var description: String { "line \(line): [\(rule.rawValue)] \(message)" }
    }

    private struct Group {
        var start: Int
        var end: Int?
        var hit = false
        var line: Int
    }

    private struct Record {
        var path: String
        var line: Int
        var groups: [Int: Group] = [:]
        var startOf: [String: Int] = [:]
        var counts: [String: Int] = [:]
        var indexed: [Int: Int] = [:]
        var lines: [Int: Int] = [:]
        var summary: [String: (value: Int, line: Int)] = [:]
    }

    static func check(_ text: String) -> [Violation] {
        var violations: [Violation] = []
        func flag(_ rule: Rule, _ line: Int, _ message: String) { violations.append(Violation(rule: rule, line: line, message: message)) }
        var testName = ""
        var seen: [String: Int] = [:]
        var record: Record?
        var number = 0
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for raw in lines {
            number += 1
            let line = String(raw)
            if line.isEmpty && number == lines.count { break }
            if line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") ?? (line == "end_of_record" ? line.endIndex : nil) else {
                flag(.structure, number, "not a record line: \(line)")
                continue
            }
            let kind = String(line[..<colon])
            let value = colon == line.endIndex ? "" : String(line[line.index(after: colon)...])
            let fields = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard var current = record else {
                switch kind {
                case "TN":
                    testName = value
                    if !value.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }) {
                        flag(.testName, number, "test name '\(value)' has a character other than letters, digits and _")
                    }
                case "SF":
                    if value.isEmpty || value.split(separator: "/", omittingEmptySubsequences: false).dropFirst().contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
                        || value.hasPrefix("./") || value.hasPrefix("../") {
                        flag(.cleanPath, number, "source path '\(value)' is empty or not normalized")
                    }
                    let key = testName + "\u{0}" + value
                    if let first = seen[key] { flag(.oneRecordPerFile, number, "a second record for \(value) (first at line \(first))") }
                    seen[key] = number
                    record = Record(path: value, line: number)
                default:
                    flag(.structure, number, "\(kind) outside a record (after end_of_record, before SF)")
                }
                continue
            }
            switch kind {
            case "TN", "SF":
                flag(.structure, number, "\(kind) inside the record of \(current.path): end_of_record missing")
            case "VER", "BRDA", "BRF", "BRH", "MCDC", "MCF", "MCH":
                break
            case "DA":
                guard fields.count >= 2, let at = Int(fields[0]) else {
                    flag(.structure, number, "malformed DA: \(line)")
                    break
                }
                guard let count = nonNegative(fields[1]) else {
                    flag(.count, number, "DA count '\(fields[1])' is not a non-negative integer")
                    current.lines[at] = 0
                    break
                }
                if at <= 0 { flag(.lineNumber, number, "DA line \(at) is not positive") }
                if current.lines[at] != nil { flag(.lineOnce, number, "line \(at) has a second DA") }
                current.lines[at] = count
            case "FN":
                // FN:<start>,[<end>,]<name>: the name may hold commas, so an end is a second number.
                guard fields.count >= 2, let start = Int(fields[0]) else {
                    flag(.structure, number, "malformed FN: \(line)")
                    break
                }
                var end: Int?
                var name = fields.dropFirst().joined(separator: ",")
                if fields.count >= 3, let second = Int(fields[1]) {
                    end = second
                    name = fields.dropFirst(2).joined(separator: ",")
                }
                declare(&current, name: name, start: start, end: end, at: number, flag)
            case "FNDA":
                guard fields.count >= 2 else {
                    flag(.structure, number, "malformed FNDA: \(line)")
                    break
                }
                let name = fields.dropFirst().joined(separator: ",")
                guard let count = nonNegative(fields[0]) else {
                    flag(.count, number, "FNDA count '\(fields[0])' is not a non-negative integer")
                    break
                }
                guard let start = current.startOf[name] else {
                    flag(.functionDeclared, number, "FNDA for \(name), which no FN of this record declares")
                    break
                }
                current.counts[name, default: 0] += count
                if count > 0 { current.groups[start]?.hit = true }
            case "FNL":
                guard fields.count >= 2, let index = Int(fields[0]), let start = Int(fields[1]) else {
                    flag(.structure, number, "malformed FNL: \(line)")
                    break
                }
                let end = fields.count >= 3 ? Int(fields[2]) : nil
                if fields.count >= 3, end == nil { flag(.structure, number, "malformed FNL end: \(line)") }
                if start <= 0 || (end ?? 1) <= 0 { flag(.lineNumber, number, "function lines \(start)…\(end ?? start) are not positive") }
                if let end, end < start { flag(.lineNumber, number, "function ends at \(end), before its start \(start)") }
                if current.groups[start] != nil { flag(.sharedStart, number, "a second FNL at line \(start)") }
                current.groups[start] = Group(start: start, end: end, line: number)
                current.indexed[index] = start
            case "FNA":
                guard fields.count >= 3, let index = Int(fields[0]) else {
                    flag(.structure, number, "malformed FNA: \(line)")
                    break
                }
                let name = fields.dropFirst(2).joined(separator: ",")
                guard let start = current.indexed[index] else {
                    flag(.functionDeclared, number, "FNA of index \(index), which no FNL declares")
                    break
                }
                guard let count = nonNegative(fields[1]) else {
                    flag(.count, number, "FNA count '\(fields[1])' is not a non-negative integer")
                    break
                }
                if let other = current.startOf[name], other != start { flag(.functionOnce, number, "\(name) starts on line \(start) and on line \(other)") }
                current.startOf[name] = start
                current.counts[name, default: 0] += count
                if count > 0 { current.groups[start]?.hit = true }
            case "FNF", "FNH", "LF", "LH":
                guard let count = nonNegative(value) else {
                    flag(.count, number, "\(kind) '\(value)' is not a non-negative integer")
                    break
                }
                current.summary[kind] = (count, number)
            case "end_of_record":
                finish(current, at: number, flag)
                record = nil
                continue
            default:
                flag(.structure, number, "unknown record line kind \(kind)")
            }
            record = current
        }
        if let record { flag(.structure, number, "the record of \(record.path) has no end_of_record") }
        return violations
    }

    private static func nonNegative(_ text: String) -> Int? {
        guard let value = Int(text), value >= 0 else { return nil }
        return value
    }

    private static func declare(_ record: inout Record, name: String, start: Int, end: Int?, at number: Int, _ flag: (Rule, Int, String) -> Void) {
        if start <= 0 { flag(.lineNumber, number, "function \(name) starts on line \(start)") }
        if let end, end <= 0 || end < start { flag(.lineNumber, number, "function \(name) ends on line \(end), start \(start)") }
        if let other = record.startOf[name], other != start { flag(.functionOnce, number, "\(name) starts on line \(start) and on line \(other)") }
        if let group = record.groups[start] {
            if group.end != end {
                flag(.sharedStart, number, "\(name) starts on line \(start) like the function at line \(group.line) but ends on \(end.map(String.init) ?? "no line"), not \(group.end.map(String.init) ?? "no line")")
            }
        } else {
            record.groups[start] = Group(start: start, end: end, line: number)
        }
        record.startOf[name] = start
    }

    private static func finish(_ record: Record, at number: Int, _ flag: (Rule, Int, String) -> Void) {
        let expected = [
            "FNF": record.groups.count, "FNH": record.groups.values.count(where: \.hit),
            "LF": record.lines.count, "LH": record.lines.values.count { $0 > 0 },
        ]
        for (kind, value) in expected.sorted(by: { $0.key < $1.key }) {
            guard let given = record.summary[kind] else {
                if kind.hasPrefix("L") || !record.groups.isEmpty { flag(.summary, number, "\(record.path): no \(kind) (expected \(value))") }
                continue
            }
            if given.value != value { flag(.summary, given.line, "\(record.path): \(kind):\(given.value), but the records give \(value)") }
        }
        for group in record.groups.values.sorted(by: { $0.start < $1.start }) where group.start > 0 && record.lines[group.start] == nil {
            flag(.functionStartLine, group.line, "\(record.path): the function starting on line \(group.start) has no DA there")
        }
        let hitLines = record.lines.filter { $0.value > 0 }.keys.sorted()
        let allLines = record.lines.keys.sorted()
        for group in record.groups.values.sorted(by: { $0.start < $1.start }) {
            guard let end = group.end, end >= group.start else { continue }
            let inside = allLines.filter { (group.start...end).contains($0) }
            let hit = hitLines.first { (group.start...end).contains($0) }
            if group.hit, hit == nil {
                flag(.consistency, group.line, "\(record.path):\(group.start): the function is hit but no line in \(group.start)…\(end) is (\(inside.count) lines)")
            }
            if !group.hit, let hit {
                flag(.consistency, group.line, "\(record.path):\(group.start): the function is not hit but line \(hit) is")
            }
        }
    }
}
