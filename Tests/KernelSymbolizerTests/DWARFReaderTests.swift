import Foundation
@testable import KernelSymbolizer
import TestSupport
import Testing

/// The symbolizer's own DWARF reader on bytes built by hand (line programs of DWARF 4 and 5,
/// LEB128, abbreviation tables) and on a compiled program's sections corrupted on purpose.
@Suite struct DWARFReaderTests {
    /// Little-endian bytes, built up field by field.
    struct Bytes {
        var data: [UInt8] = []
        mutating func u8(_ value: UInt8) { data.append(value) }
        mutating func u16(_ value: UInt16) { data += withUnsafeBytes(of: value.littleEndian, Array.init) }
        mutating func u32(_ value: UInt32) { data += withUnsafeBytes(of: value.littleEndian, Array.init) }
        mutating func u64(_ value: UInt64) { data += withUnsafeBytes(of: value.littleEndian, Array.init) }
        mutating func uleb(_ value: UInt64) {
            var rest = value
            repeat {
                let byte = UInt8(rest & 0x7f)
                rest >>= 7
                data.append(rest == 0 ? byte : byte | 0x80)
            } while rest != 0
        }
        mutating func sleb(_ value: Int64) {
            var rest = value
            while true {
                let byte = UInt8(rest & 0x7f)
                rest >>= 7
                if (rest == 0 && byte & 0x40 == 0) || (rest == -1 && byte & 0x40 != 0) {
                    data.append(byte)
                    return
                }
                data.append(byte | 0x80)
            }
        }
        mutating func string(_ text: String) { data += Array(text.utf8) + [0] }
    }

    /// The line program body shared by both versions: two sequences written in reverse address
    /// order, a discriminator, a file switch, a row and an end of sequence at one address.
    static func program(into bytes: inout Bytes) {
        // Sequence at 0x2000: line 10 (file 1), special opcode to 0x2004 line 11, end at 0x2008.
        bytes.u8(0); bytes.uleb(9); bytes.u8(2); bytes.u64(0x2000)  // DW_LNE_set_address
        bytes.u8(3); bytes.sleb(9)  // advance_line to 10
        bytes.u8(1)  // copy
        // Special opcode: address += 4, line += 1 (opcode_base 13, line_base -5, line_range 14).
        bytes.u8(13 + (1 + 5) + 14 * 4)
        bytes.u8(2); bytes.uleb(4)  // advance_pc to 0x2008
        bytes.u8(0); bytes.uleb(1); bytes.u8(1)  // end_sequence
        // Sequence at 0x1000: line 1 column 7 in file 2 with discriminator 3, then a row and the
        // end of the sequence both at 0x1010 (libdw puts the end first).
        bytes.u8(0); bytes.uleb(9); bytes.u8(2); bytes.u64(0x1000)
        bytes.u8(4); bytes.uleb(2)  // set_file 2
        bytes.u8(5); bytes.uleb(7)  // set_column 7
        bytes.u8(0); bytes.uleb(2); bytes.u8(4); bytes.uleb(3)  // set_discriminator 3
        bytes.u8(1)  // copy
        bytes.u8(9); bytes.u16(0x10)  // fixed_advance_pc to 0x1010
        bytes.u8(3); bytes.sleb(41)  // line 42
        bytes.u8(1)
        bytes.u8(0); bytes.uleb(1); bytes.u8(1)
    }

    static func standardOpcodeLengths(into bytes: inout Bytes) {
        for length: UInt8 in [0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1] { bytes.u8(length) }
    }

