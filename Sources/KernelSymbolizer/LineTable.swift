/// One row of a line table (DWARF 5 §6.2.2): the state machine's registers when a row was
/// appended. Values past 32 bits are cut to their low 32 (no compiler writes such lines).
struct LineRow {
    var address: UInt64
    var file: UInt32
    var line: UInt32
    var column: UInt32
    var discriminator: UInt32
    var endSequence: Bool
}

/// A unit's line-number program (DWARF 5 §6.2), versions 2 to 5: its header's file table and its
/// rows, sorted by address the way libdw sorts them (at one address an end of sequence first,
/// then the rows in program order), so the row of a PC is the last one at or below it; or, for a
/// batch, that row of each of its PCs found as the program runs (``rows(covering:)``).
struct LineTable {
    /// A file entry: its directory (nil when the directory is unknown, as for DWARF 4's directory 0
    /// of a unit without `DW_AT_comp_dir`) and its name, both in the mapped sections.
    struct FileEntry {
        var directory: UnsafePointer<CChar>?
        var name: UnsafePointer<CChar>?
    }

    private(set) var files: [FileEntry] = []
    private(set) var rows: [LineRow] = []
    /// Where the program's opcodes are and how its state machine reads them, for
    /// ``rows(covering:)``.
    private var program: ByteReader
    private var machine: StateMachineParameters

    /// Reads the program at `offset` of `.debug_line`. `compilationDirectory` is the unit's
    /// `DW_AT_comp_dir`, directory 0 before DWARF 5 (§6.2.4 item 11). With `rows: false` only the
    /// file table is read (for a declaration's file in another unit, or for a batch that asks
    /// ``rows(covering:)`` instead).
    init(sections: DebugSections, offset: UInt64, compilationDirectory: UnsafePointer<CChar>?, rows readRows: Bool = true) throws(DWARFError) {
        let line = sections.line
        guard offset < UInt64(line.count) else {
            throw DWARFError(section: .line, offset: Int(clamping: offset), problem: "DW_AT_stmt_list points past the end of the section (\(line.count) bytes)")
        }
        var reader = line.reader(at: Int(offset))
        let (length, is64) = try reader.initialLength()
        guard length <= UInt64(line.count - reader.offset) else {
            throw reader.error("a line program of \(length) bytes that runs past the end of the section", at: Int(offset))
        }
        let unitEnd = reader.offset + Int(length)
        reader = line.reader(at: reader.offset, end: unitEnd)
        let versionOffset = reader.offset
        let version = try reader.u16()
        guard (2...5).contains(version) else { throw reader.error("line table version \(version) (2 to 5 are known)", at: versionOffset) }
        var addressSize = 8
        if version >= 5 {
            addressSize = Int(try reader.u8())
            _ = try reader.u8()  // segment_selector_size
        }
        let headerLength = try reader.sectionOffset(is64: is64)
        guard headerLength <= UInt64(unitEnd - reader.offset) else { throw reader.error("a header length of \(headerLength) past the end of the line program") }
        let programStart = reader.offset + Int(headerLength)
        let minimumInstructionLength = UInt64(try reader.u8())
        let maximumOperations = version >= 4 ? UInt64(try reader.u8()) : 1
        guard maximumOperations > 0 else { throw reader.error("maximum_operations_per_instruction is 0", at: reader.offset - 1) }
        let defaultIsStatement = try reader.u8() != 0
        _ = defaultIsStatement
        let lineBase = Int64(Int8(bitPattern: try reader.u8()))
        let lineRange = UInt64(try reader.u8())
        guard lineRange > 0 else { throw reader.error("line_range is 0", at: reader.offset - 1) }
        let opcodeBase = try reader.u8()
        guard opcodeBase > 0 else { throw reader.error("opcode_base is 0", at: reader.offset - 1) }
        let standardLengths = reader.offset
        try reader.skip(Int(opcodeBase) - 1)
        let format = FormFormat(addressSize: addressSize, is64: is64, version: version)
        if version >= 5 {
            let directories = try Self.entries(&reader, sections: sections, format: format)
            let names = try Self.entries(&reader, sections: sections, format: format)
            files = names.map { entry in
                FileEntry(directory: entry.directory < directories.count ? directories[entry.directory].name : nil, name: entry.name)
            }
        } else {
            var directories: [UnsafePointer<CChar>?] = [compilationDirectory]
            while true {
                let directory = try reader.cString()
                if directory.pointee == 0 { break }
                directories.append(directory)
            }
            // File 0 has no entry before DWARF 5: rows name files from 1.
            files = [FileEntry(directory: nil, name: nil)]
            while true {
                let name = try reader.cString()
                if name.pointee == 0 { break }
                let directory = try reader.ulebCount()
                _ = try reader.uleb()  // modification time
                _ = try reader.uleb()  // length
                files.append(FileEntry(directory: directory < directories.count ? directories[directory] : nil, name: name))
            }
        }
        guard programStart <= unitEnd else { throw reader.error("the line program starts past its end") }
        program = line.reader(at: programStart, end: unitEnd)
        machine = StateMachineParameters(
            minimumInstructionLength: minimumInstructionLength, maximumOperations: maximumOperations, lineBase: lineBase,
            lineRange: lineRange, opcodeBase: opcodeBase, standardLengths: standardLengths, addressSize: addressSize,
            isDWARF5: version >= 5)
        guard readRows else { return }
        var collected = CollectedRows()
        // gcc's programs take about four bytes a row; the array grows where they take fewer.
        collected.rows.reserveCapacity((unitEnd - programStart) / 4)
        try Self.run(program, machine, line: line, into: &collected)
        rows = collected.rows
        Self.sortLikeLibdw(&rows)
    }

