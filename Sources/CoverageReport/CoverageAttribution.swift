public import CoverageAPI
public import TraceFile

/// Which records of whole-run traces (`kcovctl trace --follow`, one record per task and image)
/// covered a place in the kernel: the answer to "which program, or which test of the suite, ran
/// this line?".
public enum CoverageAttribution {
    /// A place to ask about: one PC as the trace holds it (kcov's return address after the
    /// callback's call), or a source line, its file named by its path or a trailing part of it
    /// (`fs/namei.c:2404`, `namei.c:2404`).
    public enum Location: Sendable, Hashable, CustomStringConvertible {
        case pc(UInt64)
        case line(file: String, line: Int)

        /// `0xPC`, or `FILE:LINE` with a line of at least 1; `nil` otherwise.
        public init?(_ text: String) {
            if text.hasPrefix("0x"), let pc = TraceFile.parsePC(text) {
                self = .pc(pc)
                return
            }
            guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
                  let line = Int(text[text.index(after: colon)...]), line >= 1 else { return nil }
            self = .line(file: String(text[..<colon]), line: line)
        }

        public var description: String {
            switch self {
            case .pc(let pc): "0x" + String(pc, radix: 16)
            case .line(let file, let line): "\(file):\(line)"
            }
        }
    }

    /// One record that covered the place.
    public struct Record: Sendable, Hashable {
        /// The trace file it is in.
        public var path: String
        public var task: TraceFile.Task
        /// How many of the place's PCs the record holds (each once).
        public var pcs: Int
    }

    /// The coverable PCs at `location` in `symbolizer`'s kernel: the PC itself when it is
    /// coverable, or every coverable PC whose source range takes in the line of a file whose
    /// path is `file` or ends with `/file`.
    public static func pcs(at location: Location, in symbolizer: some CoverageSymbolizer) -> Set<UInt64> {
        switch location {
        case .pc(let pc):
            return symbolizer.coverable.contains { $0.pc == pc } ? [pc] : []
        case .line(let file, let line):
            return Set(symbolizer.coverable.lazy.filter { _, source in
                (source.file == file || source.file.hasSuffix("/" + file)) && source.lines.contains(line)
            }.map(\.pc))
        }
    }

    /// The records of `traces` that hold at least one of `pcs`, in file order and, within a file,
    /// in the order the tasks started.
    public static func records(covering pcs: Set<UInt64>, in traces: [(path: String, file: TraceFile)]) -> [Record] {
        traces.flatMap { path, file in
            file.tasks.compactMap { task -> Record? in
                let held = Set(task.pcs).intersection(pcs).count
                return held > 0 ? Record(path: path, task: task, pcs: held) : nil
            }.sorted { ($0.task.order ?? .max) < ($1.task.order ?? .max) }
        }
    }
}