    /// A program whose rows libdw's order must rearrange: a sequence written inside another's
    /// addresses, an address set back inside a sequence, a row at its sequence's end address, and
    /// rows at the address where another sequence ends.
    static func tangledProgram(into bytes: inout Bytes) {
        func setAddress(_ address: UInt64) { bytes.u8(0); bytes.uleb(9); bytes.u8(2); bytes.u64(address) }
        func advance(_ delta: UInt64) { bytes.u8(2); bytes.uleb(delta) }
        func line(_ delta: Int64) { bytes.u8(3); bytes.sleb(delta) }
        func copy() { bytes.u8(1) }
        func end() { bytes.u8(0); bytes.uleb(1); bytes.u8(1) }
        // [0x1000, 0x1040): lines 2 and 3, then back to 0x1008 for line 4, on to 0x1030 (line 5).
        setAddress(0x1000); line(1); copy(); advance(0x10); line(1); copy()
        setAddress(0x1008); line(1); copy(); advance(0x28); line(1); copy(); advance(0x10); end()
        // [0x1010, 0x1020) inside it: line 20, and line 21 at its end address.
        setAddress(0x1010); line(19); copy(); advance(0x10); end()
        setAddress(0x1020); line(20); copy(); end()
        // [0x0ff0, 0x1000) ends where the first begins; [0x1040, 0x1050) begins where it ends.
        setAddress(0x0ff0); line(30); copy(); advance(0x10); end()
        setAddress(0x1040); line(40); copy(); copy(); advance(0x10); end()
        // A sequence the program ends in, without its end: line 50 from 0x2000 on.
        setAddress(0x2000); line(49); copy()
    }

    /// A DWARF 4 line program: include directory "include", files "a.c" (directory 0, the unit's)
    /// and "b.h" (directory 1).
    static func version4(program body: (inout Bytes) -> Void = program) -> [UInt8] {
        var header = Bytes()
        header.u8(1)  // minimum_instruction_length
        header.u8(1)  // maximum_operations_per_instruction
        header.u8(1)  // default_is_stmt
        header.u8(UInt8(bitPattern: -5))  // line_base
        header.u8(14)  // line_range
        header.u8(13)  // opcode_base
        standardOpcodeLengths(into: &header)
        header.string("include"); header.u8(0)
        header.string("a.c"); header.uleb(0); header.uleb(0); header.uleb(0)
        header.string("b.h"); header.uleb(1); header.uleb(0); header.uleb(0)
        header.u8(0)
        return wrap(version: 4, header: header, extra: [], program: body)
    }

    /// A DWARF 5 line program: directories "/src" and "include" (`DW_FORM_line_strp`), files
    /// "a.c" (directory 0) in entries 0 and 1 and "b.h" (directory 1, `DW_FORM_string`) in entry 2.
    static func version5(lineStr: inout Bytes) -> [UInt8] {
        func lineString(_ text: String) -> UInt32 {
            let offset = UInt32(lineStr.data.count)
            lineStr.string(text)
            return offset
        }
        var header = Bytes()
        header.u8(1); header.u8(1); header.u8(1); header.u8(UInt8(bitPattern: -5)); header.u8(14); header.u8(13)
        standardOpcodeLengths(into: &header)
        header.u8(1); header.uleb(1); header.uleb(0x1f)  // directory format: path, line_strp
        header.uleb(2); header.u32(lineString("/src")); header.u32(lineString("include"))
        // File format: path (string), directory index (udata), MD5 (data16), skipped.
        header.u8(3); header.uleb(1); header.uleb(0x08); header.uleb(2); header.uleb(0x0f); header.uleb(5); header.uleb(0x1e)
        header.uleb(3)
        for (name, directory) in [("a.c", 0), ("a.c", 0), ("b.h", 1)] {
            header.string(name); header.uleb(UInt64(directory)); header.data += [UInt8](repeating: 0xab, count: 16)
        }
        return wrap(version: 5, header: header, extra: [8, 0])
    }

    /// unit_length, version, (DWARF 5: address_size, segment_selector_size), header_length, header, program.
    static func wrap(version: UInt16, header: Bytes, extra: [UInt8], program body: (inout Bytes) -> Void = program) -> [UInt8] {
        var program = Bytes()
        body(&program)
        var body = Bytes()
        body.u16(version)
        body.data += extra
        body.u32(UInt32(header.data.count))
        body.data += header.data + program.data
        var unit = Bytes()
        unit.u32(UInt32(body.data.count))
        return unit.data + body.data
    }

