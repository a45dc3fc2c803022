public import CElfutils

#if canImport(Glibc)
import Glibc
#endif

/// One section of an ELF file as libelf gives it.
public struct ELFSection {
    /// libelf's handle (`Elf_Scn *`), for `elf_getdata`, `elf_compress` and the like.
    public let handle: OpaquePointer
    /// Its index in the section header table (`elf_ndxscn`): what symbols' `st_shndx` and
    /// relocation sections' `sh_info` name.
    public let index: Int
    public let header: GElf_Shdr
    /// Its name in the section-header string table; `nil` when the table or the name cannot be
    /// read (a corrupt file).
    public let name: UnsafePointer<CChar>?

    /// Whether it is named `name` (compared as bytes, no string made).
    public func isNamed(_ name: String) -> Bool {
        guard let own = self.name else { return false }
        return name.withCString { strcmp(own, $0) == 0 }
    }

    /// ``name`` as a string; empty when unknown.
    public var nameText: String { name.map { String(cString: $0) } ?? "" }
}

/// The sections of an ELF file in header-table order (libelf's `elf_nextscn`), each whose header
/// libelf can read (`gelf_getshdr`); one it cannot is left out, as every reader here would skip
/// it. Valid while the `Elf` handle is.
public struct ELFSections: Sequence, IteratorProtocol {
    private let elf: OpaquePointer
    private var upcoming: OpaquePointer?
    /// The section-header string table's index, when `elf_getshdrstrndx` finds it.
    private let names: Int?

    public init(_ elf: OpaquePointer) {
        self.elf = elf
        upcoming = elf_nextscn(elf, nil)
        var names = 0
        self.names = elf_getshdrstrndx(elf, &names) == 0 ? names : nil
    }

    public mutating func next() -> ELFSection? {
        while let current = upcoming {
            upcoming = elf_nextscn(elf, current)
            var header = GElf_Shdr()
            guard gelf_getshdr(current, &header) != nil else { continue }
            return ELFSection(
                handle: current, index: elf_ndxscn(current), header: header, name: names.flatMap { elf_strptr(elf, $0, Int(header.sh_name)) })
        }
        return nil
    }
}
