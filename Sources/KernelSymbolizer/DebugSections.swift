import CElfutils
import RelocatableObject
#if canImport(Glibc)
import Glibc
#endif

/// The debug sections the reader uses, as bytes: in libelf's read-only mapping of the
/// file, or in libelf's decompressed copy of a compressed section. Valid while the symbolizer is
/// alive; read from several threads at once (nothing writes them).
struct DebugSections: @unchecked Sendable {
    var info = SectionBytes(.info)
    var abbrev = SectionBytes(.abbrev)
    var line = SectionBytes(.line)
    var str = SectionBytes(.str)
    var lineStr = SectionBytes(.lineStr)
    var strOffsets = SectionBytes(.strOffsets)
    var addr = SectionBytes(.addr)
    var ranges = SectionBytes(.ranges)
    var rnglists = SectionBytes(.rnglists)

    /// No sections; set the ones wanted.
    init() {}

    /// Finds the sections of `elf` (opened with `ELF_C_READ_MMAP`: an uncompressed section's
    /// bytes are libelf's mapping of the file). Compressed sections (`SHF_COMPRESSED`, or GNU's
    /// `.zdebug_*`) are decompressed by libelf; one it cannot decompress is an error. For a
    /// relocatable object (a module's `.ko`), the sections its relocations touch are read from
    /// `relocated`'s copies, where the relocations are applied.
    init(elf: OpaquePointer, relocated: RelocatedObject? = nil) throws(DWARFError) {
        for section in ELFSections(elf) {
            let header = section.header
            guard let rawName = section.name else { continue }
            var name = String(cString: rawName)
            let gnuCompressed = name.hasPrefix(".zdebug_")
            if gnuCompressed { name = ".debug_" + name.dropFirst(".zdebug_".count) }
            guard let kind = DebugSection.allCases.first(where: { $0.name == name }), header.sh_type != UInt32(SHT_NOBITS), header.sh_size > 0 else { continue }
            if let copy = relocated?.bytes(ofSection: section.index) {
                set(SectionBytes(kind, base: copy.baseAddress, count: copy.count))
                continue
            }
            if gnuCompressed { _ = elf_compress_gnu(section.handle, 0, 0) } else if header.sh_flags & UInt64(SHF_COMPRESSED) != 0 { _ = elf_compress(section.handle, 0, 0) }
            guard let data = elf_getdata(section.handle, nil), let buffer = data.pointee.d_buf else {
                throw DWARFError(
                    section: kind, offset: 0,
                    problem: "libelf cannot read the section (\(elf_errmsg(-1).map { String(cString: $0) } ?? "unknown error")): the file is truncated or corrupt")
            }
            set(SectionBytes(kind, base: UnsafeRawPointer(buffer), count: Int(clamping: data.pointee.d_size)))
        }
    }

    private mutating func set(_ bytes: SectionBytes) {
        switch bytes.section {
        case .info: info = bytes
        case .abbrev: abbrev = bytes
        case .line: line = bytes
        case .str: str = bytes
        case .lineStr: lineStr = bytes
        case .strOffsets: strOffsets = bytes
        case .addr: addr = bytes
        case .ranges: ranges = bytes
        case .rnglists: rnglists = bytes
        }
    }
}

/// A compilation unit: its header and what its unit DIE says that the rest of the unit needs
/// (DWARF 5 §3.1.1): the base address of its range lists, its line program, its compilation
/// directory, and the bases of its string, address and range-list indexes.
struct CompileUnit {
    var header: UnitHeader
    /// `DW_AT_low_pc` of the unit DIE (0 without): the base of `DW_AT_ranges` offsets.
    var baseAddress: UInt64 = 0
    var lineProgram: UInt64?
    var compilationDirectory: UnsafePointer<CChar>?
    var stringOffsetsBase: UInt64
    var addressBase: UInt64
    var rangeListsBase: UInt64
    /// Whether it is a compilation unit (not a type, partial or skeleton unit).
    var isCompile: Bool = false
    /// The unit DIE's own address ranges.
    var ranges: [(start: UInt64, end: UInt64)] = []

    /// Its bytes in `.debug_info`: about what reading it for a batch costs.
    var size: Int { header.end - header.offset }

