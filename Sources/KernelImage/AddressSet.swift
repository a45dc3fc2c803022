/// A set of addresses by open addressing with a multiplicative hash: the scan's membership tests
/// (a function's first byte, a callback, a tail-calling function), one per branch-like byte of
/// the kernel's code, where `Set`'s seeded hashing costs more than the rest of the scan.
struct AddressSet {
    /// Slots; `empty` marks a free one (0 is no kernel address, and is kept aside if inserted).
    private var slots: [UInt64]
    private var mask: Int
    private var containsZero = false
    private(set) var count = 0
    private static let empty: UInt64 = 0

    init<S: Sequence<UInt64>>(_ addresses: S) {
        slots = Array(repeating: Self.empty, count: 16)
        mask = 15
        for address in addresses { insert(address) }
    }

    @inline(__always)
    private func slot(_ address: UInt64) -> Int {
        Int(truncatingIfNeeded: (address &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
    }

    @inline(__always)
    func contains(_ address: UInt64) -> Bool {
        if address == Self.empty { return containsZero }
        return slots.withUnsafeBufferPointer { slots in
            var index = slot(address)
            while true {
                let found = slots[index]
                if found == address { return true }
                if found == Self.empty { return false }
                index = (index + 1) & mask
            }
        }
    }

    /// Adds `address`; whether it was new.
    @discardableResult
    mutating func insert(_ address: UInt64) -> Bool {
        if address == Self.empty {
            defer { containsZero = true }
            return !containsZero
        }
        if (count + 1) * 2 > slots.count { grow() }
        var index = slot(address)
        while slots[index] != Self.empty {
            if slots[index] == address { return false }
            index = (index + 1) & mask
        }
        slots[index] = address
        count += 1
        return true
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Self.empty, count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for address in old where address != Self.empty { insert(address) }
    }
}
