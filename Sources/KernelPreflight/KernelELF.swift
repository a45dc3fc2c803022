import CElfutils
import Foundation
import RelocatableObject

/// What the preflight reads from a kernel's ELF image, the vmlinux or the bzImage's decompressed
/// payload, through libelf: its build id, its `linux_banner` (with a symbol table), and the
/// file ranges of its allocated sections (where an embedded configuration lives).
struct KernelELF {
    /// `NT_GNU_BUILD_ID`'s descriptor (the linker's `--build-id`, which kbuild passes).
    var buildID: [UInt8]?
    /// The `linux_banner` string ("Linux version RELEASE (BUILDER) (COMPILER) VERSION"), when
    /// the symbol table has it; init/version.c in the kernel source builds it.
    var banner: String?
    var hasSymbolTable: Bool
    /// `e_type`: ET_EXEC for a vmlinux.
    var type: UInt16
    var machine: UInt16
    var is64Bit: Bool
    /// File ranges of the allocated sections with contents (`SHT_PROGBITS`, `SHF_ALLOC`).
    var allocatedRanges: [Range<Int>]

    /// Reads `elf`, whose whole file is `raw`. Throws ``PreflightError/Code/notELF`` when libelf
    /// does not see an ELF file.
    init(_ elf: OpaquePointer, raw: UnsafeRawBufferPointer, path: String) throws(PreflightError) {
        guard elf_kind(elf) == ELF_K_ELF else {
            throw PreflightError(.notELF, path: path, "is not an ELF file")
        }
        var header = GElf_Ehdr()
        guard gelf_getehdr(elf, &header) != nil else {
            throw PreflightError(.notELF, path: path, "has an unreadable ELF header (\(Self.libelfMessage())): a corrupt or truncated file")
        }
        type = header.e_type
        machine = header.e_machine
        is64Bit = header.e_ident.4 == UInt8(ELFCLASS64)
        hasSymbolTable = false
        allocatedRanges = []
        var symbolTable: (section: OpaquePointer, header: GElf_Shdr)?
        for section in ELFSections(elf) {
            let sectionHeader = section.header
            // sh_type is any 32-bit value in a bad file: compared as read, never narrowed.
            switch sectionHeader.sh_type {
            case UInt32(SHT_SYMTAB):
                symbolTable = (section.handle, sectionHeader)
            case UInt32(SHT_NOTE) where buildID == nil:
                buildID = Self.buildID(in: section.handle)
            case UInt32(SHT_PROGBITS) where sectionHeader.sh_flags & UInt64(SHF_ALLOC) != 0:
                let (end, overflow) = sectionHeader.sh_offset.addingReportingOverflow(sectionHeader.sh_size)
                if !overflow, end <= UInt64(raw.count) {
                    allocatedRanges.append(Int(sectionHeader.sh_offset)..<Int(end))
                }
            default:
                break
            }
        }
        if let symbolTable {
            hasSymbolTable = true
            banner = Self.banner(elf, symbols: symbolTable.section, header: symbolTable.header, raw: raw)
        }
    }

    static func libelfMessage() -> String {
        elf_errmsg(-1).map { String(cString: $0) } ?? "unknown libelf error"
    }

    /// The descriptor of the section's `GNU` note of type `NT_GNU_BUILD_ID`, if any.
    private static func buildID(in section: OpaquePointer) -> [UInt8]? {
        guard let data = elf_getdata(section, nil), let buffer = data.pointee.d_buf else { return nil }
        let size = Int(data.pointee.d_size)
        var offset = 0
        while offset < size {
            var note = GElf_Nhdr()
            var nameOffset = 0
            var descriptorOffset = 0
            let next = gelf_getnote(data, offset, &note, &nameOffset, &descriptorOffset)
            guard next > offset else { return nil }
            offset = next
            let descriptorEnd = descriptorOffset + Int(note.n_descsz)
            guard note.n_type == UInt32(NT_GNU_BUILD_ID), note.n_namesz == 4, nameOffset + 4 <= size, descriptorEnd <= size,
                  memcmp(buffer + nameOffset, "GNU", 4) == 0
            else { continue }
            return Array(UnsafeRawBufferPointer(start: buffer + descriptorOffset, count: Int(note.n_descsz)))
        }
        return nil
    }

    /// `linux_banner`'s bytes up to its NUL, read from the file through its section.
    private static func banner(_ elf: OpaquePointer, symbols: OpaquePointer, header: GElf_Shdr, raw: UnsafeRawBufferPointer) -> String? {
        guard header.sh_entsize > 0, let data = elf_getdata(symbols, nil) else { return nil }
        let count = Int32(clamping: header.sh_size / header.sh_entsize)
        for index in 0..<count {
            var symbol = GElf_Sym()
            guard gelf_getsym(data, index, &symbol) != nil,
                  let name = elf_strptr(elf, Int(header.sh_link), Int(symbol.st_name)), strcmp(name, "linux_banner") == 0
            else { continue }
            var sectionHeader = GElf_Shdr()
            guard let section = elf_getscn(elf, Int(symbol.st_shndx)), gelf_getshdr(section, &sectionHeader) != nil,
                  sectionHeader.sh_type == UInt32(SHT_PROGBITS), symbol.st_value >= sectionHeader.sh_addr,
                  symbol.st_value - sectionHeader.sh_addr < sectionHeader.sh_size
            else { return nil }
            let (start, overflow) = sectionHeader.sh_offset.addingReportingOverflow(symbol.st_value - sectionHeader.sh_addr)
            guard !overflow, start < UInt64(raw.count) else { return nil }
            let end = min(UInt64(raw.count), start + min(max(symbol.st_size, 1), 1024))
            let bytes = raw[Int(start)..<Int(end)]
            let text = bytes.prefix { $0 != 0 }
            return String(decoding: text, as: UTF8.self)
        }
        return nil
    }
}

