/// Edge signal, bit-compatible with syzkaller's executor: each PC of an ordered trace is mixed
/// with a 12-bit hash of the PC before it, so the same block reached from two places gives two
/// signals ("A→B, C→D" and "A→D, C→B" differ where the block sets alone do not).
///
/// `signal = pc ^ (hash32(previous & 0xfff) & 0xfff)`, with `previous` 0 before the first PC.
/// Only meaningful for traces in execution order (`BackendCapabilities.orderedTrace`).
public enum EdgeSignal {
    /// syzkaller's 32-bit integer hash (wrapping arithmetic throughout).
    @inlinable @inline(__always)
    public static func hash32(_ value: UInt32) -> UInt32 {
        var a = value
        a = (a ^ 61) ^ (a >> 16)
        a &+= a << 3
        a ^= a >> 4
        a &*= 0x27d4_eb2d
        a ^= a >> 15
        return a
    }

    /// The signal of `pc` after `previous`.
    @inlinable @inline(__always)
    public static func signal(_ pc: UInt64, after previous: UInt64) -> UInt64 {
        pc ^ UInt64(hash32(UInt32(truncatingIfNeeded: previous & 0xfff)) & 0xfff)
    }

    /// `hash32(p) & 0xfff` for each of the 4,096 values of `previous & 0xfff`: the hash is a
    /// function of 12 bits, so a table lookup replaces its six operations on the hot path
    /// (``Signals`` iterates with it; tests check it against ``hash32(_:)`` entry by entry).
    public static let mixes: [UInt16] = (0..<4096).map { UInt16(truncatingIfNeeded: hash32(UInt32($0)) & 0xfff) }

    /// Calls `body` with the edge signal of each PC of `pcs`, in order (repeats included).
    @inlinable @inline(__always)
    public static func forEach<PCs: Sequence>(of pcs: PCs, _ body: (UInt64) throws -> Void) rethrows where PCs.Element == UInt64 {
        var previous: UInt64 = 0
        for pc in pcs {
            try body(signal(pc, after: previous))
            previous = pc
        }
    }

    /// The edge signals of `pcs`, computed as they are iterated (no array).
    @inlinable
    public static func lazy<PCs: Sequence>(_ pcs: PCs) -> Signals<PCs> where PCs.Element == UInt64 { Signals(pcs: pcs) }

    /// The edge signals of a sequence of PCs, in order, computed on iteration.
    public struct Signals<PCs: Sequence>: Sequence where PCs.Element == UInt64 {
        @usableFromInline let pcs: PCs

        @inlinable init(pcs: PCs) { self.pcs = pcs }

        public struct Iterator: IteratorProtocol {
            @usableFromInline var base: PCs.Iterator
            @usableFromInline var previous: UInt64 = 0
            /// ``EdgeSignal/mixes``, loaded once per iteration rather than once per PC.
            @usableFromInline let mixes: [UInt16]

            @inlinable init(base: PCs.Iterator, mixes: [UInt16]) {
                self.base = base
                self.mixes = mixes
            }

            @inlinable @inline(__always)
            public mutating func next() -> UInt64? {
                guard let pc = base.next() else { return nil }
                defer { previous = pc }
                return pc ^ UInt64(mixes[Int(truncatingIfNeeded: previous & 0xfff)])
            }
        }

        @inlinable public func makeIterator() -> Iterator { Iterator(base: pcs.makeIterator(), mixes: EdgeSignal.mixes) }
        @inlinable public var underestimatedCount: Int { pcs.underestimatedCount }
    }

    /// The edge signals of `pcs`, in order, repeats included.
    public static func signals<PCs: Sequence>(of pcs: PCs) -> [UInt64] where PCs.Element == UInt64 {
        var result: [UInt64] = []
        result.reserveCapacity(pcs.underestimatedCount)
        forEach(of: pcs) { result.append($0) }
        return result
    }
}
