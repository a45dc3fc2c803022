public import CoverageAPI
import CoverageSignal
public import TraceFile

/// Why a coverage file cannot be used: which file, and what was wrong with it.
public struct CoverageInputError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// The PCs of one coverage file written by `kcovctl trace`, read through `TraceFile`: what a
/// report needs of it.
public struct CoverageInput: Sendable {
    public var path: String
    /// PC or CMP mode (rawcover files are PC mode; JSON says which).
    public var mode: CoverageMode
    /// Every recorded PC, repeats included (a PC recorded twice ran twice).
    public var pcs: [UInt64]
    /// The trace filled its buffer: coverage from this file is a lower bound.
    public var truncated: Bool
    /// Function-level coverage (the kprobe backend): every probed function by entry PC, the
    /// denominator; ``pcs`` then holds each entered function's PC once, and ``hits`` its count.
    public var probedFunctions: [UInt64: String]?
    /// How often each PC was recorded, when the file gives counts rather than repeats.
    public var hits: [UInt64: Int]?
    /// Where the traced kernel's text and modules were (trace format 3), for mapping module PCs.
    public var kernel: KernelLayout?

    public init(
        path: String, mode: CoverageMode, pcs: [UInt64], truncated: Bool, probedFunctions: [UInt64: String]? = nil,
        hits: [UInt64: Int]? = nil
    ) {
        self.path = path
        self.mode = mode
        self.pcs = pcs
        self.truncated = truncated
        self.probedFunctions = probedFunctions
        self.hits = hits
    }

    /// Reads `path` (`-`: standard input) as a trace file: version 1, the JSON of an older
    /// `kcovctl trace`, or rawcover (see `TraceFile.decode(_:source:)`), then takes the report's
    /// view of it (``init(_:path:)``), keeping only the records `selection` names (whole runs);
    /// or, when it starts with `KCOVSET1`, as a set file of block PCs (`kcovctl signal --output`,
    /// `kcovctl merge`): each PC once, as if recorded once. Errors name the file (`standard input`
    /// for `-`); a set of edge signals or of functions is refused (neither names a PC to count),
    /// and so is a task selection on a set file (it has no tasks).
    public static func read(path: String, tasks selection: TaskSelection = TaskSelection()) throws(CoverageInputError) -> CoverageInput {
        let name = path == "-" ? "standard input" : path
        let read: CoverageFile
        do {
            read = try CoverageFile.read(path: path)
        } catch {
            throw CoverageInputError(path: error.source, error.message)
        }
        var file: TraceFile
        switch read {
        case .set(let set):
            guard set.content == .pcs else {
                throw CoverageInputError(
                    path: name, "is a set of \(set.content.name), not block PCs: report the trace files, or a set written by `kcovctl signal --output` without --edges")
            }
            guard selection.isEmpty else {
                throw CoverageInputError(path: name, "is a set file, which has no tasks: \(selection) needs a trace file written by `kcovctl trace --follow`")
            }
            return CoverageInput(path: name, mode: .pc, pcs: set.set.sorted, truncated: false)
        case .trace(let trace):
            file = trace
        }
        if !selection.isEmpty {
            let kept = file.tasks.filter(selection.contains)
            guard !kept.isEmpty else {
                let orders = Set(file.tasks.compactMap(\.order)).sorted()
                let executables = Set(file.tasks.compactMap(\.executable)).sorted()
                throw CoverageInputError(
                    path: name,
                    "no task matches \(selection): its tasks have start orders \(orders.isEmpty ? "none" : "\(orders.first!)...\(orders.last!)") and executables \(executables.prefix(8).joined(separator: ", "))\(executables.count > 8 ? ", …" : "")")
            }
            file.tasks = kept
        }
        return try CoverageInput(file, path: name)
    }

    /// Which records of a whole-run trace (`kcovctl trace --follow`) a report takes: those whose
    /// start order is in ``orders`` or whose executable is in ``executables``; all when both are empty.
    public struct TaskSelection: Sendable, CustomStringConvertible {
        public var orders: Set<Int>
        public var executables: Set<String>

        public init(orders: Set<Int> = [], executables: Set<String> = []) {
            self.orders = orders
            self.executables = executables
        }

        public var isEmpty: Bool { orders.isEmpty && executables.isEmpty }

        public func contains(_ task: TraceFile.Task) -> Bool {
            task.order.map(orders.contains) == true || task.executable.map(executables.contains) == true
        }

        public var description: String {
            (orders.sorted().map { "--task \($0)" } + executables.sorted().map { "--executable \($0)" }).joined(separator: " or ")
        }
    }

    /// The report's view of one trace file, all its tasks merged: unit pc gives every PC with
    /// repeats (the comparison sites in CMP mode); unit function gives each entered function's
    /// PC once with its hits summed over tasks, and the probed functions as the denominator.
    /// Refuses gVisor's synthetic blocks (a vmlinux cannot symbolize them) and function-level
    /// traces without their probed functions.
    public init(_ file: TraceFile, path: String) throws(CoverageInputError) {
        switch file.unit {
        case .syntheticBlock:
            throw CoverageInputError(path: path, "holds gVisor's synthetic PCs: symbolize them with `runsc symbolize`, not a vmlinux")
        case .function:
            guard let probed = file.probedFunctions else {
                throw CoverageInputError(path: path, "a function-level trace without \"probedFunctions\": written by an older kcovctl? trace again")
            }
            let entered = file.functions
            self.init(
                path: path, mode: .pc, pcs: entered.map(\.pc), truncated: file.isTruncated,
                probedFunctions: Dictionary(probed.map { ($0.pc, $0.name) }, uniquingKeysWith: { first, _ in first }),
                hits: Dictionary(entered.map { ($0.pc, Int(clamping: $0.hits)) }, uniquingKeysWith: { first, _ in first }))
        case .pc:
            self.init(path: path, mode: file.mode, pcs: file.pcs, truncated: file.isTruncated)
        }
        kernel = file.kernel
    }

    /// A PC in hexadecimal, `0x` optional, 1 to 16 digits, blanks around ignored; `nil` otherwise.
    public static func parsePC(_ text: String) -> UInt64? { TraceFile.parsePC(text) }
}
