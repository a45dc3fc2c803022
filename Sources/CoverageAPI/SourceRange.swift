/// Where a covered PC's code is in the source: what every symbolizer produces and every report
/// reads. A kernel PC maps to one line (start and end equal, columns 0 when DWARF has none); a
/// gVisor Go coverage block maps to a line.column range.
public struct SourceRange: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The source file as the symbolizer names it.
    public var file: String
    /// The enclosing function, when the symbolizer knows it.
    public var function: String?
    public var startLine: Int
    public var startColumn: Int
    public var endLine: Int
    public var endColumn: Int

    public init(file: String, function: String? = nil, startLine: Int, startColumn: Int, endLine: Int, endColumn: Int) {
        self.file = file
        self.function = function
        self.startLine = startLine
        self.startColumn = startColumn
        self.endLine = endLine
        self.endColumn = endColumn
    }

    /// `file:l0.c0,l1.c1` (runsc's spelling of a range).
    public var description: String { "\(file):\(startLine).\(startColumn),\(endLine).\(endColumn)" }

    /// The lines the range spans.
    public var lines: ClosedRange<Int> { startLine...max(startLine, endLine) }
}

/// Maps PCs to source, and knows every PC that could have been covered (a report's denominator).
/// A vmlinux's coverage map (`KernelCoverageMap`, DWARF) and gVisor's `runsc symbolize` table both
/// conform; `CoverageReport` counts traces against either.
public protocol CoverageSymbolizer {
    /// The source of `pc`, or `nil` when the symbolizer does not know it (a PC of another build).
    func sourceRange(of pc: UInt64) -> SourceRange?
    /// Every coverable PC with its source.
    var coverable: [(pc: UInt64, source: SourceRange)] { get }
}
