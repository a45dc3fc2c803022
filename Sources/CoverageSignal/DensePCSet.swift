/// The coverable PCs of one kernel build, sorted: each gets an ordinal, so a set of them can be a
/// bitmap (``DensePCSet``). Build it from the vmlinux's coverable-PC scan (`KernelImage`).
public struct CoverableIndex: Sendable, Hashable {
    /// The PCs, ascending, without repeats.
    public let pcs: [UInt64]

    /// An index of `pcs` (any order; repeats are dropped).
    public init<PCs: Sequence>(_ pcs: PCs) where PCs.Element == UInt64 {
        var sorted = Array(pcs)
        sorted.sort()
        var unique: [UInt64] = []
        unique.reserveCapacity(sorted.count)
        for pc in sorted where unique.last != pc { unique.append(pc) }
        self.pcs = unique
    }

    /// The ordinal of `pc`, or `nil` when it is not a coverable PC of this build.
    @inlinable
    public func ordinal(of pc: UInt64) -> Int? {
        var low = 0
        var high = pcs.count
        while low < high {
            let middle = low + (high - low) / 2
            if pcs[middle] < pc { low = middle + 1 } else { high = middle }
        }
        return low < pcs.count && pcs[low] == pc ? low : nil
    }
}

/// A set of PCs of a known kernel build as a bitmap over its ``CoverableIndex``: one bit per
/// coverable PC, so union and subtraction are word operations and the size is fixed
/// (coverable PCs / 8 bytes). PCs the index does not know are kept aside in a ``PCSet``
/// (``strays``), never dropped.
public struct DensePCSet: Sendable, Hashable {
    public let index: CoverableIndex
    @usableFromInline var bits: [UInt64]
    /// Elements not in the index.
    public private(set) var strays = PCSet()

    public init(index: CoverableIndex) {
        self.index = index
        bits = Array(repeating: 0, count: (index.pcs.count + 63) / 64)
    }

    /// Adds `pc`; `true` if it was not there.
    @discardableResult
    public mutating func insert(_ pc: UInt64) -> Bool {
        guard let ordinal = index.ordinal(of: pc) else { return strays.insert(pc) }
        let mask: UInt64 = 1 << UInt64(ordinal & 63)
        let word = ordinal >> 6
        if bits[word] & mask != 0 { return false }
        bits[word] |= mask
        return true
    }

    public func contains(_ pc: UInt64) -> Bool {
        guard let ordinal = index.ordinal(of: pc) else { return strays.contains(pc) }
        return bits[ordinal >> 6] & (1 << UInt64(ordinal & 63)) != 0
    }

    /// Elements, strays included.
    public var count: Int { bits.reduce(0) { $0 + $1.nonzeroBitCount } + strays.count }

    /// Adds every element of `other`, which must share this set's index.
    ///
    /// - Precondition: `other.index == index` (a programmer error otherwise: sets of two kernel
    ///   builds do not merge; ``SignalSetFile`` checks builds for files).
    public mutating func formUnion(_ other: DensePCSet) {
        precondition(other.index.pcs.count == index.pcs.count && other.index == index, "dense sets of different kernel builds")
        for word in bits.indices { bits[word] |= other.bits[word] }
        strays.formUnion(other.strays)
    }

    /// The elements of this set that `other` (same index) lacks.
    public func subtracting(_ other: DensePCSet) -> DensePCSet {
        precondition(other.index == index, "dense sets of different kernel builds")
        var result = self
        for word in bits.indices { result.bits[word] &= ~other.bits[word] }
        result.strays = strays.subtracting(other.strays)
        return result
    }

    /// The elements in address order.
    public var sorted: [UInt64] {
        var result: [UInt64] = []
        for (word, value) in bits.enumerated() where value != 0 {
            var remaining = value
            while remaining != 0 {
                result.append(index.pcs[word * 64 + remaining.trailingZeroBitCount])
                remaining &= remaining - 1
            }
        }
        result += strays.sorted
        result.sort()
        return result
    }

    /// The same elements as a sparse set.
    public var sparse: PCSet {
        var set = PCSet(minimumCapacity: count)
        for pc in sorted { set.insert(pc) }
        return set
    }
}
