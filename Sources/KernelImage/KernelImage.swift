#if canImport(Glibc)
import Glibc
#endif
import CElfutils
public import RelocatableObject

/// Why a file cannot be read as a kernel image: what was wrong and what to do.
public struct KernelImageError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// A function symbol of the image's symbol table.
public struct FunctionSymbol: Sendable, Hashable {
    public var name: String
    public var address: UInt64
    public var size: UInt64
}

/// One executable section: its load address and its bytes (valid while the image is open).
public struct ExecutableSection {
    public var name: String
    public var address: UInt64
    public var bytes: UnsafeRawBufferPointer
}

/// A vmlinux, or a kernel module's `.ko`, opened with libelf (64-bit x86 ELF): its executable
/// sections and function symbols.
///
/// A `.ko` is relocatable (`ET_REL`): its sections are laid out from `moduleBase` and its
/// relocations applied first (``RelocatedObject``, Docs/modules.md), so its calls to the kcov
/// callbacks have targets — the callbacks, undefined in a module, appear as functions at their
/// slots — and everything below reads it as it reads a vmlinux.
///
/// Owns the descriptor and libelf's read-only mapping of the file, released once when it goes away.
public final class KernelImage {
    public let path: String
    private let fd: Int32
    private let elf: OpaquePointer
    /// For a `.ko`: its layout and relocated bytes (kept alive for ``executableSections``).
    private let relocated: RelocatedObject?
    /// Executable sections with file contents (`SHT_PROGBITS`, `SHF_EXECINSTR`), by address.
    public let executableSections: [ExecutableSection]
    /// Functions (`STT_FUNC`) from `.symtab`, sorted by address; symbols whose size runs past
    /// the end of the address space are left out (and named in ``warnings``).
    public let functions: [FunctionSymbol]
    /// Allocated sections (`SHF_ALLOC`) by name: address and size (a vmlinux's link addresses, a
    /// `.ko`'s laid-out ones). The first section of a name wins.
    public let allocatedSections: [String: (address: UInt64, size: UInt64)]
    /// What was wrong with the image but could be passed over, one sentence each.
    public let warnings: [String]
    /// Whether this is a relocatable object (a module's `.ko`).
    public var isRelocatable: Bool { relocated != nil }