    /// The row covering each of `pcs` (sorted, lowest first), as ``row(at:)`` would find it in
    /// the sorted rows, or nil: the program is run once and each PC is answered as its rows go by,
    /// so no row is kept and none is sorted.
    func rows(covering pcs: [UInt64]) throws(DWARFError) -> [LineRow?] {
        var covering = CoveringRows(pcs)
        try Self.run(program, machine, line: program.bytes, into: &covering)
        return covering.finish()
    }

    private struct StateMachineParameters {
        var minimumInstructionLength: UInt64
        var maximumOperations: UInt64
        var lineBase: Int64
        var lineRange: UInt64
        var opcodeBase: UInt8
        var standardLengths: Int
        var addressSize: Int
        var isDWARF5: Bool
    }

    /// A DWARF 5 directory or file-name table (§6.2.4 items 13–20): its entry format, then the
    /// entries; only `DW_LNCT_path` and `DW_LNCT_directory_index` are kept.
    private static func entries(_ reader: inout ByteReader, sections: DebugSections, format: FormFormat) throws(DWARFError)
        -> [(name: UnsafePointer<CChar>?, directory: Int)]
    {
        let formatCount = Int(try reader.u8())
        var contents: [(type: UInt64, form: UInt64)] = []
        for _ in 0..<formatCount { contents.append((try reader.uleb(), try reader.uleb())) }
        let count = try reader.ulebCount()
        // Each entry takes a byte at least, unless it has no fields: no count can exceed the bytes left.
        guard formatCount == 0 || count <= reader.end - reader.offset else { throw reader.error("\(count) entries in a table of \(reader.end - reader.offset) bytes") }
        var result: [(name: UnsafePointer<CChar>?, directory: Int)] = []
        result.reserveCapacity(formatCount == 0 ? 0 : count)
        for _ in 0..<(formatCount == 0 ? 0 : count) {
            var entry: (name: UnsafePointer<CChar>?, directory: Int) = (nil, 0)
            for (type, form) in contents {
                let formOffset = reader.offset
                switch (type, form) {
                case (LineContent.path, Form.string): entry.name = try reader.cString()
                case (LineContent.path, Form.lineStrp): entry.name = try sections.lineStr.string(at: try reader.sectionOffset(is64: format.is64))
                case (LineContent.path, Form.strp): entry.name = try sections.str.string(at: try reader.sectionOffset(is64: format.is64))
                case (LineContent.path, _): throw reader.error("a file name of form 0x\(String(form, radix: 16)) (string, line_strp or strp expected)", at: formOffset)
                case (LineContent.directoryIndex, Form.data1): entry.directory = Int(try reader.u8())
                case (LineContent.directoryIndex, Form.data2): entry.directory = Int(try reader.u16())
                case (LineContent.directoryIndex, Form.udata): entry.directory = Int(clamping: try reader.uleb())
                default: try skipForm(form, &reader, format)
                }
            }
            result.append(entry)
        }
        return result
    }

