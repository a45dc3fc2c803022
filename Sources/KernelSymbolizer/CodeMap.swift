import CElfutils
import RelocatableObject

/// What the ELF headers say about code: the executable sections (a PC outside them is no code of
/// this image), and the symbols that name a function where the DWARF names none (assembly), picked
/// the way addr2line picks them.
struct CodeMap {
    private struct Section {
        var start: UInt64
        var end: UInt64
        var index: Int
    }

    private struct Symbol {
        var address: UInt64
        var size: UInt64
        var section: Int
        var isFunction: Bool
        /// Into libelf's mapping of the string table, valid while the ELF handle is open.
        var name: UnsafePointer<CChar>
        /// The `STT_FILE` symbol binutils attributes it to, if any.
        var file: UnsafePointer<CChar>?
    }

    private var sections: [Section] = []
    private var symbols: [Symbol] = []

    /// Reads `elf`'s code sections and symbols; for a relocatable object, at `relocated`'s layout.
    init(_ elf: OpaquePointer, relocated: RelocatedObject? = nil) {
        var symbolTable: (section: OpaquePointer, header: GElf_Shdr)?
        for section in ELFSections(elf) {
            let header = section.header
            let code = UInt64(SHF_ALLOC | SHF_EXECINSTR)
            if header.sh_flags & code == code, header.sh_size > 0 {
                let start = relocated?.sectionAddresses[section.index] ?? header.sh_addr
                sections.append(Section(start: start, end: saturatingEnd(start, header.sh_size), index: section.index))
            }
            if header.sh_type == UInt32(SHT_SYMTAB) || (header.sh_type == UInt32(SHT_DYNSYM) && symbolTable == nil) {
                symbolTable = (section.handle, header)
            }
        }
        sections.sort { $0.start < $1.start }
        if let (table, header) = symbolTable { readSymbols(elf, table, header, relocated: relocated) }
    }

    private mutating func readSymbols(_ elf: OpaquePointer, _ table: OpaquePointer, _ header: GElf_Shdr, relocated: RelocatedObject?) {
        guard header.sh_entsize > 0, let data = elf_getdata(table, nil) else { return }
        let codeSections = Set(sections.map(\.index))
        // A symbol's file is the last STT_FILE before it, for a local symbol, or for a global one
        // when no file symbol followed another symbol before it (binutils' rule).
        var file: UnsafePointer<CChar>?
        var symbolSeen = false
        var fileAfterSymbol = false
        // Entry 0 is the null symbol.
        for index in 1..<max(1, Int32(clamping: header.sh_size / header.sh_entsize)) {
            var symbol = GElf_Sym()
            guard gelf_getsym(data, index, &symbol) != nil else { continue }
            let type = Int32(symbol.st_info & 0xf)
            let name = UnsafePointer(elf_strptr(elf, Int(header.sh_link), Int(symbol.st_name)))
            if type == STT_FILE {
                file = name
                fileAfterSymbol = fileAfterSymbol || symbolSeen
                continue
            }
            symbolSeen = true
            guard codeSections.contains(Int(symbol.st_shndx)), ![STT_OBJECT, STT_SECTION, STT_COMMON, STT_TLS].contains(type) else { continue }
            // Local hidden zero-size labels (annobin's) are no functions, as binutils decides.
            let local = symbol.st_info >> 4 == UInt8(STB_LOCAL)
            if type == STT_NOTYPE, symbol.st_size == 0, local, Int32(symbol.st_other & 0x3) == STV_HIDDEN { continue }
            guard let name, name.pointee != 0 else { continue }
            // A relocatable object's symbol values are offsets into their sections.
            let address = relocated.map { ($0.sectionAddresses[Int(symbol.st_shndx)] ?? 0) &+ symbol.st_value } ?? symbol.st_value
            symbols.append(Symbol(
                address: address, size: symbol.st_size, section: Int(symbol.st_shndx), isFunction: type == STT_FUNC,
                name: name, file: local || !fileAfterSymbol ? file : nil))
        }
        // Stable, so equal addresses keep symbol-table order.
        let order = symbols.indices.sorted { (symbols[$0].address, $0) < (symbols[$1].address, $1) }
        symbols = order.map { symbols[$0] }
    }

    private func section(containing pc: UInt64) -> Section? {
        var low = 0
        var high = sections.count
        while low < high {
            let middle = (low + high) / 2
            if sections[middle].start <= pc { low = middle + 1 } else { high = middle }
        }
        guard low > 0, pc < sections[low - 1].end else { return nil }
        return sections[low - 1]
    }

    /// Whether `pc` is in an executable section.
    func isCode(_ pc: UInt64) -> Bool { section(containing: pc) != nil }

    /// The symbol addr2line names `pc` after when the DWARF has no function there, with the source
    /// file its `STT_FILE` symbol names: the nearest symbol at or below `pc` in its section; at one
    /// address, one that reaches `pc` (a function rather than a label), then the larger.
    ///
    /// addr2line keeps its last answer while later PCs fall inside it, so in a batch it can name an
    /// assembly label's PC after the routine a previous PC was in; this answer is addr2line's for
    /// the PC alone.
    func function(at pc: UInt64) -> (name: String, file: String?)? {
        guard let section = section(containing: pc) else { return nil }
        var low = 0
        var high = symbols.count
        while low < high {
            let middle = (low + high) / 2
            if symbols[middle].address <= pc { low = middle + 1 } else { high = middle }
        }
        guard low > 0, symbols[low - 1].address >= section.start else { return nil }
        let address = symbols[low - 1].address
        var first = low - 1
        while first > 0, symbols[first - 1].address == address { first -= 1 }
        let candidates = symbols[first..<low].filter { $0.section == section.index }
        guard var best = candidates.first else { return nil }
        for candidate in candidates.dropFirst() where isBetter(candidate, than: best, at: pc) { best = candidate }
        return (String(cString: best.name), best.file.map { String(cString: $0) })
    }

    private func isBetter(_ candidate: Symbol, than best: Symbol, at pc: UInt64) -> Bool {
        func reaches(_ symbol: Symbol) -> Bool { pc < saturatingEnd(symbol.address, max(symbol.size, 1)) }
        guard reaches(best) else { return candidate.size > best.size }
        guard reaches(candidate) else { return false }
        if candidate.isFunction != best.isFunction { return candidate.isFunction }
        return candidate.size > best.size
    }
}

/// `start + size`, or the top of the address space for a (malformed) range past it.
private func saturatingEnd(_ start: UInt64, _ size: UInt64) -> UInt64 {
    let (end, overflow) = start.addingReportingOverflow(size)
    return overflow ? .max : end
}
