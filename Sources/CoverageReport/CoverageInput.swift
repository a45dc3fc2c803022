public import CoverageAPI
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
    /// view of it (``init(_:path:)``). Errors name the file (`standard input` for `-`).
    public static func read(path: String) throws(CoverageInputError) -> CoverageInput {
        let file: TraceFile
        do {
            file = try TraceFile.read(path: path)
        } catch {
            throw CoverageInputError(path: error.source, error.message)
        }
        return try CoverageInput(file, path: path == "-" ? "standard input" : path)
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
    }

    /// A PC in hexadecimal, `0x` optional, 1 to 16 digits, blanks around ignored; `nil` otherwise.
    public static func parsePC(_ text: String) -> UInt64? { TraceFile.parsePC(text) }
}
