public import CoverageAPI
public import RelocatableObject
import CElfutils
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Maps kernel PCs to function, file and line, with inlined frames, from a vmlinux's DWARF, the
/// way `addr2line -afi` does. libelf finds the sections and the symbol table; the DWARF is read by
/// this module's own reader (Docs/symbolizer.md):
///
/// - `.debug_info` unit headers and unit DIEs (DWARF 5 §7.5.1, §3.1.1) when it opens: which unit
///   covers which addresses (`DW_AT_low_pc`/`DW_AT_high_pc`, `DW_AT_ranges` through
///   `.debug_rnglists` §2.17.3 or DWARF 4's `.debug_ranges`), its line program and its string,
///   address and range-list bases (`.debug_str_offsets`, `.debug_addr`);
/// - for a unit with PCs to look up: its abbreviations (§7.5.3), one walk over its DIEs for the
///   `DW_TAG_subprogram`s and `DW_TAG_inlined_subroutine`s with code (lexical blocks looked
///   through, every other subtree skipped by `DW_AT_sibling`), and its line program (§6.2, DWARF 2
///   to 5 headers, `.debug_line_str`), run once: a batch's PCs of the unit (sorted) are answered
///   as its rows go by, a single lookup's rows are kept sorted and binary-searched;
/// - names and declarations (`DW_AT_linkage_name`/`DW_AT_name`, `DW_AT_decl_file`/`decl_line`)
///   only for the scopes a PC falls in, through `DW_AT_abstract_origin` and `DW_AT_specification`,
///   and calls' `DW_AT_call_file`/`call_line`/`call_column` for inlined frames.
///
/// ``frames(for:)`` groups PCs by unit, reads only the units they fall in, each once, and shares
/// the units, the largest first, between as many threads as there are processors (at most 8). Every read is bounds-checked: malformed DWARF is a
/// ``SymbolizerError`` (`.badDebugInfo`) naming the section and offset, never a trap or a hang.
///
/// Where binutils 2.40's addr2line differs, on purpose: the first rows of a DWARF 5 line sequence
/// that keep the initial file register (1) are in file entry 1, as the standard, libdw, readelf
/// and llvm-symbolizer read them (addr2line names entry 0, the unit's own source); an assembly
/// label's PC is named the same whatever was asked before it (addr2line reuses its previous
/// symbol); and a PC outside the executable sections is unknown (addr2line names data symbols).
///
/// Owns the file descriptor and the libelf handle (whose read-only mapping of the file the DWARF
/// is read from), and releases them once when it goes away. Not for concurrent use: single lookups keep the last units they read.
public final class KernelSymbolizer {
    /// The file the DWARF is read from.
    public let path: String
    private let fd: Int32
    private let elf: OpaquePointer
    /// For a module's `.ko`: its layout and the relocated DWARF the directory reads.
    private let relocated: RelocatedObject?
    private let directory: UnitDirectory
    private let code: CodeMap
    /// Units read by ``frames(at:)``, most recent last.
    private var recent: [(unit: Int, symbols: UnitSymbols)] = []
    /// The strings ``frames(at:)`` made.
    private let strings = StringCache()
    private static let recentLimit = 16

