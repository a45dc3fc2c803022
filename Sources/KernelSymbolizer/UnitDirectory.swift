/// Every unit of `.debug_info` (its header and unit DIE, read when the symbolizer opens) and the
/// addresses each compilation unit covers (its `DW_AT_low_pc`/`high_pc` or `DW_AT_ranges`, which
/// is what addr2line reads too), for finding the unit of a PC. Immutable: shared by the threads
/// of a batch.
final class UnitDirectory: @unchecked Sendable {
    let sections: DebugSections
    /// Every unit, in `.debug_info` order.
    let units: [CompileUnit]
    /// Address ranges sorted by start, with the unit each belongs to.
    private let starts: [UInt64]
    private let ends: [UInt64]
    private let owners: [Int32]
    /// The largest end among ranges `0...i`: a backward scan stops once no earlier range can reach.
    private let reach: [UInt64]

    init(sections: DebugSections) throws(DWARFError) {
        self.sections = sections
        var units: [CompileUnit] = []
        var ranges: [(start: UInt64, end: UInt64, unit: Int32)] = []
        for header in try UnitHeader.all(in: sections.info) {
            let unit = try CompileUnit(header, sections: sections)
            if unit.isCompile {
                for range in unit.ranges { ranges.append((range.start, range.end, Int32(units.count))) }
            }
            units.append(unit)
        }
        self.units = units
        ranges.sort { $0.start < $1.start }
        starts = ranges.map(\.start)
        ends = ranges.map(\.end)
        owners = ranges.map(\.unit)
        var farthest: UInt64 = 0
        reach = ranges.map { range in
            farthest = max(farthest, range.end)
            return farthest
        }
    }

    /// The first compilation unit (in `.debug_info` order) whose ranges contain `pc`.
    func unit(at pc: UInt64) -> Int? {
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

    /// The unit whose DIEs include `offset` of `.debug_info`.
    func unit(containing offset: Int) -> Int? {
        var low = 0
        var high = units.count
        while low < high {
            let middle = (low + high) / 2
            if units[middle].header.offset <= offset { low = middle + 1 } else { high = middle }
        }
        guard low > 0, offset < units[low - 1].header.end, offset >= units[low - 1].header.dieOffset else { return nil }
        return low - 1
    }
}