    /// Reads the unit DIE of `header`.
    init(_ header: UnitHeader, sections: DebugSections) throws(DWARFError) {
        self.header = header
        // Without the base attributes, each index starts right after the table's header (DWARF 5 §7.26, §7.27, §7.28).
        let tableHeader: UInt64 = header.format.is64 ? 16 : 8
        stringOffsetsBase = tableHeader
        addressBase = tableHeader
        rangeListsBase = header.format.is64 ? 20 : 12
        guard header.unitType == UnitHeader.compile || header.unitType == 0x03 else { return }
        var reader = sections.info.reader(at: header.dieOffset, end: header.end)
        let code = try reader.uleb()
        guard code != 0 else { return }
        let abbreviation = try Self.findAbbreviation(code, sections.abbrev, offset: header.abbreviationOffset)
        isCompile = abbreviation.tag == Tag.compileUnit
        var low: AttributeValue?
        var high: AttributeValue?
        var rangeList: AttributeValue?
        for specification in abbreviation.specifications {
            let value = try readForm(specification.form, implicitConst: specification.implicitConst, &reader, header.format, unitOffset: header.offset)
            switch specification.name {
            case Attribute.lowPC: low = value
            case Attribute.highPC: high = value
            case Attribute.ranges: rangeList = value
            case Attribute.stmtList: lineProgram = value.unsigned ?? { if case .sectionOffset(let offset) = value { offset } else { nil } }()
            case Attribute.compDir: compilationDirectory = try? resolveString(value, sections: sections)
            case Attribute.strOffsetsBase: if case .sectionOffset(let base) = value { stringOffsetsBase = base }
            case Attribute.addrBase: if case .sectionOffset(let base) = value { addressBase = base }
            case Attribute.rnglistsBase: if case .sectionOffset(let base) = value { rangeListsBase = base }
            default: break
            }
        }
        // The base address is read once the index bases are known.
        let lowAddress = try low.flatMap { value throws(DWARFError) in try resolveAddress(value, sections: sections) }
        baseAddress = lowAddress ?? 0
        var starts: [UInt64] = []
        var ends: [UInt64] = []
        try appendRanges(low: lowAddress, high: high, ranges: rangeList, sections: sections, starts: &starts, ends: &ends)
        ranges = Array(zip(starts, ends))
    }

    /// The attributes of abbreviation `code` in the table at `offset`, found by reading the table
    /// up to it (the unit DIE's code is usually the first).
    private static func findAbbreviation(_ code: UInt64, _ abbrev: SectionBytes, offset: UInt64) throws(DWARFError)
        -> (tag: UInt64, specifications: [AttributeSpecification])
    {
        guard offset < UInt64(abbrev.count) else {
            throw DWARFError(section: .abbrev, offset: Int(clamping: offset), problem: "a unit's abbreviation table offset past the end of the section (\(abbrev.count) bytes)")
        }
        var reader = abbrev.reader(at: Int(offset))
        while true {
            let current = try reader.uleb()
            guard current != 0 else { throw reader.error("no abbreviation \(code) in the table at 0x\(String(offset, radix: 16)) for the unit DIE") }
            let tag = try reader.uleb()
            _ = try reader.u8()
            var specifications: [AttributeSpecification] = []
            while true {
                let name = try reader.uleb()
                let form = try reader.uleb()
                let implicitConst = form == Form.implicitConst ? try reader.sleb() : 0
                if name == 0 && form == 0 { break }
                // Only the wanted entry's specifications are kept.
                if current == code { specifications.append(AttributeSpecification(name: name, form: form, implicitConst: implicitConst)) }
            }
            if current == code { return (tag, specifications) }
        }
    }

    /// A string attribute's text, from whichever section its form names; nil for a form kept in
    /// another file.
    func resolveString(_ value: AttributeValue, sections: DebugSections) throws(DWARFError) -> UnsafePointer<CChar>? {
        switch value {
        case .inlineString(let text): return text
        case .stringOffset(let offset): return try sections.str.string(at: offset)
        case .lineStringOffset(let offset): return try sections.lineStr.string(at: offset)
        case .stringIndex(let index):
            let size = UInt64(header.format.offsetSize)
            let (position, overflow) = index.multipliedReportingOverflow(by: size)
            guard !overflow, position <= UInt64(Int.max) - stringOffsetsBase else {
                throw DWARFError(section: .strOffsets, offset: Int(clamping: stringOffsetsBase), problem: "string index \(index) out of range")
            }
            var reader = sections.strOffsets.reader(at: Int(clamping: stringOffsetsBase + position))
            return try sections.str.string(at: try reader.sectionOffset(is64: header.format.is64))
        default: return nil
        }
    }

    /// An address attribute's value: the address itself or entry `index` of `.debug_addr`.
    func resolveAddress(_ value: AttributeValue, sections: DebugSections) throws(DWARFError) -> UInt64? {
        switch value {
        case .address(let address): return address
        case .addressIndex(let index): return try address(at: index, sections: sections)
        default: return nil
        }
    }

    private func address(at index: UInt64, sections: DebugSections) throws(DWARFError) -> UInt64 {
        let size = UInt64(header.format.addressSize)
        let (position, overflow) = index.multipliedReportingOverflow(by: size)
        guard !overflow, position <= UInt64(Int.max) - addressBase else {
            throw DWARFError(section: .addr, offset: Int(clamping: addressBase), problem: "address index \(index) out of range")
        }
        var reader = sections.addr.reader(at: Int(clamping: addressBase + position))
        return try reader.unsigned(size: header.format.addressSize)
    }