/// A vmlinux: the kernel's ELF executable with its symbol table, whose build id or banner must
/// match the bzImage's.
public struct Vmlinux: Sendable {
    public var path: String
    /// `NT_GNU_BUILD_ID`, when the kernel was linked with one.
    public var buildID: [UInt8]?
    /// `linux_banner`: "Linux version RELEASE (BUILDER) (COMPILER) VERSION".
    public var banner: String
    /// The embedded configuration (`CONFIG_IKCONFIG=y`), if any.
    public var configuration: KernelConfiguration?

    static let what = "the kernel's unstripped vmlinux (the ELF file `make` leaves at the top of its build tree)"

    /// Opens and checks `path`. Throws ``PreflightError`` with ``PreflightError/Code/notELF``
    /// (a bzImage is named as one), ``PreflightError/Code/notKernel`` (another kind of ELF:
    /// a module, a program, a 32-bit or non-x86 file, or no `linux_banner`),
    /// ``PreflightError/Code/stripped`` (no symbol table).
    public init(path: String) throws(PreflightError) {
        let file = try InputFile(path: path, what: Self.what)
        if let head = try file.read(at: 0x202, count: 4), head == Array("HdrS".utf8) {
            throw PreflightError(.notELF, path: path,
                "is a bzImage (an x86 boot header), not a vmlinux: that is the kernel to boot; give \(Self.what) as the vmlinux")
        }
        guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE) else {
            throw PreflightError(.notELF, path: path, "libelf refused its ELF version: \(KernelELF.libelfMessage())")
        }
        guard let elf = elf_begin(file.descriptor, ELF_C_READ_MMAP, nil) else {
            throw PreflightError(.notELF, path: path, "libelf cannot read it (\(KernelELF.libelfMessage())); give \(Self.what)")
        }
        defer { elf_end(elf) }
        guard elf_kind(elf) == ELF_K_ELF else {
            throw PreflightError(.notELF, path: path, "is not an ELF file; give \(Self.what)")
        }
        var rawSize = 0
        guard let rawStart = elf_rawfile(elf, &rawSize) else {
            throw PreflightError(.notELF, path: path, "libelf cannot map it (\(KernelELF.libelfMessage()))")
        }
        let raw = UnsafeRawBufferPointer(start: rawStart, count: rawSize)
        let image = try KernelELF(elf, raw: raw, path: path)
        guard image.is64Bit, image.machine == UInt16(EM_X86_64) else {
            throw PreflightError(.notKernel, path: path, "is not a 64-bit x86 ELF file (machine \(image.machine)); the runner boots x86_64 kernels: give \(Self.what)")
        }
        guard image.type == UInt16(ET_EXEC) else {
            let kind = image.type == UInt16(ET_REL) ? "a relocatable object (a kernel module?)" : image.type == UInt16(ET_DYN) ? "a shared object or a program" : "ELF type \(image.type)"
            throw PreflightError(.notKernel, path: path, "is \(kind), not a kernel executable; give \(Self.what)")
        }
        guard image.hasSymbolTable else {
            throw PreflightError(.stripped, path: path,
                "has no symbol table: a stripped kernel image; give \(Self.what), which reports and the check against the bzImage need")
        }
        guard let banner = image.banner, banner.hasPrefix("Linux version ") else {
            throw PreflightError(.notKernel, path: path, "is an x86_64 executable without linux_banner: not a Linux kernel; give \(Self.what)")
        }
        self.path = path
        self.banner = banner.trimmingCharacters(in: .whitespacesAndNewlines)
        buildID = image.buildID
        configuration = try KernelConfiguration.embedded(
            in: raw, ranges: image.allocatedRanges, source: "the configuration embedded in \(path)", path: path)
    }
}

/// The bzImage's decompressed payload, read as a kernel ELF.
struct PayloadELF {
    var buildID: [UInt8]?
    var configuration: KernelConfiguration?

    /// Throws ``PreflightError/Code/notKernelPayload`` when the payload is not an ELF file.
    init(_ payload: consuming [UInt8], image: BootImage) throws(PreflightError) {
        guard payload.has([0x7f, 0x45, 0x4c, 0x46], at: 0) else {
            throw PreflightError(.notKernelPayload, path: image.path,
                "its payload decompressed (\(image.compression.rawValue)) but is not an ELF file: not an x86 Linux kernel")
        }
        guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE) else {
            throw PreflightError(.notKernelPayload, path: image.path, "libelf refused its ELF version: \(KernelELF.libelfMessage())")
        }
        // libelf takes a mutable pointer (it does not write when reading); the payload is moved, not copied.
        var bytes = payload
        let result = bytes.withUnsafeMutableBytes { buffer -> Result<(KernelELF, KernelConfiguration?), PreflightError> in
            guard let elf = elf_memory(buffer.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.count) else {
                return .failure(PreflightError(.notKernelPayload, path: image.path, "libelf cannot read its payload: \(KernelELF.libelfMessage())"))
            }
            defer { elf_end(elf) }
            let raw = UnsafeRawBufferPointer(buffer)
            do throws(PreflightError) {
                let kernel = try KernelELF(elf, raw: raw, path: image.path)
                // Searched whole: the payload has no debug information to skip.
                let configuration = try KernelConfiguration.embedded(
                    in: raw, ranges: [0..<raw.count], source: "the configuration embedded in \(image.path)", path: image.path)
                return .success((kernel, configuration))
            } catch {
                return .failure(error)
            }
        }
        let (kernel, configuration) = try result.get()
        buildID = kernel.buildID
        self.configuration = configuration
    }
}