    /// Opens `path`; fails unless it is a regular file holding a whole 64-bit x86 ELF with a
    /// symbol table. A directory, a FIFO or a device is refused at once (never waited on). A
    /// relocatable object is laid out from `moduleBase`; a corrupt relocation is an error.
    public init(path: String, moduleBase: UInt64 = RelocatedObject.defaultBase) throws(KernelImageError) {
        self.path = path
        guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE) else {
            throw KernelImageError(path: path, "libelf refused this ELF version: \(Self.libelfMessage())")
        }
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            throw KernelImageError(path: path, "cannot open: \(String(cString: strerror(code))); pass the vmlinux of the kernel that produced the coverage")
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            let kind = status.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file (a FIFO, a socket or a device)"
            close(fd)
            throw KernelImageError(path: path, "is \(kind), not a vmlinux; pass the vmlinux file of the kernel build tree")
        }
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else {
            close(fd)
            throw KernelImageError(path: path, "libelf cannot read it: \(Self.libelfMessage())")
        }
        do throws(KernelImageError) {
            try Self.checkHeader(elf, path: path, fileSize: UInt64(clamping: status.st_size))
            if RelocatedObject.isRelocatable(elf) {
                do throws(RelocationError) {
                    relocated = try RelocatedObject(elf: elf, base: moduleBase)
                } catch {
                    throw KernelImageError(path: path, "\(error.message); pass the module's .ko as built")
                }
            } else {
                relocated = nil
            }
            executableSections = try Self.readSections(elf, path: path, relocated: relocated)
            allocatedSections = Self.readAllocatedSections(elf, relocated: relocated)
            (functions, warnings) = try Self.readFunctions(elf, path: path, relocated: relocated)
        } catch {
            elf_end(elf)
            close(fd)
            throw error
        }
        self.fd = fd
        self.elf = elf
    }

    deinit {
        elf_end(elf)
        close(fd)
    }

    /// The file bytes of the first section named `name` (such as `.note.gnu.build-id`), if it has any.
    public func contents(ofSection name: String) -> [UInt8]? {
        for section in ELFSections(elf) where section.header.sh_type != UInt32(SHT_NOBITS) && section.isNamed(name) {
            guard let data = elf_getdata(section.handle, nil), let buffer = data.pointee.d_buf else { continue }
            return [UInt8](UnsafeRawBufferPointer(start: buffer, count: Int(data.pointee.d_size)))
        }
        return nil
    }

    /// The address of the function named `name`, if the symbol table has it.
    public func address(of name: String) -> UInt64? {
        functions.first { $0.name == name }?.address
    }

    /// The function containing `address` (by symbol address and size), if any.
    public func function(containing address: UInt64) -> FunctionSymbol? {
        guard let index = functions.lastIndex(atMost: address, by: \.address) else { return nil }
        let candidate = functions[index]
        return address - candidate.address < max(candidate.size, 1) ? candidate : nil
    }

    private static func libelfMessage() -> String {
        elf_errmsg(-1).map { String(cString: $0) } ?? "unknown libelf error"
    }

    /// An ELF header of a 64-bit x86 file whose section headers and sections lie within its `fileSize` bytes.
    private static func checkHeader(_ elf: OpaquePointer, path: String, fileSize: UInt64) throws(KernelImageError) {
        guard elf_kind(elf) == ELF_K_ELF else {
            throw KernelImageError(path: path, "not an ELF file; pass the vmlinux (not the bzImage) from the kernel build tree")
        }
        var header = GElf_Ehdr()
        guard gelf_getehdr(elf, &header) != nil else {
            throw KernelImageError(path: path, "unreadable ELF header: \(libelfMessage())")
        }
        guard header.e_ident.4 == UInt8(ELFCLASS64), header.e_machine == UInt16(EM_X86_64) else {
            throw KernelImageError(path: path, "not a 64-bit x86 ELF (machine \(header.e_machine)); only x86_64 kernels are supported")
        }
        let truncated = "truncated or corrupt ELF (the file has \(fileSize) bytes)"
        let (tableSize, tableOverflow) = UInt64(header.e_shnum).multipliedReportingOverflow(by: UInt64(header.e_shentsize))
        let (tableEnd, endOverflow) = header.e_shoff.addingReportingOverflow(tableSize)
        guard !tableOverflow, !endOverflow, tableEnd <= fileSize else {
            throw KernelImageError(path: path, "\(truncated): its section headers end past the end of the file; copy the vmlinux again")
        }
        for section in ELFSections(elf) where section.header.sh_type != UInt32(SHT_NOBITS) {
            let (end, overflow) = section.header.sh_offset.addingReportingOverflow(section.header.sh_size)
            guard !overflow, end <= fileSize else {
                throw KernelImageError(path: path, "\(truncated): section \(section.nameText) ends past the end of the file; copy the vmlinux again")
            }
        }
    }

    private static func readSections(_ elf: OpaquePointer, path: String, relocated: RelocatedObject?) throws(KernelImageError) -> [ExecutableSection] {
        var sections: [ExecutableSection] = []
        for section in ELFSections(elf) {
            let header = section.header
            guard header.sh_type == UInt32(SHT_PROGBITS), header.sh_flags & UInt64(SHF_EXECINSTR) != 0, header.sh_size > 0 else { continue }
            let index = section.index
            if let relocated, let bytes = relocated.bytes(ofSection: index), let address = relocated.sectionAddresses[index] {
                sections.append(ExecutableSection(name: section.nameText, address: address, bytes: bytes))
                continue
            }
            guard let data = elf_getdata(section.handle, nil), let buffer = data.pointee.d_buf else {
                throw KernelImageError(path: path, "cannot read section \(section.nameText): \(libelfMessage())")
            }
            sections.append(ExecutableSection(
                name: section.nameText, address: relocated?.sectionAddresses[index] ?? header.sh_addr,
                bytes: UnsafeRawBufferPointer(start: buffer, count: Int(data.pointee.d_size))))
        }
        guard !sections.isEmpty else {
            throw KernelImageError(path: path, "has no executable sections with contents")
        }
        return sections.sorted { $0.address < $1.address }
    }

    private static func readAllocatedSections(_ elf: OpaquePointer, relocated: RelocatedObject?) -> [String: (address: UInt64, size: UInt64)] {
        if let relocated { return relocated.sections.mapValues { ($0.address, $0.size) } }
        var sections: [String: (address: UInt64, size: UInt64)] = [:]
        for section in ELFSections(elf) where section.header.sh_flags & UInt64(SHF_ALLOC) != 0 {
            let name = section.nameText
            if sections[name] == nil { sections[name] = (section.header.sh_addr, section.header.sh_size) }
        }
        return sections
    }

    private static func readFunctions(_ elf: OpaquePointer, path: String, relocated: RelocatedObject?) throws(KernelImageError) -> ([FunctionSymbol], [String]) {
        for section in ELFSections(elf) {
            let header = section.header
            guard header.sh_type == UInt32(SHT_SYMTAB), header.sh_entsize > 0, let data = elf_getdata(section.handle, nil) else { continue }
            var functions: [FunctionSymbol] = []
            var oversized: [String] = []
            let count = Int32(clamping: header.sh_size / header.sh_entsize)
            functions.reserveCapacity(Int(count) / 2)
            for index in 0..<count {
                var symbol = GElf_Sym()
                guard gelf_getsym(data, index, &symbol) != nil, symbol.st_info & 0xf == UInt8(STT_FUNC) else { continue }
                if let relocated {
                    // A .ko's symbol values are offsets into their sections.
                    guard let base = relocated.sectionAddresses[Int(symbol.st_shndx)] else { continue }
                    symbol.st_value = base &+ symbol.st_value
                }
                guard symbol.st_value != 0, let name = elf_strptr(elf, Int(header.sh_link), Int(symbol.st_name)) else { continue }
                guard !symbol.st_value.addingReportingOverflow(symbol.st_size).overflow else {
                    oversized.append(String(cString: name))
                    continue
                }
                functions.append(FunctionSymbol(name: String(cString: name), address: symbol.st_value, size: symbol.st_size))
            }
            // A module's calls to the kernel (the kcov callbacks among them) land on the slots of their undefined symbols.
            for (name, slot) in relocated?.undefinedSymbols ?? [:] { functions.append(FunctionSymbol(name: name, address: slot, size: 0)) }
            let warnings = oversized.isEmpty ? [] : [
                "\(path): \(oversized.count) function symbols have a size past the end of the address space and were ignored (first: \(oversized[0])); a corrupt symbol table?"
            ]
            return (functions.sorted { $0.address < $1.address }, warnings)
        }
        throw KernelImageError(
            path: path, "has no symbol table (.symtab): a stripped image; use the unstripped vmlinux from the kernel build tree")
    }
}

extension Array {
    /// In an array sorted by `key`, the index of the last element whose key is at most `value`.
    func lastIndex(atMost value: UInt64, by key: (Element) -> UInt64) -> Int? {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if key(self[middle]) <= value { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : low - 1
    }
}
