/// A set of 64-bit PCs or signals, for unknown kernels: an open-addressing hash table with linear
/// probing, no per-element allocation, iterated in address order.
///
/// Union is associative and commutative, so sets from many fuzzing machines merge in any order.
public struct PCSet: Sendable, Hashable, Sequence {
    /// Slots; 0 marks an empty slot (a PC of 0 is kept in ``holdsZero``).
    @usableFromInline var slots: [UInt64]
    @usableFromInline var holdsZero = false
    /// Elements stored.
    public var count: Int { stored }
    @usableFromInline var stored = 0
    /// `slots.count - 1`: the table size is a power of two.
    @usableFromInline var mask: Int
    /// Grow when more than half full: a lookup that hits (most of a fuzzer's) then rarely probes a
    /// second slot; the loads of the slots, not the probing, are what the signal benchmark waits on.
    @usableFromInline var growthLimit: Int

    /// An empty set with room for `minimumCapacity` elements before it grows.
    public init(minimumCapacity: Int = 0) {
        var size = 16
        while size / 2 < minimumCapacity { size <<= 1 }
        slots = Array(repeating: 0, count: size)
        mask = size - 1
        growthLimit = size / 2
    }

    /// A set of `pcs`.
    public init<PCs: Sequence>(_ pcs: PCs) where PCs.Element == UInt64 {
        self.init(minimumCapacity: pcs.underestimatedCount)
        for pc in pcs { insert(pc) }
    }

    public var isEmpty: Bool { count == 0 }

    /// The home slot of `pc` (Fibonacci hashing: kernel PCs share their upper bits).
    @inlinable @inline(__always)
    func home(_ pc: UInt64) -> Int {
        Int(truncatingIfNeeded: (pc &* 0x9e37_79b9_7f4a_7c15) >> 32) & mask
    }

    /// Whether `pc` is in the set.
    @inlinable @inline(__always)
    public func contains(_ pc: UInt64) -> Bool {
        if pc == 0 { return holdsZero }
        return slots.withUnsafeBufferPointer { table in
            var index = home(pc)
            while true {
                let slot = table[index]
                if slot == pc { return true }
                if slot == 0 { return false }
                index = (index &+ 1) & mask
            }
        }
    }

    /// Adds `pc`; `true` if it was not there.
    @inlinable @inline(__always)
    @discardableResult
    public mutating func insert(_ pc: UInt64) -> Bool {
        if pc == 0 {
            defer { holdsZero = true }
            if holdsZero { return false }
            stored += 1
            return true
        }
        if count >= growthLimit { grow() }
        let mask = mask
        let start = home(pc)
        let inserted = slots.withUnsafeMutableBufferPointer { table -> Bool in
            var index = start
            while true {
                let slot = table[index]
                if slot == pc { return false }
                if slot == 0 {
                    table[index] = pc
                    return true
                }
                index = (index &+ 1) & mask
            }
        }
        if inserted { stored += 1 }
        return inserted
    }

    /// Adds every element of `elements` and appends those that were not in the set to `fresh`, in
    /// order: the per-call hot path (one pass over the table's storage per call, not per element).
    @inlinable
    public mutating func insertNew<Elements: Sequence>(_ elements: Elements, appendingTo fresh: inout [UInt64]) where Elements.Element == UInt64 {
        insertEach(elements) { fresh.append($0) }
    }

    /// Adds every element of `elements`, calling `onNew` with each that was not in the set, in
    /// order; one pass over the table's storage per growth, not per element.
    @inlinable
    mutating func insertEach<Elements: Sequence>(_ elements: Elements, onNew: (UInt64) -> Void) where Elements.Element == UInt64 {
        var iterator = elements.makeIterator()
        var expected = elements.underestimatedCount
        var exhausted = false
        while !exhausted {
            while stored + Swift.max(expected, 1) >= growthLimit { grow() }
            expected = 0
            // Room for this many more before the table must grow.
            let room = growthLimit - stored
            let mask = mask
            var added = 0
            var zeroKnown = holdsZero
            slots.withUnsafeMutableBufferPointer { table in
                while added < room {
                    guard let element = iterator.next() else {
                        exhausted = true
                        return
                    }
                    if element == 0 {
                        if !zeroKnown {
                            zeroKnown = true
                            added += 1
                            onNew(0)
                        }
                        continue
                    }
                    var index = Int(truncatingIfNeeded: (element &* 0x9e37_79b9_7f4a_7c15) >> 32) & mask
                    while true {
                        let slot = table[index]
                        if slot == element { break }
                        if slot == 0 {
                            table[index] = element
                            added += 1
                            onNew(element)
                            break
                        }
                        index = (index &+ 1) & mask
                    }
                }
            }
            stored += added
            holdsZero = zeroKnown
        }
    }

    @usableFromInline mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        growthLimit = slots.count / 2
        let zero = holdsZero
        stored = zero ? 1 : 0
        for pc in old where pc != 0 { insert(pc) }
    }

    /// Adds every element of `other`.
    @inlinable
    public mutating func formUnion(_ other: PCSet) {
        if other.holdsZero { insert(0) }
        insertEach(other.slots.lazy.filter { $0 != 0 }) { _ in }
    }

    /// This set and `other` together.
    public func union(_ other: PCSet) -> PCSet {
        var result = count >= other.count ? self : other
        result.formUnion(count >= other.count ? other : self)
        return result
    }

    /// The elements of this set that `other` lacks.
    public func subtracting(_ other: PCSet) -> PCSet {
        var result = PCSet(minimumCapacity: count)
        if holdsZero && !other.holdsZero { result.insert(0) }
        for pc in slots where pc != 0 && !other.contains(pc) { result.insert(pc) }
        return result
    }

    /// The elements in address order.
    public var sorted: [UInt64] {
        var result = slots.filter { $0 != 0 }
        result.sort()
        if holdsZero { result.insert(0, at: 0) }
        return result
    }

    /// Iterates in address order.
    public func makeIterator() -> IndexingIterator<[UInt64]> { sorted.makeIterator() }

    public static func == (lhs: PCSet, rhs: PCSet) -> Bool {
        lhs.count == rhs.count && lhs.holdsZero == rhs.holdsZero && lhs.slots.allSatisfy { $0 == 0 || rhs.contains($0) }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        // Order-independent: the sum and xor of the elements.
        var sum: UInt64 = 0
        var xor: UInt64 = 0
        for pc in slots { sum &+= pc; xor ^= pc }
        hasher.combine(sum)
        hasher.combine(xor)
        hasher.combine(holdsZero)
    }
}
