public import CoverageAPI
import CElfutils
#if canImport(Glibc)
import Glibc
#endif

/// Maps kernel PCs to function, file and line, with inlined frames, from a vmlinux's DWARF (libdw),
/// the way `addr2line -afi` does.
///
/// Each compilation unit is read once per lookup batch: one walk over its DIEs for the functions
/// and inlined subroutines, and its line table, which is then binary-searched. ``frames(for:)``
/// groups PCs by unit, so a whole kernel's coverable PCs cost one pass over the DWARF.
///
/// Where binutils 2.40's addr2line differs, on purpose: the first rows of a DWARF 5 line sequence
/// that keep the initial file register (1) are in file entry 1, as the standard, libdw, readelf
/// and llvm-symbolizer read them (addr2line names entry 0, the unit's own source); an assembly
/// label's PC is named the same whatever was asked before it (addr2line reuses its previous
/// symbol); and a PC outside the executable sections is unknown (addr2line names data symbols).
///
/// Owns the file descriptor and the libelf and libdw handles, and releases them once when it goes
/// away. Not for concurrent use: single lookups keep the last units they read.
public final class KernelSymbolizer {
    /// The file the DWARF is read from.
    public let path: String
    private let fd: Int32
    private let elf: OpaquePointer
    private let dwarf: OpaquePointer
    private let units: CompileUnits
    private let code: CodeMap
    /// Units read by ``frames(at:)``, most recent last.
    private var recent: [(unit: Int, symbols: UnitSymbols)] = []
    private static let recentLimit = 16

    /// Opens `path`, an unstripped vmlinux (any ELF file with DWARF works).
    ///
    /// Fails with a ``SymbolizerError`` that says what to do when the file cannot be read, is not
    /// an ELF file (a bzImage), or has no DWARF (a stripped copy, or a kernel built without
    /// `CONFIG_DEBUG_INFO`).
    public init(vmlinux path: String) throws(SymbolizerError) {
        self.path = path
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw SymbolizerError(.unreadable, path: path, "cannot open it (\(reason)); pass the vmlinux of the kernel the PCs came from")
        }
        do throws(SymbolizerError) {
            var status = stat()
            guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
                let kind = status.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file (a FIFO, a socket or a device)"
                throw SymbolizerError(.unreadable, path: path, "is \(kind), not a vmlinux; pass the vmlinux file of the kernel build tree")
            }
            (elf, dwarf) = try Self.openDWARF(fd: fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        units = CompileUnits(dwarf)
        code = CodeMap(elf)
    }

    deinit {
        dwarf_end(dwarf)
        elf_end(elf)
        close(fd)
    }

