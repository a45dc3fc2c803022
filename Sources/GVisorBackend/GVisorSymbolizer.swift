public import CoverageAPI

/// Output of `runsc symbolize` (PCs on stdin) or `runsc symbolize -all` that could not be read.
public struct GVisorSymbolizeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The 1-based line of the input where the problem is.
    public var line: Int
    /// What was wrong and what was expected.
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "runsc symbolize output, line \(line): \(message)" }
}

/// Synthetic PCs mapped to Go source, from `runsc symbolize`.
///
/// runsc prints two lines per block:
/// ```
/// 0xffffffffffaffdff
/// pkg/sentry/kernel/task_run.go:147.2,151.16
/// ```
/// `-all` prints every block of the binary that way, which is what a report needs for its
/// denominator. Only the same coverage-built runsc that produced the PCs can symbolize them.
public struct GVisorSymbolTable: CoverageSymbolizer, Sendable, Hashable {
    /// Each PC's block, in input order: with `-all` output, every block of the binary.
    public private(set) var coverable: [(pc: UInt64, source: SourceRange)]
    private var index: [UInt64: Int]

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.coverable.elementsEqual(rhs.coverable) { $0.pc == $1.pc && $0.source == $1.source }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in coverable {
            hasher.combine(entry.pc)
            hasher.combine(entry.source)
        }
    }

    public init() {
        coverable = []
        index = [:]
    }

    /// Parses runsc's output. Blank lines between pairs are allowed; anything else out of place
    /// is an error that names its line: a PC line that is not hexadecimal, a location line that
    /// is not `file:l0.c0,l1.c1`, a PC with no location (truncated output), or one PC given two
    /// different locations. runsc's own refusal ("can only be used when coverage is available")
    /// is reported as such.
    public init(parsing text: String) throws(GVisorSymbolizeError) {
        self.init()
        var pending: (pc: UInt64, line: Int)?
        // Swift reads "\r\n" as one Character, so split on any newline, not on "\n".
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        // Blank lines at the end are not content: a PC waiting there is truncated output.
        let lastContent = lines.lastIndex { !$0.allSatisfy(\.isWhitespace) } ?? -1
        for (offset, raw) in lines.enumerated() where offset <= lastContent {
            let number = offset + 1
            let line = raw
            if line.allSatisfy(\.isWhitespace) {
                if let pending {
                    throw GVisorSymbolizeError(line: number, "a blank line where the location of PC 0x\(String(pending.pc, radix: 16)) (line \(pending.line)) should be")
                }
                continue
            }
            if line.contains("coverage is available") || line.contains("can only be used") {
                throw GVisorSymbolizeError(
                    line: number, "runsc refused: \"\(line)\" — run `runsc symbolize` of the coverage build that produced the PCs")
            }
            if let current = pending {
                try add(pc: current.pc, location: Self.parseLocation(line, number: number), line: number)
                pending = nil
            } else {
                pending = (try Self.parsePC(line, number: number), number)
            }
        }
        if let pending {
            throw GVisorSymbolizeError(
                line: pending.line, "the output ends after PC 0x\(String(pending.pc, radix: 16)) without its location: truncated")
        }
    }

    private mutating func add(pc: UInt64, location: SourceRange, line: Int) throws(GVisorSymbolizeError) {
        if let existing = index[pc] {
            guard coverable[existing].source == location else {
                throw GVisorSymbolizeError(
                    line: line, "PC 0x\(String(pc, radix: 16)) was already given as \(coverable[existing].source), now \(location)")
            }
            return
        }
        index[pc] = coverable.count
        coverable.append((pc, location))
    }

    /// `0x` followed by 1–16 hexadecimal digits (runsc also reads PCs without `0x`).
    static func parsePC(_ line: Substring, number: Int) throws(GVisorSymbolizeError) -> UInt64 {
        let trimmed = line.trimmingWhitespace()
        let digits = trimmed.hasPrefix("0x") || trimmed.hasPrefix("0X") ? trimmed.dropFirst(2) : trimmed
        guard !digits.isEmpty, digits.count <= 16, digits.allSatisfy(\.isHexDigit), let pc = UInt64(digits, radix: 16) else {
            throw GVisorSymbolizeError(line: number, "expected a PC such as 0xffffffffffaffdff, found \"\(trimmed)\"")
        }
        return pc
    }

    /// `file:l0.c0,l1.c1`; the file may itself contain colons, so the range is after the last one.
    static func parseLocation(_ line: Substring, number: Int) throws(GVisorSymbolizeError) -> SourceRange {
        let trimmed = line.trimmingWhitespace()
        let expected = "expected a location such as pkg/sentry/kernel/task_run.go:147.2,151.16"
        guard let colon = trimmed.lastIndex(of: ":") else {
            throw GVisorSymbolizeError(line: number, "\(expected), found \"\(trimmed)\" (no ':')")
        }
        let file = trimmed[..<colon]
        guard !file.isEmpty else { throw GVisorSymbolizeError(line: number, "\(expected), found \"\(trimmed)\" (no file name)") }
        let ends = trimmed[trimmed.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false)
        let positions = ends.map { $0.split(separator: ".", omittingEmptySubsequences: false) }
        guard ends.count == 2, positions.allSatisfy({ $0.count == 2 }) else {
            throw GVisorSymbolizeError(line: number, "\(expected), found \"\(trimmed)\" (the range is not l0.c0,l1.c1)")
        }
        var numbers: [Int] = []
        for part in positions.joined() {
            guard !part.isEmpty, part.count <= 9, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber), let value = Int(part) else {
                throw GVisorSymbolizeError(line: number, "\(expected), found \"\(trimmed)\" (\"\(part)\" is not a line or column number)")
            }
            numbers.append(value)
        }
        let location = SourceRange(
            file: String(file), startLine: numbers[0], startColumn: numbers[1], endLine: numbers[2], endColumn: numbers[3])
        guard (location.startLine, location.startColumn) <= (location.endLine, location.endColumn) else {
            throw GVisorSymbolizeError(line: number, "the block \(location) ends before it starts")
        }
        return location
    }

    /// The block of `pc`, if runsc listed it.
    public func sourceRange(of pc: UInt64) -> SourceRange? {
        index[pc].map { coverable[$0].source }
    }

    /// Number of blocks.
    public var count: Int { coverable.count }

    /// The PCs of `pcs` runsc listed, with their blocks, and the ones it did not (symbolized
    /// with a different runsc, or not a gVisor PC at all).
    public func symbolize(_ pcs: some Sequence<UInt64>) -> (found: [(pc: UInt64, source: SourceRange)], unknown: [UInt64]) {
        var found: [(pc: UInt64, source: SourceRange)] = []
        var unknown: [UInt64] = []
        for pc in pcs {
            if let source = sourceRange(of: pc) { found.append((pc, source)) } else { unknown.append(pc) }
        }
        return (found, unknown)
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var text = self
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return text
    }
}
