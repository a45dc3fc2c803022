public import CoverageAPI

/// One comparison a fuzzer can use as a hint: at `pc`, `first` was compared with `second`, both
/// sign-extended from `size` bytes (so a 1-byte `-1` is `0xffffffffffffffff`, as a 64-bit
/// argument holding it would be). `isConstant` marks a compile-time constant operand (`first`),
/// and every case constant of a switch.
public struct ComparisonHint: Sendable, Hashable {
    public var pc: UInt64
    public var first: UInt64
    public var second: UInt64
    /// Operand size in bytes: 1, 2, 4 or 8.
    public var size: Int
    public var isConstant: Bool

    public init(pc: UInt64, first: UInt64, second: UInt64, size: Int, isConstant: Bool) {
        self.pc = pc
        self.first = first
        self.second = second
        self.size = size
        self.isConstant = isConstant
    }
}

extension ComparisonHint {
    /// `value`'s low `size` bytes, sign-extended to 64 bits.
    @inline(__always)
    public static func signExtend(_ value: UInt64, size: Int) -> UInt64 {
        switch size {
        case 1: UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: value)))
        case 2: UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: value)))
        case 4: UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: value)))
        default: value
        }
    }

    /// The hints of a CMP-mode trace, as fuzzers use them: records that are not well formed are
    /// dropped (counted in `malformed`), operands are sign-extended by their size, records that
    /// compare with a constant 0 or compare equal operands are dropped (a mutator needs no help
    /// with them), and the rest is deduplicated by (pc, first, second), first occurrence kept.
    /// Switch cases (constant records) pass through like any other constant comparison.
    public static func hints(from records: [ComparisonRecord]) -> (hints: [ComparisonHint], malformed: Int) {
        var seen = Set<ComparisonHint>()
        var hints: [ComparisonHint] = []
        var malformed = 0
        for record in records {
            guard record.isWellFormed else {
                malformed += 1
                continue
            }
            let size = record.operandSize
            let first = signExtend(record.first, size: size)
            let second = signExtend(record.second, size: size)
            if first == second { continue }
            if record.isConstant && first == 0 { continue }
            let hint = ComparisonHint(pc: record.pc, first: first, second: second, size: size, isConstant: record.isConstant)
            if seen.insert(hint).inserted { hints.append(hint) }
        }
        return (hints, malformed)
    }
}
