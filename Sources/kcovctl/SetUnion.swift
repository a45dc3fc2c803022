import CoverageAPI
import CoverageReport
import CoverageSignal
import Foundation
import TraceFile

/// The union of the signal of trace files and of set files, read one file at a time (only the
/// union is kept): what `signal` computes (entries that cannot be kernel PCs dropped) and `merge`
/// (every PC as recorded, so 32-bit PCs of old corpora and user-space test programs stay for
/// `report` to place). Union is commutative and associative, and
/// the kernel build is the one every set that names one agrees on, so any order of the same
/// files gives the same set.
struct SetUnion {
    /// Trace files give edge signal instead of block PCs.
    let edges: Bool
    /// Drop trace entries that cannot be kernel PCs (signal), or keep them (merge).
    let dropsImplausible: Bool
    private(set) var set = PCSet()
    private(set) var content: SignalSetFile.Content?
    private(set) var kernel: String
    /// Trace entries that could not be kernel PCs.
    private(set) var dropped = 0
    private(set) var truncated: [String] = []
    private(set) var count = 0

    init(edges: Bool, dropsImplausible: Bool, kernel: String = "") {
        self.edges = edges
        self.dropsImplausible = dropsImplausible
        self.kernel = kernel
    }

    /// Adds the file at `path` (`-`: a trace file on standard input).
    ///
    /// - Throws: `InputError` for an unreadable or malformed file, or one whose content (block
    ///   PCs, edges, functions) or kernel build differs from the files before it; `CoverageError`
    ///   (`.unsupportedOperation`) for edges of a trace not in execution order.
    mutating func add(path: String) throws {
        count += 1
        let source = path == "-" ? "standard input" : path
        let file: TraceFile
        switch try CoverageFile.read(path: path) {
        case .set(let set):
            try meet(set.content, kernel: set.kernel, source: source)
            self.set.formUnion(set.set)
            return
        case .trace(let trace):
            file = trace
        }
        let unit = file.unit
        let fileContent: SignalSetFile.Content = unit == .function ? .functions : edges ? .edges : .pcs
        try meet(fileContent, kernel: "", source: source)
        let extraction = try SignalExtraction(kind: edges ? .edges : .blocks, unit: unit, orderedTrace: unit == .pc && file.mode == .pc)
        for task in file.tasks {
            if dropsImplausible {
                dropped += extraction.forEachSignal(of: task.entryPCs) { set.insert($0) }
            } else {
                for pc in task.entryPCs { set.insert(pc) }
            }
        }
        if file.isTruncated { truncated.append(source) }
    }

    /// The union as a set file (block PCs when nothing was added).
    var file: SignalSetFile { SignalSetFile(content: content ?? .pcs, kernel: kernel, set: set) }

    /// What the reader must know: truncated traces, dropped entries.
    var warnings: [String] {
        var lines: [String] = []
        if !truncated.isEmpty {
            lines.append("\(truncated.count) of \(count) traces filled their buffer (\(truncated.joined(separator: ", "))): their signal is a lower bound")
        }
        if dropped > 0 { lines.append("\(dropped) entries were not kernel PCs and were dropped (a buffer written by the traced program?)") }
        return lines
    }

    private mutating func meet(_ other: SignalSetFile.Content, kernel otherKernel: String, source: String) throws(InputError) {
        if let content {
            try SignalSetFile(content: content, kernel: kernel, set: PCSet()).checkCompatible(content: other, kernel: otherKernel, source: source)
        }
        content = other
        if kernel.isEmpty { kernel = otherKernel }
    }
}