    /// Runs the line-number program (§6.2.5), giving its rows to `rows` in program order.
    ///
    /// One loop with the registers in locals (no nested functions: a closure over them would
    /// cost an exclusivity check per row).
    private static func run<Rows: LineRowConsumer>(_ program: ByteReader, _ parameters: StateMachineParameters, line: SectionBytes, into rows: inout Rows) throws(DWARFError) {
        // A local cursor, which the compiler keeps in registers.
        var reader = program
        var address: UInt64 = 0
        var file: UInt32 = 1
        var column: UInt32 = 0
        var discriminator: UInt32 = 0
        var lineRegister: Int64 = 1
        var operationIndex: UInt64 = 0
        let opcodeBase = parameters.opcodeBase
        let lineRange = parameters.lineRange
        let lineBase = parameters.lineBase
        let minimumLength = parameters.minimumInstructionLength
        let maximumOperations = parameters.maximumOperations
        let constAddPC = UInt64(255 - opcodeBase) / lineRange

        while !reader.isAtEnd {
            let opcode = try reader.u8()
            var operations: UInt64 = 0
            var emit = false
            var endSequence = false
            if opcode >= opcodeBase {
                let adjusted = UInt64(opcode - opcodeBase)
                operations = adjusted / lineRange
                lineRegister &+= lineBase &+ Int64(adjusted % lineRange)
                emit = true
            } else {
                switch opcode {
                case 0:
                    let length = try reader.uleb()
                    guard length > 0 else { continue }
                    guard length <= UInt64(reader.end - reader.offset) else { throw reader.error("an extended opcode of \(length) bytes past the end of the line program") }
                    let next = reader.offset + Int(length)
                    switch try reader.u8() {
                    case 1:  // DW_LNE_end_sequence
                        emit = true
                        endSequence = true
                    case 2:  // DW_LNE_set_address
                        address = try reader.unsigned(size: min(Int(length) - 1, 8))
                        operationIndex = 0
                    case 4:  // DW_LNE_set_discriminator
                        discriminator = UInt32(truncatingIfNeeded: try reader.uleb())
                    default:  // DW_LNE_define_file (DWARF 2–4, unused by compilers) and vendor opcodes
                        break
                    }
                    reader.offset = next
                case 1: emit = true  // DW_LNS_copy
                case 2: operations = try reader.uleb()  // DW_LNS_advance_pc
                case 3: lineRegister &+= try reader.sleb()  // DW_LNS_advance_line
                case 4: file = UInt32(truncatingIfNeeded: try reader.uleb())  // DW_LNS_set_file
                case 5: column = UInt32(truncatingIfNeeded: try reader.uleb())  // DW_LNS_set_column
                case 6, 7, 10, 11: break  // negate_stmt, set_basic_block, prologue_end, epilogue_begin
                case 8: operations = constAddPC  // DW_LNS_const_add_pc
                case 9:  // DW_LNS_fixed_advance_pc
                    address &+= UInt64(try reader.u16())
                    operationIndex = 0
                default:  // DW_LNS_set_isa (12) and opcodes this reader does not know: skip their operands
                    var operands = line.reader(at: parameters.standardLengths + Int(opcode) - 1)
                    let count = try operands.u8()
                    for _ in 0..<count { _ = try reader.uleb() }
                }
            }
            if operations != 0 {
                if maximumOperations == 1 {
                    address &+= minimumLength &* operations
                } else {
                    let total = operationIndex &+ operations
                    address &+= minimumLength &* (total / maximumOperations)
                    operationIndex = total % maximumOperations
                }
            }
            guard emit else { continue }
            rows.consume(LineRow(
                address: address, file: file, line: UInt32(truncatingIfNeeded: lineRegister), column: column, discriminator: discriminator,
                endSequence: endSequence))
            discriminator = 0
            if endSequence {
                address = 0
                file = 1
                column = 0
                lineRegister = 1
                operationIndex = 0
            }
        }
    }

    /// Orders rows by address; at one address an end of sequence comes before other rows, which
    /// keep program order. Sequences usually follow one another in address order, so a check
    /// replaces the sort; sequences that interleave are merged by a stable sort.
    private static func sortLikeLibdw(_ rows: inout [LineRow]) {
        func inOrder(_ first: LineRow, _ second: LineRow) -> Bool {
            first.address < second.address || (first.address == second.address && (first.endSequence || !second.endSequence))
        }
        if rows.indices.dropFirst().allSatisfy({ inOrder(rows[$0 - 1], rows[$0]) }) { return }
        // Sort whole sequences by their first address first (cheap), then check again.
        var sequences: [Range<Int>] = []
        var start = 0
        for index in rows.indices where rows[index].endSequence {
            sequences.append(start..<index + 1)
            start = index + 1
        }
        if start < rows.count { sequences.append(start..<rows.count) }
        let bySequence = sequences.enumerated().sorted { ($0.element.lowerBound == $0.element.upperBound ? 0 : rows[$0.element.lowerBound].address, $0.offset) < ($1.element.lowerBound == $1.element.upperBound ? 0 : rows[$1.element.lowerBound].address, $1.offset) }
            .flatMap { rows[$0.element] }
        if bySequence.indices.dropFirst().allSatisfy({ inOrder(bySequence[$0 - 1], bySequence[$0]) }) {
            rows = bySequence
            return
        }
        rows = rows.enumerated().sorted { first, second in
            if first.element.address != second.element.address { return first.element.address < second.element.address }
            if first.element.endSequence != second.element.endSequence { return first.element.endSequence }
            return first.offset < second.offset
        }.map(\.element)
    }

