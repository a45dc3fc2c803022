public import CElfutils

#if canImport(Glibc)
import Glibc
#endif

/// Why a relocatable object (a kernel module's `.ko`) cannot be laid out: what was wrong and what to do.
public struct RelocationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A relocatable ELF object (`ET_REL`, a kernel module's `.ko`) placed at fixed addresses with its
/// relocations applied, so code and DWARF read as they do in a linked vmlinux (Docs/modules.md).
///
/// A `.ko` has no load addresses: every section starts at 0, calls to the kcov callbacks are
/// `R_X86_64_PLT32` relocations against undefined symbols, and its DWARF refers to code and to
/// other debug sections through `R_X86_64_64` / `R_X86_64_32` relocations. This lays the
/// allocated sections (`SHF_ALLOC`) one after another from ``base`` in section-header order, each
/// at its alignment — the same addresses for the same file every time — gives every undefined
/// symbol its own 16-byte slot after them (so a call to `__sanitizer_cov_trace_pc` has a target
/// that names it), and applies the `SHT_RELA` relocations of code and debug sections to private
/// copies of their bytes. Non-allocated sections (the DWARF) keep address 0, so offsets between
/// debug sections stay offsets.
///
/// Relocation types applied (x86-64 psABI): `R_X86_64_64` (1), `PC32` (2), `PLT32` (4), `32` (10),
/// `32S` (11), `PC64` (24); others are left as they are in the file and counted in
/// ``skippedRelocations``. Owns the copies, released once when it goes away; the ELF handle stays
/// the caller's and must outlive it only while ``bytes(ofSection:)`` results are used.
public final class RelocatedObject {
    /// Where a `.ko`'s first section goes when the caller names no base: clear of address 0, which
    /// symbol tables use for "no address".
    public static let defaultBase: UInt64 = 0x1000_0000
    /// Where the first allocated section starts.
    public let base: UInt64
    /// Section index to its address (allocated sections only).
    public let sectionAddresses: [Int: UInt64]
    /// Allocated sections by name: index, address and size (the first of a name wins).
    public let sections: [String: (index: Int, address: UInt64, size: UInt64)]
    /// Undefined symbols (the kernel's functions the module calls) by name, each at its own slot.
    public let undefinedSymbols: [String: UInt64]
    /// Relocations of a type not listed above, left unapplied.
    public let skippedRelocations: Int
    private let relocated: [Int: UnsafeMutableRawBufferPointer]

    /// Lays out `elf` (which must be `ET_REL`) from `base` and applies its relocations.
    ///
    /// Throws when the object is not relocatable, a relocation section is unreadable, or a
    /// relocation points outside its section or names a symbol the table lacks (a corrupt file).
    public init(elf: OpaquePointer, base: UInt64) throws(RelocationError) {
        var header = GElf_Ehdr()
        guard gelf_getehdr(elf, &header) != nil, header.e_type == UInt16(ET_REL) else {
            throw RelocationError("not a relocatable object (ET_REL)")
        }
        self.base = base
        var byIndex: [Int: ELFSection] = [:]
        var cursor = base
        var addresses: [Int: UInt64] = [:]
        var sections: [String: (index: Int, address: UInt64, size: UInt64)] = [:]
        for section in ELFSections(elf) {
            let sectionHeader = section.header
            let index = section.index
            byIndex[index] = section
            guard sectionHeader.sh_flags & UInt64(SHF_ALLOC) != 0 else { continue }
            let alignment = max(sectionHeader.sh_addralign, 1)
            let (aligned, overflow) = Self.align(cursor, alignment)
            let (end, endOverflow) = aligned.addingReportingOverflow(sectionHeader.sh_size)
            guard !overflow, !endOverflow else { throw RelocationError("section sizes or alignments run past the address space: a corrupt object") }
            addresses[index] = aligned
            cursor = end
            if let name = section.name.map({ String(cString: $0) }), sections[name] == nil {
                sections[name] = (index, aligned, sectionHeader.sh_size)
            }
        }
        sectionAddresses = addresses
        self.sections = sections

        // The symbol table, with each symbol's value in the layout.
        var symbolValues: [UInt64] = []
        var undefined: [String: UInt64] = [:]
        (cursor, _) = Self.align(cursor, 16)
        if let (table, tableHeader) = Self.symbolTable(elf), tableHeader.sh_entsize > 0, let data = elf_getdata(table, nil) {
            let count = Int32(clamping: tableHeader.sh_size / tableHeader.sh_entsize)
            symbolValues.reserveCapacity(Int(count))
            for index in 0..<count {
                var symbol = GElf_Sym()
                guard gelf_getsym(data, index, &symbol) != nil else { symbolValues.append(0); continue }
                let sectionIndex = Int(symbol.st_shndx)
                if sectionIndex == Int(SHN_UNDEF) {
                    guard index > 0, let raw = elf_strptr(elf, Int(tableHeader.sh_link), Int(symbol.st_name)), raw.pointee != 0 else {
                        symbolValues.append(0)
                        continue
                    }
                    let name = String(cString: raw)
                    if let slot = undefined[name] {
                        symbolValues.append(slot)
                    } else {
                        undefined[name] = cursor
                        symbolValues.append(cursor)
                        cursor &+= 16
                    }
                } else if sectionIndex == Int(SHN_ABS) || sectionIndex >= Int(SHN_LORESERVE) {
                    symbolValues.append(symbol.st_value)
                } else {
                    symbolValues.append((addresses[sectionIndex] ?? 0) &+ symbol.st_value)
                }
            }
        }
        undefinedSymbols = undefined

        // Each RELA section's target, copied and relocated.
        var copies: [Int: UnsafeMutableRawBufferPointer] = [:]
        var skipped = 0
        do throws(RelocationError) {
            for relocationSection in ELFSections(elf) {
                let relocationHeader = relocationSection.header
                guard relocationHeader.sh_type == UInt32(SHT_RELA), relocationHeader.sh_entsize > 0 else { continue }
                let target = Int(relocationHeader.sh_info)
                guard let targetEntry = byIndex[target], targetEntry.header.sh_type != UInt32(SHT_NOBITS) else { continue }
                let targetHeader = targetEntry.header
                let targetSection = targetEntry.handle
                let targetName = targetEntry.name.map { String(cString: $0) } ?? "section \(target)"
                let isCode = targetHeader.sh_flags & UInt64(SHF_EXECINSTR) != 0
                guard isCode || targetName.hasPrefix(".debug_") else { continue }
                if targetHeader.sh_flags & UInt64(SHF_COMPRESSED) != 0 { _ = elf_compress(targetSection, 0, 0) }
                guard let targetData = elf_getdata(targetSection, nil), let relocations = elf_getdata(relocationSection.handle, nil) else {
                    throw RelocationError("cannot read \(targetName) or its relocations: \(elf_errmsg(-1).map { String(cString: $0) } ?? "libelf error")")
                }
                let bytes: UnsafeMutableRawBufferPointer
                if let existing = copies[target] {
                    bytes = existing
                } else {
                    bytes = .allocate(byteCount: max(targetData.pointee.d_size, 1), alignment: 16)
                    if let source = targetData.pointee.d_buf, targetData.pointee.d_size > 0 {
                        bytes.baseAddress!.copyMemory(from: source, byteCount: targetData.pointee.d_size)
                    }
                    copies[target] = bytes
                }
                let size = UInt64(targetData.pointee.d_size)
                let place = addresses[target] ?? 0
                let count = Int32(clamping: relocationHeader.sh_size / relocationHeader.sh_entsize)
                for index in 0..<count {
                    var relocation = GElf_Rela()
                    guard gelf_getrela(relocations, index, &relocation) != nil else { continue }
                    let type = UInt32(truncatingIfNeeded: relocation.r_info & 0xffff_ffff)
                    let symbolIndex = Int(relocation.r_info >> 32)
                    guard symbolIndex < symbolValues.count else {
                        throw RelocationError("relocation \(index) of \(targetName) names symbol \(symbolIndex), past the symbol table: a corrupt object")
                    }
                    let width: UInt64 = [1, 24].contains(type) ? 8 : 4
                    let offset = relocation.r_offset
                    guard offset <= size, size - offset >= width else {
                        throw RelocationError("relocation \(index) of \(targetName) writes at offset \(offset), past the section's \(size) bytes: a corrupt object")
                    }
                    let value = symbolValues[symbolIndex] &+ UInt64(bitPattern: relocation.r_addend)
                    let at = Int(offset)
                    switch type {
                    case 1: bytes.storeBytes(of: value.littleEndian, toByteOffset: at, as: UInt64.self)
                    case 24: bytes.storeBytes(of: (value &- (place &+ offset)).littleEndian, toByteOffset: at, as: UInt64.self)
                    case 2, 4: bytes.storeBytes(of: UInt32(truncatingIfNeeded: value &- (place &+ offset)).littleEndian, toByteOffset: at, as: UInt32.self)
                    case 10, 11: bytes.storeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian, toByteOffset: at, as: UInt32.self)
                    default: skipped += 1
                    }
                }
            }
        } catch {
            for copy in copies.values { copy.deallocate() }
            throw error
        }
        relocated = copies
        skippedRelocations = skipped
    }

    deinit {
        for copy in relocated.values { copy.deallocate() }
    }

    /// The relocated bytes of section `index`, if it had relocations (code and DWARF); `nil`
    /// means the file's own bytes are final.
    public func bytes(ofSection index: Int) -> UnsafeRawBufferPointer? {
        relocated[index].map { UnsafeRawBufferPointer($0) }
    }

    /// Whether `elf` is a relocatable object (`ET_REL`).
    public static func isRelocatable(_ elf: OpaquePointer) -> Bool {
        var header = GElf_Ehdr()
        return gelf_getehdr(elf, &header) != nil && header.e_type == UInt16(ET_REL)
    }

    private static func symbolTable(_ elf: OpaquePointer) -> (OpaquePointer, GElf_Shdr)? {
        ELFSections(elf).first { $0.header.sh_type == UInt32(SHT_SYMTAB) }.map { ($0.handle, $0.header) }
    }

    private static func align(_ value: UInt64, _ alignment: UInt64) -> (UInt64, Bool) {
        let remainder = value % alignment
        guard remainder != 0 else { return (value, false) }
        return value.addingReportingOverflow(alignment - remainder)
    }
}
