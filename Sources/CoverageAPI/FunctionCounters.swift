/// The driver side of a function-level backend: counting probes on named kernel functions, for
/// kernels built without kcov. There is no shared buffer; the kernel keeps one counter per probed
/// function for the thread the probes are bound to.
///
/// Implementation requirements (the `function.*` conformance checks):
/// - ``openCounters(_:mode:)`` refuses a mode outside `supportedModes` as `.unsupportedMode`
///   before any syscall, and a selection that names nothing as `.invalidArgument`.
/// - Functions that cannot be probed are listed in ``FunctionCounters/skipped`` with the reason,
///   not fatal; a machine that cannot probe at all (no support, no privilege) throws.
/// - ``capabilities`` has `granularity == .function`, `buffer == nil` and no remote kinds.
public protocol FunctionCounterDriver: CoverageBackend {
    /// Probes the functions `selection` names, bound to the calling thread, not yet counting.
    func openCounters(_ selection: FunctionSelection, mode: CoverageMode) throws(CoverageError) -> any FunctionCounters
}

extension FunctionCounterDriver {
    public var driver: BackendDriver { .functionCounters(self) }
}

/// Live counting probes: what ``FunctionCounterDriver/openCounters(_:mode:)`` returns.
///
/// Implementation requirements: counts are the entries of the thread that enabled, once per
/// entry, only between ``enable()`` and ``disable()``, from zero at each enable; ``close()``
/// removes every probe and may be called more than once; ``run(_:)`` leaves these counters alone.
public protocol FunctionCounters: AnyObject {
    /// Functions with a live probe, in the order asked for.
    var probedFunctions: [ProbedFunction] { get }
    /// Functions asked for that have no probe, with why.
    var skipped: [SkippedFunction] { get }
    /// Zeroes the counters and starts counting the calling thread's entries.
    func enable() throws(CoverageError)
    /// Stops counting; the counts stay readable. Must come from the thread that enabled.
    func disable() throws(CoverageError)
    /// Zeroes the counters; counting goes on if enabled.
    func reset() throws(CoverageError)
    /// The functions entered since the last enable or reset, by address, with their counts.
    func read() throws(CoverageError) -> [FunctionHit]
    /// Runs `command` with the same functions probed in it (its threads and children included),
    /// counting from its exec; returns how it ended and what it entered.
    func run(_ command: Command) throws(CoverageError) -> (exit: CommandExit, functions: [FunctionHit])
    /// Removes every probe.
    func close()
}

/// Which kernel functions to probe: exact names, globs over the kernel's function symbols
/// (`vfs_*`), and files of such patterns (one a line, `#` comments).
public struct FunctionSelection: Sendable, Hashable {
    public var patterns: [String]
    public var files: [String]

    public init(patterns: [String] = [], files: [String] = []) {
        self.patterns = patterns
        self.files = files
    }

    /// Whether it names nothing.
    public var isEmpty: Bool { patterns.isEmpty && files.isEmpty }

    /// Whether a pattern is a glob rather than a name.
    public static func isGlob(_ pattern: String) -> Bool { pattern.contains { "*?[".contains($0) } }
}

/// A function with a probe on it: its name and its address (on Linux its kallsyms address, the PC
/// reports use).
public struct ProbedFunction: Sendable, Hashable, Codable {
    public var name: String
    public var pc: UInt64
    public init(name: String, pc: UInt64) {
        self.name = name
        self.pc = pc
    }
}

/// A function that was asked for but cannot be probed, and why.
public struct SkippedFunction: Sendable, Hashable, Codable {
    public var name: String
    public var reason: String
    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }
}

/// One probed function's count in a collection.
public struct FunctionHit: Sendable, Hashable, Codable {
    public var name: String
    public var pc: UInt64
    public var hits: UInt64
    public init(name: String, pc: UInt64, hits: UInt64) {
        self.name = name
        self.pc = pc
        self.hits = hits
    }
}

/// The functions seen so far, to tell which a new collection enters for the first time.
public struct FunctionBaseline: Sendable, Hashable {
    public private(set) var seen: Set<UInt64> = []
    public init() {}

    /// The functions of `hits` not in the baseline; adds them to it.
    public mutating func merge(_ hits: [FunctionHit]) -> [FunctionHit] {
        hits.filter { seen.insert($0.pc).inserted }
    }
}
