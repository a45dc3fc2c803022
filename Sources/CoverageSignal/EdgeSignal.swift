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

            @inlinable init(base: PCs.Iterator) { self.base = base }

            @inlinable @inline(__always)
            public mutating func next() -> UInt64? {
                guard let pc = base.next() else { return nil }
                defer { previous = pc }
                return EdgeSignal.signal(pc, after: previous)
            }
        }

        @inlinable public func makeIterator() -> Iterator { Iterator(base: pcs.makeIterator()) }
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