    static func withSections<T>(line: [UInt8], lineStr: [UInt8] = [], _ body: (DebugSections) throws -> T) rethrows -> T {
        try line.withUnsafeBytes { lineBytes in
            try lineStr.withUnsafeBytes { lineStrBytes in
                var sections = DebugSections()
                sections.line = SectionBytes(.line, base: lineBytes.baseAddress, count: lineBytes.count)
                sections.lineStr = SectionBytes(.lineStr, base: lineStrBytes.baseAddress, count: lineStrBytes.count)
                return try body(sections)
            }
        }
    }

    static func name(_ entry: LineTable.FileEntry) -> String {
        (entry.directory.map { String(cString: $0) + "/" } ?? "") + (entry.name.map { String(cString: $0) } ?? "-")
    }

    /// The rows both versions give: sorted by address, the end of a sequence before a row at its address.
    static func checkRows(_ table: LineTable) {
        let rows = table.rows.map { [$0.address, UInt64($0.file), UInt64($0.line), UInt64($0.column), UInt64($0.discriminator), $0.endSequence ? 1 : 0] }
        #expect(rows == [
            [0x1000, 2, 1, 7, 3, 0], [0x1010, 2, 42, 7, 0, 1], [0x1010, 2, 42, 7, 0, 0],
            [0x2000, 1, 10, 0, 0, 0], [0x2004, 1, 11, 0, 0, 0], [0x2008, 1, 11, 0, 0, 1],
        ])
        #expect(table.row(at: 0x0fff) == nil)
        #expect(table.row(at: 0x100f).map { table.rows[$0].line } == 1)
        // The row at 0x1010 after the end of its sequence still covers the address (libdw's order).
        #expect(table.row(at: 0x1010).map { table.rows[$0].line } == 42)
        #expect(table.row(at: 0x2006).map { table.rows[$0].line } == 11)
        #expect(table.row(at: 0x2008) == nil, "the end of a sequence covers nothing")
    }

    @Test func lineProgramVersion4() throws {
        let directory = strdup("/build")!
        defer { free(directory) }
        try Self.withSections(line: Self.version4()) { sections in
            let table = try LineTable(sections: sections, offset: 0, compilationDirectory: directory)
            // DWARF 4 numbers files from 1; directory 0 is the unit's compilation directory.
            #expect(table.files.map(Self.name) == ["-", "/build/a.c", "include/b.h"])
            Self.checkRows(table)
        }
    }

    @Test func lineProgramVersion5() throws {
        var lineStr = Bytes()
        let line = Self.version5(lineStr: &lineStr)
        try Self.withSections(line: line, lineStr: lineStr.data) { sections in
            // DWARF 5 numbers files from 0 and directory 0 is in the table (§6.2.4).
            let table = try LineTable(sections: sections, offset: 0, compilationDirectory: nil)
            #expect(table.files.map(Self.name) == ["/src/a.c", "/src/a.c", "include/b.h"])
            Self.checkRows(table)
        }
    }

    /// Every truncation and every single-byte corruption of both programs either reads or fails
    /// with a DWARFError on .debug_line or .debug_line_str: never a trap, never a hang.
    @Test func truncatedOrCorruptLineProgramsFailClearly() throws {
        var lineStr = Bytes()
        let programs = [Self.version4(), Self.version5(lineStr: &lineStr)]
        var failures = 0
        for program in programs {
            var variants: [[UInt8]] = (0..<program.count).map { Array(program[..<$0]) }
            for position in program.indices {
                for value: UInt8 in [0x00, 0xff, 0x80] {
                    var corrupt = program
                    corrupt[position] = value
                    variants.append(corrupt)
                }
            }
            for variant in variants {
                Self.withSections(line: variant, lineStr: lineStr.data) { sections in
                    do throws(DWARFError) {
                        _ = try LineTable(sections: sections, offset: 0, compilationDirectory: nil)
                    } catch {
                        failures += 1
                        #expect(error.section == .line || error.section == .lineStr)
                        #expect(error.message.contains(error.section.name) && error.message.contains("byte 0x"))
                    }
                }
            }
        }
        #expect(failures > 100, "truncations must be reported")
    }

    /// A batch's rows, found as the program runs without keeping or sorting rows, are the rows
    /// the sorted table gives each PC: on both programs, on a tangled one, and on every truncation
    /// and single-byte corruption of them that reads.
    @Test func batchRowsAreTheSortedTablesRows() throws {
        var lineStr = Bytes()
        let programs = [Self.version4(), Self.version5(lineStr: &lineStr), Self.version4(program: Self.tangledProgram)]
        func fields(_ row: LineRow) -> [UInt64] {
            [row.address, UInt64(row.file), UInt64(row.line), UInt64(row.column), UInt64(row.discriminator), row.endSequence ? 1 : 0]
        }
        var compared = 0
        for program in programs {
            var variants = [program] + (0..<program.count).map { Array(program[..<$0]) }
            for position in program.indices {
                for value: UInt8 in [0x00, 0xff, 0x80, 0x01, 0x10] {
                    var corrupt = program
                    corrupt[position] = value
                    variants.append(corrupt)
                }
            }
            for variant in variants {
                Self.withSections(line: variant, lineStr: lineStr.data) { sections in
                    guard let table = try? LineTable(sections: sections, offset: 0, compilationDirectory: nil) else { return }
                    var pcs: Set<UInt64> = [0, 1, .max - 1, .max]
                    for row in table.rows { pcs.formUnion([row.address &- 1, row.address, row.address &+ 1]) }
                    // A PC asked twice has one answer twice.
                    let sorted = pcs.sorted()
                    let batch = [sorted[0]] + sorted
                    do throws(DWARFError) {
                        let found = try table.rows(covering: batch)
                        #expect(found.count == batch.count)
                        for (pc, row) in zip(batch, found) {
                            let expected = table.row(at: pc).map { table.rows[$0] }
                            #expect(row.map(fields) == expected.map(fields), "PC 0x\(String(pc, radix: 16))")
                        }
                        compared += 1
                    } catch {
                        Issue.record("the rows were read, the batch failed: \(error.message)")
                    }
                }
            }
        }
        #expect(compared > 300)
    }

    /// The tangled program's rows in libdw's order, so that the batch test above compares against
    /// rows that really were rearranged.
    @Test func tangledProgramIsRearranged() throws {
        try Self.withSections(line: Self.version4(program: Self.tangledProgram)) { sections in
            let table = try LineTable(sections: sections, offset: 0, compilationDirectory: nil)
            let line = { (pc: UInt64) in table.row(at: pc).map { table.rows[$0].line } }
            #expect(line(0x0ff8) == 31 && line(0x1000) == 2 && line(0x1008) == 4 && line(0x100f) == 4)
            #expect(line(0x1010) == 20 && line(0x101f) == 20 && line(0x1020) == 21 && line(0x102f) == 21)
            #expect(line(0x1030) == 5 && line(0x1040) == 41 && line(0x104f) == 41 && line(0x1050) == nil && line(0x2100) == 50)
        }
    }

    @Test func lineRangeZeroIsAnErrorNotADivisionTrap() throws {
        var program = Self.version4()
        // unit_length 4, version 2, header_length 4, then minimum_instruction_length ... line_range.
        program[4 + 2 + 4 + 4] = 0
        let error = Self.withSections(line: program) { sections in
            #expect(throws: DWARFError.self) { try LineTable(sections: sections, offset: 0, compilationDirectory: nil) }
        }
        #expect(error?.problem == "line_range is 0" && error?.offset == 14)
    }

    @Test func leb128() throws {
        var bytes = Bytes()
        let unsigned: [UInt64] = [0, 1, 127, 128, 624_485, UInt64.max]
        let signed: [Int64] = [0, -1, 63, -64, 64, -123_456, Int64.min, Int64.max]
        for value in unsigned { bytes.uleb(value) }
        for value in signed { bytes.sleb(value) }
        // Eleven continuation bytes: longer than 64 bits, the low 64 kept.
        bytes.data += [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        try bytes.data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            var reader = SectionBytes(.info, base: raw.baseAddress, count: raw.count).reader(at: 0)
            for value in unsigned { #expect(try reader.uleb() == value) }
            for value in signed { #expect(try reader.sleb() == value) }
            #expect(try reader.uleb() == UInt64.max)
            #expect(reader.isAtEnd)
            #expect(throws: DWARFError.self) { try reader.uleb() }
        }
        // A LEB128 whose last byte still says "more" runs off the end.
        [UInt8]([0x80, 0x80]).withUnsafeBytes { raw in
            var reader = SectionBytes(.info, base: raw.baseAddress, count: raw.count).reader(at: 0)
            #expect(throws: DWARFError.self) { try reader.uleb() }
        }
    }

    /// A string section that ends in a NUL needs no search per string; one whose last string
    /// runs to its end is an error for that string only, naming its offset.
    @Test func stringsEndInsideTheirSection() throws {
        try Array("main\0kcov".utf8).withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            let section = SectionBytes(.str, base: raw.baseAddress, count: raw.count)
            #expect(String(cString: try section.string(at: 0)) == "main")
            #expect(String(cString: try section.string(at: 2)) == "in")
            let error = try #require(throws: DWARFError.self) { try section.string(at: 5) }
            #expect(error.section == .str && error.offset == 5 && error.problem.contains("terminating NUL"))
            #expect(throws: DWARFError.self) { try section.string(at: 10) }
        }
        try Array("main\0kcov\0".utf8).withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            let section = SectionBytes(.str, base: raw.baseAddress, count: raw.count)
            #expect(String(cString: try section.string(at: 5)) == "kcov")
            #expect(String(cString: try section.string(at: 9)) == "")
            #expect(throws: DWARFError.self) { try section.string(at: 10) }
        }
    }

    @Test func abbreviationTables() throws {
        var table = Bytes()
        // 1: compile unit with children: name (strp), producer (string).
        table.uleb(1); table.uleb(0x11); table.u8(1); table.uleb(0x03); table.uleb(0x0e); table.uleb(0x25); table.uleb(0x08); table.uleb(0); table.uleb(0)
        // 2: subprogram without children: low_pc (addr), high_pc (data4), decl_file (implicit_const 3).
        table.uleb(2); table.uleb(0x2e); table.u8(0); table.uleb(0x11); table.uleb(0x01); table.uleb(0x12); table.uleb(0x06)
        table.uleb(0x3a); table.uleb(0x21); table.sleb(3); table.uleb(0); table.uleb(0)
        // 300: a lexical block with a sibling (ref4).
        table.uleb(300); table.uleb(0x0b); table.u8(1); table.uleb(0x01); table.uleb(0x13); table.uleb(0); table.uleb(0)
        table.uleb(0)
        let format = FormFormat(addressSize: 8, is64: false, version: 5)
        try table.data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            let abbreviations = try AbbreviationTable(SectionBytes(.abbrev, base: raw.baseAddress, count: raw.count), offset: 0, format: format)
            let unit = try #require(abbreviations.index(of: 1).map { abbreviations.entries[$0] })
            #expect(unit.tag == 0x11 && unit.hasChildren && unit.fixedSize == -1 && unit.kind == .other)
            let function = try #require(abbreviations.index(of: 2).map { abbreviations.entries[$0] })
            #expect(function.kind == .scope && function.fixedSize == 12 && function.sibling == -1)
            #expect(abbreviations.specifications[function.attributes].last?.implicitConst == 3)
            let block = try #require(abbreviations.index(of: 300).map { abbreviations.entries[$0] })
            #expect(block.kind == .lexicalBlock && block.sibling == 0 && block.fixedSize == 4)
            #expect(abbreviations.index(of: 3) == nil)
            // Cut anywhere inside, the table is an error, not a trap.
            for length in 0..<(table.data.count - 1) {
                #expect(throws: DWARFError.self) {
                    try AbbreviationTable(SectionBytes(.abbrev, base: raw.baseAddress, count: length), offset: 0, format: format)
                }
            }
        }
    }

    /// The compiled program with bytes of its debug sections overwritten: each copy opens with a
    /// `.badDebugInfo` error or symbolizes (checked lookups fail with `.badDebugInfo` or answer),
    /// and the unchecked lookups never trap.
    @Test func corruptDebugSectionsAreReportedNeverTrap() throws {
        let program = try CompiledProgram.shared()
        let pcs = try program.codeBytes()
        let original = try Data(contentsOf: URL(fileURLWithPath: program.binary))
        let sections = try runTool("/usr/bin/readelf", ["-S", "-W", program.binary]).split(separator: "\n").compactMap { line -> (name: String, offset: Int, size: Int)? in
            guard let bracket = line.firstIndex(of: "]") else { return nil }
            let fields = line[line.index(after: bracket)...].split(separator: " ")
            guard fields.count >= 5, [".debug_info", ".debug_line", ".debug_abbrev", ".debug_rnglists", ".debug_str_offsets"].contains(String(fields[0])),
                  let offset = Int(fields[3], radix: 16), let size = Int(fields[4], radix: 16)
            else { return nil }
            return (String(fields[0]), offset, size)
        }
        #expect(sections.map(\.name).contains(".debug_info") && sections.map(\.name).contains(".debug_line"))
        var reported = 0
        var answered = 0
        for section in sections {
            for step in 0..<12 {
                var copy = original
                let position = section.offset + section.size * step / 12
                for index in position..<min(position + 4, section.offset + section.size) { copy[index] = 0xff }
                let path = program.directory + "/prog.corrupt"
                try copy.write(to: URL(fileURLWithPath: path))
                do throws(SymbolizerError) {
                    let symbolizer = try KernelSymbolizer(vmlinux: path)
                    _ = symbolizer.frames(for: pcs)
                    _ = try symbolizer.checkedFrames(for: pcs)
                    answered += 1
                } catch {
                    #expect(error.code == .badDebugInfo, "\(section.name)+\(step): \(error)")
                    #expect(error.message.contains("malformed") && error.message.contains("at byte 0x"), "\(error.message)")
                    reported += 1
                }
            }
        }
        #expect(reported > 0, "overwritten headers must be reported")
        #expect(reported + answered == sections.count * 12)
    }

    @Test func unitRunningPastItsSectionIsReportedAtOpen() throws {
        let program = try CompiledProgram.shared()
        let line = try runTool("/usr/bin/readelf", ["-S", "-W", program.binary]).split(separator: "\n").first { $0.contains(" .debug_info ") }
        let fields = try #require(line).split(separator: "]")[1].split(separator: " ")
        let offset = try #require(Int(fields[3], radix: 16))
        var copy = try Data(contentsOf: URL(fileURLWithPath: program.binary))
        // The first unit's 32-bit unit_length: far past the section.
        for index in 0..<4 { copy[offset + index] = [0x00, 0x00, 0x00, 0x7f][index] }
        let path = program.directory + "/prog.longunit"
        try copy.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: SymbolizerError.self) { try KernelSymbolizer(vmlinux: path) }
        #expect(error?.code == .badDebugInfo)
        #expect(error?.message.contains(".debug_info at byte 0x0: a unit of") == true && error?.message.contains("runs past the end of the section") == true, "\(String(describing: error))")
    }
}