    /// Opens `path`, an unstripped vmlinux (any little-endian ELF file with DWARF 2 to 5 works), or
    /// a kernel module's `.ko`: a relocatable object is laid out from `moduleBase` with its
    /// relocations applied (``RelocatedObject``, Docs/modules.md), the same layout ``KernelImage``
    /// gives it, and its PCs are asked for at those addresses.
    ///
    /// Fails with a ``SymbolizerError`` that says what to do when the file cannot be read, is not
    /// an ELF file (a bzImage), has no DWARF (a stripped copy, or a kernel built without
    /// `CONFIG_DEBUG_INFO`), or its unit headers and unit DIEs are malformed (a truncated copy).
    public init(vmlinux path: String, moduleBase: UInt64 = RelocatedObject.defaultBase) throws(SymbolizerError) {
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
            elf = try Self.openELF(fd: fd, path: path)
            do throws(RelocationError) {
                relocated = RelocatedObject.isRelocatable(elf) ? try RelocatedObject(elf: elf, base: moduleBase) : nil
            } catch {
                elf_end(elf)
                throw SymbolizerError(.badDebugInfo, path: path, "\(error.message); pass the module's .ko as built")
            }
            do throws(DWARFError) {
                directory = try UnitDirectory(sections: try DebugSections(elf: elf, relocated: relocated))
            } catch {
                elf_end(elf)
                throw SymbolizerError(.badDebugInfo, path: path, error.message)
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        code = CodeMap(elf, relocated: relocated)
    }

    deinit {
        elf_end(elf)
        close(fd)
    }

    private static func openELF(fd: Int32, path: String) throws(SymbolizerError) -> OpaquePointer {
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
        var header = GElf_Ehdr()
        guard gelf_getehdr(elf, &header) != nil, header.e_ident.5 == UInt8(ELFDATA2LSB) else {
            elf_end(elf)
            throw SymbolizerError(.badDebugInfo, path: path, "is a big-endian ELF file, whose DWARF this symbolizer does not read; symbolize on a little-endian (x86-64, arm64) kernel's vmlinux")
        }
        return elf
    }

    private static func hasDebugInfo(_ elf: OpaquePointer) -> Bool {
        ELFSections(elf).contains { $0.header.sh_size > 0 && ($0.isNamed(".debug_info") || $0.isNamed(".zdebug_info")) }
    }

    /// `ELFCOMPRESS_ZSTD`, the gABI's number for zstd-compressed sections (`objcopy
    /// --compress-debug-sections=zstd`, `ld --compress-debug-sections=zstd`); elfutils before
    /// 0.189 has no name for it and cannot decompress it.
    static let zstdCompression: UInt32 = 2

    /// Decompresses every `SHF_COMPRESSED` debug section the way libdw would on opening (so it
    /// costs nothing extra), and says what to do about the first one libelf cannot decompress:
    /// zstd with an elfutils older than 0.189, or an unknown algorithm. `nil` when all can be read.
    private static func undecompressableDebugSection(_ elf: OpaquePointer) -> String? {
        for section in ELFSections(elf) where section.header.sh_flags & UInt64(SHF_COMPRESSED) != 0 {
            let name = section.nameText
            guard name.hasPrefix(".debug_") else { continue }
            var compression = GElf_Chdr()
            let algorithm = gelf_getchdr(section.handle, &compression) != nil ? compression.ch_type : 0
            guard elf_compress(section.handle, 0, 0) < 0 else { continue }
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
    ///
    /// A unit whose DWARF turns out malformed past its unit DIE gives the symbol table's frames
    /// here; ``checkedFrames(at:)`` reports it instead.
    public func frames(at pc: UInt64) -> [SymbolFrame] {
        (try? checkedFrames(at: pc)) ?? symbolTableFrames(at: pc)
    }

    /// ``frames(at:)``, failing with a ``SymbolizerError`` (`.badDebugInfo`, naming the section
    /// and offset) when the DWARF of `pc`'s unit is malformed.
    public func checkedFrames(at pc: UInt64) throws(SymbolizerError) -> [SymbolFrame] {
        guard code.isCode(pc) else { return [] }
        guard let unit = directory.unit(at: pc) else { return symbolTableFrames(at: pc) }
        do throws(DWARFError) {
            var symbols: UnitSymbols
            if let cached = recent.firstIndex(where: { $0.unit == unit }) {
                symbols = recent.remove(at: cached).symbols
            } else {
                symbols = try UnitSymbols(directory: directory, unit: unit, strings: strings)
            }
            let result = try frames(at: pc, in: &symbols)
            if recent.count == Self.recentLimit { recent.removeFirst() }
            recent.append((unit, symbols))
            return result
        } catch {
            throw SymbolizerError(.badDebugInfo, path: path, error.message)
        }
    }

    /// ``frames(at:)`` for each PC, in the order given: each compilation unit is read once for
    /// all the PCs in it, on as many threads as there are processors (at most 8), so this is the
    /// way to symbolize many PCs.
    ///
    /// The PCs of a unit whose DWARF turns out malformed past its unit DIE get the symbol
    /// table's frames here; ``checkedFrames(for:)`` reports it instead.
    public func frames(for pcs: [UInt64]) -> [[SymbolFrame]] {
        batch(pcs, strict: false).frames
    }

    /// ``frames(for:)``, failing with a ``SymbolizerError`` (`.badDebugInfo`, naming the section
    /// and offset) when the DWARF of a unit the PCs fall in is malformed.
    public func checkedFrames(for pcs: [UInt64]) throws(SymbolizerError) -> [[SymbolFrame]] {
        let result = batch(pcs, strict: true)
        if let error = result.error { throw SymbolizerError(.badDebugInfo, path: path, error.message) }
        return result.frames
    }

    private func batch(_ pcs: [UInt64], strict: Bool) -> (frames: [[SymbolFrame]], error: DWARFError?) {
        // The unit of each PC, then the positions grouped by unit (a counting sort).
        let unitCount = directory.units.count
        var unitOf = [Int32](repeating: -1, count: pcs.count)
        var counts = [Int](repeating: 0, count: unitCount + 1)
        var segment = 0
        for (position, pc) in pcs.enumerated() where code.isCode(pc) {
            guard let unit = directory.unit(at: pc, hint: &segment) else { continue }
            unitOf[position] = Int32(unit)
            counts[unit + 1] += 1
        }
        for unit in 0..<unitCount { counts[unit + 1] += counts[unit] }
        var grouped = [Int](repeating: 0, count: counts[unitCount])
        var next = counts
        for (position, unit) in unitOf.enumerated() where unit >= 0 {
            grouped[next[Int(unit)]] = position
            next[Int(unit)] += 1
        }
        // The largest units first, so that the threads finish together.
        let work = (0..<unitCount).filter { counts[$0 + 1] > counts[$0] }.sorted { directory.units[$0].size > directory.units[$1].size }
        let workers = max(1, min(work.count, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 8))

        var frames = [[SymbolFrame]](repeating: [], count: pcs.count)
        var firstError: DWARFError?
        frames.withUnsafeMutableBufferPointer { output in
        for (position, unit) in unitOf.enumerated() where unit < 0 { output[position] = symbolTableFrames(at: pcs[position]) }
        let errors = UnsafeMutableBufferPointer<DWARFError?>.allocate(capacity: workers)
        errors.initialize(repeating: nil)
        defer { errors.deinitialize().deallocate() }
        let taken = Atomic<Int>(0)
        let job = BatchJob(symbolizer: self, pcs: pcs, grouped: grouped, counts: counts, work: work, output: output, errors: errors, strict: strict)
        if workers == 1 {
            job.run(worker: 0, taken: taken)
        } else {
            DispatchQueue.concurrentPerform(iterations: workers) { job.run(worker: $0, taken: taken) }
        }
        firstError = errors.lazy.compactMap { $0 }.first
        }
        return (frames, firstError)
    }

    /// One batch shared by its worker threads: each takes the next unit, reads it and writes the
    /// frames of its PCs into their own places of `output`.
    private struct BatchJob: @unchecked Sendable {
        let symbolizer: KernelSymbolizer
        let pcs: [UInt64]
        let grouped: [Int]
        let counts: [Int]
        let work: [Int]
        let output: UnsafeMutableBufferPointer<[SymbolFrame]>
        let errors: UnsafeMutableBufferPointer<DWARFError?>
        let strict: Bool

        func run(worker: Int, taken: borrowing Atomic<Int>) {
            let strings = StringCache()
            while true {
                let item = taken.wrappingAdd(1, ordering: .relaxed).oldValue
                guard item < work.count else { return }
                if strict, errors.contains(where: { $0 != nil }) { return }
                let unit = work[item]
                let positions = grouped[counts[unit]..<counts[unit + 1]]
                do throws(DWARFError) {
                    // The unit's PCs sorted, each with its place in the batch.
                    let order = positions.sorted { pcs[$0] < pcs[$1] }
                    let sorted = order.map { pcs[$0] }
                    var symbols = try UnitSymbols(directory: symbolizer.directory, unit: unit, batch: sorted, strings: strings)
                    try symbols.frames(ofBatch: sorted) { index, frames in
                        output[order[index]] = symbolizer.completed(frames, at: sorted[index])
                    }
                } catch {
                    if errors[worker] == nil { errors[worker] = error }
                    if strict { return }
                    for position in positions { output[position] = symbolizer.symbolTableFrames(at: pcs[position]) }
                }
            }
        }
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
    private func frames(at pc: UInt64, in unit: inout UnitSymbols) throws(DWARFError) -> [SymbolFrame] {
        guard code.isCode(pc) else { return [] }
        return completed(try unit.frames(at: pc), at: pc)
    }

    /// A unit's frames of a PC of code, with the symbol table's function where the DWARF names
    /// none.
    private func completed(_ unitFrames: [SymbolFrame], at pc: UInt64) -> [SymbolFrame] {
        var frames = unitFrames
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
