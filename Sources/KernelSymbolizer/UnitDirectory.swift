/// Every unit of `.debug_info` (its header and unit DIE, read when the symbolizer opens) and the
/// addresses each compilation unit covers (its `DW_AT_low_pc`/`high_pc` or `DW_AT_ranges`, which
/// is what addr2line reads too), for finding the unit of a PC. Immutable: shared by the threads
/// of a batch.
final class UnitDirectory: @unchecked Sendable {
    let sections: DebugSections
    /// Every unit, in `.debug_info` order.
    let units: [CompileUnit]
    /// The addresses of compilation units as disjoint segments sorted by start, each with the
    /// first unit (in `.debug_info` order) whose ranges cover it; addresses of no unit have none.
    private let segmentStarts: [UInt64]
    private let segmentEnds: [UInt64]
    private let segmentUnits: [Int32]

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
        // Between two consecutive range boundaries the same ranges cover every address, so each
        // such piece has one owner; neighbouring pieces of one owner are merged.
        ranges.sort { $0.start < $1.start }
        var reach: [UInt64] = []
        var farthest: UInt64 = 0
        for range in ranges {
            farthest = max(farthest, range.end)
            reach.append(farthest)
        }
        let boundaries = Array(Set(ranges.flatMap { [$0.start, $0.end] })).sorted()
        var segmentStarts: [UInt64] = []
        var segmentEnds: [UInt64] = []
        var segmentUnits: [Int32] = []
        for (index, start) in boundaries.enumerated().dropLast() {
            // The first unit among the ranges that contain `start`: a backward scan from the last
            // range starting at or below it, which stops once no earlier range reaches it.
            var low = 0
            var high = ranges.count
            while low < high {
                let middle = (low + high) / 2
                if ranges[middle].start <= start { low = middle + 1 } else { high = middle }
            }
            var owner: Int32?
            var candidate = low - 1
            while candidate >= 0, reach[candidate] > start {
                if ranges[candidate].end > start { owner = min(owner ?? ranges[candidate].unit, ranges[candidate].unit) }
                candidate -= 1
            }
            guard let owner else { continue }
            let end = boundaries[index + 1]
            if let last = segmentEnds.last, last == start, segmentUnits.last == owner {
                segmentEnds[segmentEnds.count - 1] = end
            } else {
                segmentStarts.append(start)
                segmentEnds.append(end)
                segmentUnits.append(owner)
            }
        }
        self.segmentStarts = segmentStarts
        self.segmentEnds = segmentEnds
        self.segmentUnits = segmentUnits
    }

    /// The first compilation unit (in `.debug_info` order) whose ranges contain `pc`.
    func unit(at pc: UInt64) -> Int? {
        var hint = 0
        return unit(at: pc, hint: &hint)
    }

    /// ``unit(at:)``, looking first in the segment `hint` names, and leaving there the segment
    /// `pc` is in: PCs of one unit often come one after another.
    func unit(at pc: UInt64, hint: inout Int) -> Int? {
        if hint < segmentStarts.count, segmentStarts[hint] <= pc, pc < segmentEnds[hint] { return Int(segmentUnits[hint]) }
        var low = 0
        var high = segmentStarts.count
        while low < high {
            let middle = (low + high) / 2
            if segmentStarts[middle] <= pc { low = middle + 1 } else { high = middle }
        }
        guard low > 0, pc < segmentEnds[low - 1] else { return nil }
        hint = low - 1
        return Int(segmentUnits[low - 1])
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