    /// Appends each non-empty range [start, end) of a DIE (DWARF 5 §2.17) to `starts` and `ends`: its
    /// `DW_AT_low_pc` (resolved) and `DW_AT_high_pc` (an address, or a length from the low PC),
    /// else its `DW_AT_ranges` list in `.debug_rnglists` (DWARF 5, §2.17.3) or `.debug_ranges`.
    func appendRanges(
        low: UInt64?, high: AttributeValue?, ranges rangeList: AttributeValue?, sections: DebugSections, starts: inout [UInt64], ends: inout [UInt64]
    ) throws(DWARFError) {
        @inline(__always) func body(_ start: UInt64, _ end: UInt64) {
            starts.append(start)
            ends.append(end)
        }
        if let low, let high {
            let end: UInt64? =
                switch high {
                case .constant(let length): low &+ length
                case .signed(let length): low &+ UInt64(bitPattern: length)
                default: try resolveAddress(high, sections: sections)
                }
            if let end {
                if low < end { body(low, end) }
                return
            }
        }
        guard let rangeList else { return }
        if header.format.version >= 5 {
            let offset: UInt64
            switch rangeList {
            case .sectionOffset(let value): offset = value
            case .constant(let value): offset = value
            case .rangeListIndex(let index):
                let size = UInt64(header.format.offsetSize)
                let (position, overflow) = index.multipliedReportingOverflow(by: size)
                guard !overflow, position <= UInt64(Int.max) - rangeListsBase else {
                    throw DWARFError(section: .rnglists, offset: Int(clamping: rangeListsBase), problem: "range list index \(index) out of range")
                }
                var reader = sections.rnglists.reader(at: Int(clamping: rangeListsBase + position))
                offset = rangeListsBase &+ (try reader.sectionOffset(is64: header.format.is64))
            default: return
            }
            try readRangeList(at: offset, sections: sections, starts: &starts, ends: &ends)
        } else {
            guard let offset = rangeList.unsigned ?? { if case .sectionOffset(let value) = rangeList { value } else { nil } }() else { return }
            try readRanges(at: offset, sections: sections, starts: &starts, ends: &ends)
        }
    }

    /// A DWARF 5 range list (§2.17.3, encodings in §7.25).
    private func readRangeList(at offset: UInt64, sections: DebugSections, starts: inout [UInt64], ends: inout [UInt64]) throws(DWARFError) {
        @inline(__always) func body(_ start: UInt64, _ end: UInt64) {
            starts.append(start)
            ends.append(end)
        }
        guard offset < UInt64(sections.rnglists.count) else {
            throw DWARFError(section: .rnglists, offset: Int(clamping: offset), problem: "a range list offset past the end of the section (\(sections.rnglists.count) bytes)")
        }
        var reader = sections.rnglists.reader(at: Int(offset))
        var base = baseAddress
        let size = header.format.addressSize
        while true {
            let entryOffset = reader.offset
            let kind = try reader.u8()
            switch kind {
            case 0: return  // DW_RLE_end_of_list
            case 1: base = try address(at: try reader.uleb(), sections: sections)  // DW_RLE_base_addressx
            case 2:  // DW_RLE_startx_endx
                let start = try address(at: try reader.uleb(), sections: sections)
                let end = try address(at: try reader.uleb(), sections: sections)
                if start < end { body(start, end) }
            case 3:  // DW_RLE_startx_length
                let start = try address(at: try reader.uleb(), sections: sections)
                let length = try reader.uleb()
                if length > 0 { body(start, start &+ length) }
            case 4:  // DW_RLE_offset_pair
                let start = base &+ (try reader.uleb())
                let end = base &+ (try reader.uleb())
                if start < end { body(start, end) }
            case 5: base = try reader.unsigned(size: size)  // DW_RLE_base_address
            case 6:  // DW_RLE_start_end
                let start = try reader.unsigned(size: size)
                let end = try reader.unsigned(size: size)
                if start < end { body(start, end) }
            case 7:  // DW_RLE_start_length
                let start = try reader.unsigned(size: size)
                let length = try reader.uleb()
                if length > 0 { body(start, start &+ length) }
            default: throw reader.error("range list entry kind \(kind) (0 to 7 exist)", at: entryOffset)
            }
        }
    }

    /// A DWARF 2–4 range list (DWARF 4 §2.17.3): address pairs, a base selection entry, (0, 0) at the end.
    private func readRanges(at offset: UInt64, sections: DebugSections, starts: inout [UInt64], ends: inout [UInt64]) throws(DWARFError) {
        @inline(__always) func body(_ start: UInt64, _ end: UInt64) {
            starts.append(start)
            ends.append(end)
        }
        guard offset < UInt64(sections.ranges.count) else {
            throw DWARFError(section: .ranges, offset: Int(clamping: offset), problem: "a range list offset past the end of the section (\(sections.ranges.count) bytes)")
        }
        var reader = sections.ranges.reader(at: Int(offset))
        var base = baseAddress
        let size = header.format.addressSize
        let largest: UInt64 = size == 8 ? .max : (1 << UInt64(size * 8)) - 1
        while true {
            let start = try reader.unsigned(size: size)
            let end = try reader.unsigned(size: size)
            if start == 0 && end == 0 { return }
            if start == largest {
                base = end
                continue
            }
            if start < end { body(base &+ start, base &+ end) }
        }
    }
}