    /// The index of the row covering `pc`: the last row at or below it, unless that row ends a
    /// sequence.
    func row(at pc: UInt64) -> Int? {
        var low = 0
        var high = rows.count
        while low < high {
            let middle = (low + high) / 2
            if rows[middle].address <= pc { low = middle + 1 } else { high = middle }
        }
        guard low > 0, !rows[low - 1].endSequence else { return nil }
        return low - 1
    }
}

/// Line-table entry content types (DWARF 5 §7.22, table 7.27).
enum LineContent {
    static let path: UInt64 = 1
    static let directoryIndex: UInt64 = 2
}

/// What receives a line program's rows, in program order.
protocol LineRowConsumer {
    mutating func consume(_ row: LineRow)
}

/// Keeps every row, for sorting.
struct CollectedRows: LineRowConsumer {
    var rows: [LineRow] = []

    @inline(__always)
    mutating func consume(_ row: LineRow) { rows.append(row) }
}

/// Answers sorted PCs as a line program's rows go by, with the answers the sorted rows give: the
/// row of a PC is, among the rows at the highest address at or below it, the last in program
/// order that does not end a sequence (libdw's order puts the end first), and none when every
/// row there ends a sequence.
///
/// A row that is followed in its sequence by a row at a higher address covers at most the PCs
/// between the two, found by a cursor that moves forward with the sequence; any other row (an
/// end of sequence, a row at an end's address, a row followed by a lower address) may cover
/// every PC above it, and is weighed against each PC's answer once the program has run.
struct CoveringRows: LineRowConsumer {
    private let pcs: [UInt64]
    /// Per PC, the best row so far among those whose reach is bounded, and its program index
    /// (-1: none yet).
    private var found: [LineRow]
    private var foundIndex: [Int]
    /// Rows whose reach is not bounded, with their program index.
    private var open: [(row: LineRow, index: Int)] = []
    /// The last row that does not end a sequence, while no row of its sequence has followed it.
    private var pending = LineRow(address: 0, file: 0, line: 0, column: 0, discriminator: 0, endSequence: true)
    private var pendingIndex = -1
    /// The first PC at or above the pending row's address.
    private var cursor = 0
    private var count = 0

    init(_ pcs: [UInt64]) {
        self.pcs = pcs
        found = Array(repeating: pending, count: pcs.count)
        foundIndex = Array(repeating: -1, count: pcs.count)
    }

    @inline(__always)
    mutating func consume(_ row: LineRow) {
        let index = count
        count += 1
        if pendingIndex >= 0 {
            if row.address > pending.address {
                cover(below: row.address)
                if row.endSequence {
                    pendingIndex = -1
                } else {
                    // The cursor is already at the first PC at or above the row.
                    pending = row
                    pendingIndex = index
                    return
                }
            } else if row.address == pending.address && !row.endSequence {
                pending = row
                pendingIndex = index
                return
            } else {
                open.append((pending, pendingIndex))
                pendingIndex = -1
            }
        }
        if row.endSequence {
            open.append((row, index))
            return
        }
        pending = row
        pendingIndex = index
        cursor = pcs.firstIndex(notBelow: row.address)
    }

    /// Gives the pending row to the PCs from the cursor up to `end` (excluded) whose best row so
    /// far is not higher.
    @inline(__always)
    private mutating func cover(below end: UInt64) {
        while cursor < pcs.count, pcs[cursor] < end {
            if foundIndex[cursor] < 0 || found[cursor].address <= pending.address {
                found[cursor] = pending
                foundIndex[cursor] = pendingIndex
            }
            cursor += 1
        }
    }


    /// Each PC's row, once the program has run.
    mutating func finish() -> [LineRow?] {
        if pendingIndex >= 0 { open.append((pending, pendingIndex)) }
        // In libdw's order: by address, an end of sequence first, then program order.
        open.sort { ($0.row.address, $0.row.endSequence ? 0 : 1, $0.index) < ($1.row.address, $1.row.endSequence ? 0 : 1, $1.index) }
        var next = 0
        var last = -1
        var answers: [LineRow?] = []
        answers.reserveCapacity(pcs.count)
        for (position, pc) in pcs.enumerated() {
            while next < open.count, open[next].row.address <= pc {
                last = next
                next += 1
            }
            let bounded: LineRow? = foundIndex[position] >= 0 ? found[position] : nil
            guard last >= 0 else {
                answers.append(bounded)
                continue
            }
            let other = open[last]
            if let bounded, bounded.address > other.row.address || (bounded.address == other.row.address && (other.row.endSequence || foundIndex[position] > other.index)) {
                answers.append(bounded)
            } else {
                answers.append(other.row.endSequence ? nil : other.row)
            }
        }
        return answers
    }
}

extension [UInt64] {
    /// In an array sorted lowest first, the index of the first element at or above `value`
    /// (`count` when there is none).
    func firstIndex(notBelow value: UInt64) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
