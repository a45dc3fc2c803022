/// What one collection recorded: PCs in PC mode, comparison records in comparisons mode.
public struct Trace: Sendable, Hashable {
    public var mode: CoverageMode
    public var pcKind: BackendCapabilities.PCKind
    /// PCs in the order the kernel wrote them (execution order on ordered backends), with repeats.
    public var pcs: [UInt64]
    /// Decoded comparison records, in the order the kernel wrote them.
    public var comparisons: [ComparisonRecord]
    /// The kernel had more to record than the buffer held: entries were dropped.
    public var truncated: Bool

    public init(
        mode: CoverageMode, pcKind: BackendCapabilities.PCKind, pcs: [UInt64] = [],
        comparisons: [ComparisonRecord] = [], truncated: Bool = false
    ) {
        self.mode = mode
        self.pcKind = pcKind
        self.pcs = pcs
        self.comparisons = comparisons
        self.truncated = truncated
    }

    /// Entries recorded: PCs or comparison records.
    public var count: Int { mode == .pc ? pcs.count : comparisons.count }
}

/// One comparison the kernel executed, decoded from its four-word record.
public struct ComparisonRecord: Sendable, Hashable {
    /// The record's type word: bit 0 is the constant flag, bits 1–2 the log2 of the operand size.
    public var type: UInt64
    /// The first operand; for a comparison with a compile-time constant, the constant.
    public var first: UInt64
    /// The second operand.
    public var second: UInt64
    /// The PC of the comparison, with the same meaning as PCs in PC mode.
    public var pc: UInt64

    public init(type: UInt64, first: UInt64, second: UInt64, pc: UInt64) {
        self.type = type
        self.first = first
        self.second = second
        self.pc = pc
    }

    /// Operand size in bytes: 1, 2, 4 or 8.
    public var operandSize: Int { 1 << Int((type >> 1) & 3) }

    /// One operand was a compile-time constant (also set for each case of a switch).
    public var isConstant: Bool { type & 1 != 0 }

    /// The type word uses only the bits kcov defines.
    public var isWellFormed: Bool { type & ~7 == 0 }
}