    private static func openDWARF(fd: Int32, path: String) throws(SymbolizerError) -> (elf: OpaquePointer, dwarf: OpaquePointer) {
        guard elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE), let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else {
            throw SymbolizerError(.unreadable, path: path, "libelf cannot read it (\(libelfMessage())); pass the vmlinux of the kernel the PCs came from")
        }
        guard elf_kind(elf) == ELF_K_ELF else {
            elf_end(elf)
            throw SymbolizerError(.notELF, path: path, "is not an ELF file; pass the vmlinux from the kernel build tree, not the bzImage")
        }
        guard hasDebugInfo(elf) else {
            elf_end(elf)
            throw SymbolizerError(
                .noDebugInfo, path: path,
                "has no DWARF debug information (no .debug_info): built without CONFIG_DEBUG_INFO? use the unstripped vmlinux from the build tree")
        }
        if let compressed = undecompressableDebugSection(elf) {
            elf_end(elf)
            throw SymbolizerError(.unsupportedCompression, path: path, compressed)
        }
        guard let dwarf = dwarf_begin_elf(elf, DWARF_C_READ, nil) else {
            let reason = String(cString: dwarf_errmsg(-1))
            elf_end(elf)
            throw SymbolizerError(.badDebugInfo, path: path, "its DWARF cannot be read (\(reason)); rebuild the kernel or use the vmlinux from its build tree")
        }
        return (elf, dwarf)
    }

    private static func hasDebugInfo(_ elf: OpaquePointer) -> Bool {
        var names = 0
        guard elf_getshdrstrndx(elf, &names) == 0 else { return false }
        var section = elf_nextscn(elf, nil)
        while let current = section {
            section = elf_nextscn(elf, current)
            var header = GElf_Shdr()
            guard gelf_getshdr(current, &header) != nil, header.sh_size > 0, let name = elf_strptr(elf, names, Int(header.sh_name)) else { continue }
            if strcmp(name, ".debug_info") == 0 || strcmp(name, ".zdebug_info") == 0 { return true }
        }
        return false
    }

    /// `ELFCOMPRESS_ZSTD`, the gABI's number for zstd-compressed sections (`objcopy
    /// --compress-debug-sections=zstd`, `ld --compress-debug-sections=zstd`); elfutils before
    /// 0.189 has no name for it and cannot decompress it.
    static let zstdCompression: UInt32 = 2

    /// Decompresses every `SHF_COMPRESSED` debug section the way libdw would on opening (so it
    /// costs nothing extra), and says what to do about the first one libelf cannot decompress:
    /// zstd with an elfutils older than 0.189, or an unknown algorithm. `nil` when all can be read.
    private static func undecompressableDebugSection(_ elf: OpaquePointer) -> String? {
        var names = 0
        guard elf_getshdrstrndx(elf, &names) == 0 else { return nil }
        var section = elf_nextscn(elf, nil)
        while let current = section {
            section = elf_nextscn(elf, current)
            var header = GElf_Shdr()
            guard gelf_getshdr(current, &header) != nil, header.sh_flags & UInt64(SHF_COMPRESSED) != 0,
                  let rawName = elf_strptr(elf, names, Int(header.sh_name))
            else { continue }
            let name = String(cString: rawName)
            guard name.hasPrefix(".debug_") else { continue }
            var compression = GElf_Chdr()
            let algorithm = gelf_getchdr(current, &compression) != nil ? compression.ch_type : 0
            guard elf_compress(current, 0, 0) < 0 else { continue }
            let reason = libelfMessage()
            let elfutils = dwfl_version(nil).map { String(cString: $0) } ?? "this"
            if algorithm == zstdCompression {
                return "its debug sections (\(name) first) are compressed with zstd, which elfutils \(elfutils) (libdw) cannot decompress (zstd needs 0.189 or later): "
                    + "run `objcopy --decompress-debug-sections` on it (or relink without --compress-debug-sections=zstd; zlib works) and pass the copy"
            }
            return "its debug section \(name) is compressed with algorithm \(algorithm), which elfutils \(elfutils) cannot decompress (\(reason)): "
                + "run `objcopy --decompress-debug-sections` on it and pass the copy"
        }
        return nil
    }

    private static func libelfMessage() -> String {
        elf_errmsg(-1).map { String(cString: $0) } ?? "unknown libelf error"
    }

    /// The source frames of `pc`, innermost (inlined) first and the function it was compiled into
    /// last; empty when the image has no code or no debug information there (a PC of another
    /// build, or KASLR not undone).
    public func frames(at pc: UInt64) -> [SymbolFrame] {
        guard code.isCode(pc) else { return [] }
        guard let unit = units.unit(containing: pc) else { return symbolTableFrames(at: pc) }
        let cached = recent.firstIndex { $0.unit == unit }
        var symbols = cached.map { recent.remove(at: $0).symbols } ?? UnitSymbols(unit: units.dies[unit])
        let result = frames(at: pc, in: &symbols)
        if recent.count == Self.recentLimit { recent.removeFirst() }
        recent.append((unit, symbols))
        return result
    }

    /// ``frames(at:)`` for each PC, in the order given: each compilation unit is read once for
    /// all the PCs in it, so this is the way to symbolize many PCs.
    public func frames(for pcs: [UInt64]) -> [[SymbolFrame]] {
        var result = [[SymbolFrame]](repeating: [], count: pcs.count)
        var byUnit: [Int: [Int]] = [:]
        for (position, pc) in pcs.enumerated() {
            if let unit = units.unit(containing: pc) {
                byUnit[unit, default: []].append(position)
            } else {
                result[position] = symbolTableFrames(at: pc)
            }
        }
        for (unit, positions) in byUnit.sorted(by: { $0.key < $1.key }) {
            var symbols = UnitSymbols(unit: units.dies[unit], batch: positions.map { pcs[$0] }.sorted())
            for position in positions { result[position] = frames(at: pcs[position], in: &symbols) }
        }
        return result
    }

    /// The innermost frame of `pc` as a one-line ``SourceRange`` (what reports count), or `nil`
    /// when `pc` is unknown.
    public func sourceRange(of pc: UInt64) -> SourceRange? {
        guard let innermost = frames(at: pc).first else { return nil }
        return SourceRange(
            file: innermost.file, function: innermost.function, startLine: innermost.line, startColumn: innermost.column,
            endLine: innermost.line, endColumn: innermost.column)
    }

    /// The unit's frames, with the symbol table's function name where the DWARF names none, as
    /// addr2line does for assembly. A PC outside the executable sections has none.
    private func frames(at pc: UInt64, in unit: inout UnitSymbols) -> [SymbolFrame] {
        guard code.isCode(pc) else { return [] }
        var frames = unit.frames(at: pc)
        if frames.isEmpty { return symbolTableFrames(at: pc) }
        if frames[0].function == nil { frames[0].function = code.function(at: pc)?.name }
        return frames
    }

    /// No DWARF line or function at `pc`: the symbol table's function and file, if any, as
    /// addr2line reports code without debug information.
    private func symbolTableFrames(at pc: UInt64) -> [SymbolFrame] {
        guard code.isCode(pc), let function = code.function(at: pc) else { return [] }
        return [SymbolFrame(function: function.name, file: function.file ?? "??", line: 0)]
    }
}
