/// What one entry of a trace stands for.
public enum CoverageUnit: String, Sendable, Hashable, Codable, CaseIterable {
    /// A kernel text address with KASLR removed, about one basic block (kcov's PC mode, or the
    /// PC of a comparison in CMP mode): symbolize against the vmlinux.
    case pc
    /// An identifier the kernel made up for a block of its own code (gVisor's Go coverage
    /// blocks): symbolize with the kernel's own tool.
    case syntheticBlock = "synthetic-block"
    /// A probed kernel function, by its entry address, with a hit count.
    case function

    /// The unit of a backend's entries: synthetic PCs are blocks; kernel addresses are PCs or functions.
    public init(pcKind: BackendCapabilities.PCKind, granularity: BackendCapabilities.Granularity) {
        switch (pcKind, granularity) {
        case (.synthetic, _): self = .syntheticBlock
        case (.kernelAddress, .function): self = .function
        case (.kernelAddress, .basicBlock): self = .pc
        }
    }

    /// What the entries' addresses are: synthetic identifiers or kernel addresses.
    public var pcKind: BackendCapabilities.PCKind { self == .syntheticBlock ? .synthetic : .kernelAddress }

    /// How much code one entry stands for.
    public var granularity: BackendCapabilities.Granularity { self == .function ? .function : .basicBlock }
}

/// What one collection recorded, from any backend: PCs in PC mode, comparison records in CMP
/// mode, functions with hit counts for function-level backends.
public struct Trace: Sendable, Hashable {
    /// The backend that recorded it (`linux`, `netbsd`, `gvisor`, `kprobe`); `nil` for a trace
    /// read straight from a buffer (``CoverageBuffer/read(mode:pcKind:)``).
    public var backend: String?
    public var unit: CoverageUnit
    public var mode: CoverageMode
    /// PCs in the order the kernel wrote them (execution order on ordered backends), with
    /// repeats; for ``CoverageUnit/function``, each entered function's address once.
    public var pcs: [UInt64]
    /// Decoded comparison records, in the order the kernel wrote them.
    public var comparisons: [ComparisonRecord]
    /// For ``CoverageUnit/function``: the functions entered, by address, with their counts.
    public var functions: [FunctionHit]
    /// The kernel had more to record than the buffer held: entries were dropped.
    public var truncated: Bool

    public init(
        backend: String? = nil, unit: CoverageUnit, mode: CoverageMode, pcs: [UInt64] = [],
        comparisons: [ComparisonRecord] = [], functions: [FunctionHit] = [], truncated: Bool = false
    ) {
        self.backend = backend
        self.unit = unit
        self.mode = mode
        self.pcs = pcs
        self.comparisons = comparisons
        self.functions = functions
        self.truncated = truncated
    }

    /// A function-level trace: `functions` sorted by address, ``pcs`` their addresses.
    public init(backend: String?, functions: [FunctionHit]) {
        let sorted = functions.sorted { $0.pc < $1.pc }
        self.init(backend: backend, unit: .function, mode: .pc, pcs: sorted.map(\.pc), functions: sorted)
    }

    /// What a PC means: a kernel address, or a synthetic id.
    public var pcKind: BackendCapabilities.PCKind { unit.pcKind }

    /// Entries recorded: PCs (or functions) or comparison records.
    public var count: Int { mode == .pc ? pcs.count : comparisons.count }

    /// Hits of the function called `name` (0 when it was not entered or not probed).
    public func hits(_ name: String) -> UInt64 { functions.first { $0.name == name }?.hits ?? 0 }
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
