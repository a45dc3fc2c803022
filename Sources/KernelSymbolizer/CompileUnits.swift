import CElfutils

/// Every compilation unit of the DWARF and the addresses it covers (its `DW_AT_low_pc`/`high_pc`
/// or `DW_AT_ranges`, which is what addr2line reads too), for finding the unit of a PC.
struct CompileUnits {
    /// The unit DIEs, in `.debug_info` order.
    private(set) var dies: [Dwarf_Die] = []
    /// Address ranges sorted by start, with the unit each belongs to.
    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    private var owners: [Int32] = []
    /// The largest end among ranges `0...i`: a backward scan stops once no earlier range can reach.
    private var reach: [UInt64] = []

    init(_ dwarf: OpaquePointer) {
        var ranges: [(start: UInt64, end: UInt64, unit: Int32)] = []
        var unit: OpaquePointer?
        var next: OpaquePointer?
        var version: Dwarf_Half = 0
        var unitType: UInt8 = 0
        var die = Dwarf_Die()
        while dwarf_get_units(dwarf, unit, &next, &version, &unitType, &die, nil) == 0 {
            unit = next
            guard unitType == UInt8(DW_UT_compile) else { continue }
            let index = Int32(dies.count)
            dies.append(die)
            forEachRange(of: &die) { ranges.append(($0, $1, index)) }
        }
        ranges.sort { $0.start < $1.start }
        starts = ranges.map(\.start)
        ends = ranges.map(\.end)
        owners = ranges.map(\.unit)
        var farthest: UInt64 = 0
        reach = ends.map { end in
            farthest = max(farthest, end)
            return farthest
        }
    }

    /// The first unit (in `.debug_info` order) whose ranges contain `pc`.
    func unit(containing pc: UInt64) -> Int? {
        var low = 0
        var high = starts.count
        while low < high {
            let middle = (low + high) / 2
            if starts[middle] <= pc { low = middle + 1 } else { high = middle }
        }
        var found: Int32?
        var index = low - 1
        while index >= 0, reach[index] > pc {
            if ends[index] > pc { found = min(found ?? owners[index], owners[index]) }
            index -= 1
        }
        return found.map(Int.init)
    }
}

/// Calls `body` with each non-empty address range (start, end) of a DIE: its `DW_AT_low_pc` and
/// `DW_AT_high_pc`, or its `DW_AT_ranges`.
func forEachRange(of die: inout Dwarf_Die, _ body: (UInt64, UInt64) -> Void) {
    var base: Dwarf_Addr = 0
    var start: Dwarf_Addr = 0
    var end: Dwarf_Addr = 0
    var offset = dwarf_ranges(&die, 0, &base, &start, &end)
    while offset > 0 {
        if start < end { body(start, end) }
        offset = dwarf_ranges(&die, offset, &base, &start, &end)
    }
}
