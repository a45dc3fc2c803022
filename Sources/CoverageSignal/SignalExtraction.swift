public import CoverageAPI

/// Turns a trace's PCs into signal: the PCs themselves (blocks), or syzkaller's edges where the
/// backend's trace is in execution order. Entries that cannot be PCs of the traced kernel — the
/// buffer is ordinary user memory, and a fuzzed program can scribble on it — are dropped and
/// counted before they become signal.
public struct SignalExtraction: Sendable {
    /// What one signal stands for.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// One per covered PC (or function, for function counters).
        case blocks
        /// One per pair of consecutive PCs: needs an ordered trace.
        case edges
    }

    public let kind: Kind
    /// Entries must be kernel text addresses (upper canonical half), when PCs are kernel addresses.
    public let requireKernelAddresses: Bool
    /// The traced kernel's text, when known (from its vmlinux or `/proc/kallsyms`): PCs outside
    /// it are dropped too.
    public let text: ClosedRange<UInt64>?

    /// The lowest kernel address on 64-bit kernels (the canonical upper half).
    public static let kernelHalf: UInt64 = 0xffff_8000_0000_0000

    /// Extraction of `kind` signal from a backend with `capabilities`.
    ///
    /// - Throws: `.unsupportedOperation` for edges from a backend whose trace is not in execution
    ///   order (gVisor writes a deduplicated set; function counters have no order).
    public init(kind: Kind, capabilities: BackendCapabilities, text: ClosedRange<UInt64>? = nil) throws(CoverageError) {
        try self.init(kind: kind, unit: capabilities.unit, orderedTrace: capabilities.orderedTrace, text: text)
    }

    /// Extraction of `kind` signal from entries of `unit`, in execution order when `orderedTrace`
    /// (as a trace file's kcov PCs are).
    ///
    /// - Throws: `.unsupportedOperation` for edges from an unordered trace.
    public init(kind: Kind, unit: CoverageUnit, orderedTrace: Bool, text: ClosedRange<UInt64>? = nil) throws(CoverageError) {
        if kind == .edges && !orderedTrace {
            throw CoverageError(
                .unsupportedOperation,
                "edges need a trace in execution order, and this one is not (\(unit.rawValue) entries are a set); use block signal")
        }
        self.kind = kind
        self.requireKernelAddresses = unit.pcKind == .kernelAddress
        self.text = text
    }

    /// Whether `pc` can be a PC of the traced kernel.
    @inline(__always)
    public func isPlausible(_ pc: UInt64) -> Bool {
        if let text { return text.contains(pc) }
        return !requireKernelAddresses || pc >= Self.kernelHalf
    }

    /// Calls `body` with each signal of `pcs` (repeats included) and returns how many entries
    /// were dropped as implausible. Edges skip a dropped entry: the next PC pairs with the last
    /// plausible one.
    @inline(__always)
    @discardableResult
    public func forEachSignal<PCs: Sequence>(of pcs: PCs, _ body: (UInt64) -> Void) -> Int where PCs.Element == UInt64 {
        var dropped = 0
        var previous: UInt64 = 0
        for pc in pcs {
            guard isPlausible(pc) else {
                dropped += 1
                continue
            }
            body(kind == .edges ? EdgeSignal.signal(pc, after: previous) : pc)
            previous = pc
        }
        return dropped
    }

    /// The signal of `pcs` as a set, and how many entries were dropped.
    public func signal<PCs: Sequence>(of pcs: PCs) -> (signal: PCSet, dropped: Int) where PCs.Element == UInt64 {
        var set = PCSet(minimumCapacity: pcs.underestimatedCount)
        let dropped = forEachSignal(of: pcs) { set.insert($0) }
        return (set, dropped)
    }
}
