public import CoverageAPI
public import KernelImage
public import KernelSymbolizer
import Foundation

/// The kernel modules given to a report (`--module NAME=PATH.ko`, `--modules DIR`), each read as a
/// relocatable image at its own place in the report's module address space, and the mapping of a
/// trace's module PCs into that space (Docs/modules.md).
///
/// kcov records module PCs with the KASLR slide subtracted, like core PCs; where a module was
/// loaded changes from boot to boot. So a module PC is mapped through the layout its trace
/// recorded: plus the slide (the layout's `_text` minus the vmlinux's) it is an address in the
/// running kernel; the section of the module that holds it (its address from
/// `/sys/module/NAME/sections/`, its size from the `.ko`) gives the offset; the module's section
/// in the report's space plus that offset is the PC the module's image and symbolizer answer for.
/// Traces of different boots then land on the same PCs.
public final class ModuleCoverage {
    /// One module: its name (as `/proc/modules` spells it), its `.ko`, and the image read at ``base``.
    public struct Module {
        public var name: String
        public var path: String
        public var image: KernelImage
        public var symbolizer: KernelSymbolizer
        /// Where its first section lies in the report's module space.
        public var base: UInt64
    }

    /// The modules by name, in name order.
    public let modules: [Module]
    /// The vmlinux's `_text` (its `.text` section's address), from which each trace's slide is measured.
    public let vmlinuxText: UInt64

    /// Where module `index` (in name order) is placed: far from any kernel text, 4 GiB apart.
    static func base(of index: Int) -> UInt64 { 0xffff_f000_0000_0000 &+ UInt64(index) << 32 }

    /// The index in ``modules`` of the module whose space (its ``Module/base`` and the 4 GiB
    /// after it) holds `pc`, a PC ``mapped(_:)`` placed; nil for a PC of the vmlinux.
    public func module(containing pc: UInt64) -> Int? {
        modules.indices.first { pc >= modules[$0].base && pc - modules[$0].base < 1 << 32 }
    }

    /// Reads each `.ko`; `paths` maps module names to files. A name is taken as the kernel
    /// spells it in `/proc/modules` (`-` becomes `_`). Throws ``KernelImageError`` or
    /// ``SymbolizerError`` for a file that is not a readable module with DWARF, and
    /// ``CoverageInputError`` when the vmlinux has no `.text`.
    public init(paths: [String: String], vmlinux: KernelImage) throws {
        guard let text = vmlinux.allocatedSections[".text"]?.address else {
            throw CoverageInputError(path: vmlinux.path, "has no .text section: pass the kernel's vmlinux")
        }
        vmlinuxText = text
        var modules: [Module] = []
        for (index, name) in paths.keys.map(Self.canonicalName).sorted().enumerated() {
            let path = paths.first { Self.canonicalName($0.key) == name }!.value
            let base = Self.base(of: index)
            let image = try KernelImage(path: path, moduleBase: base)
            guard image.isRelocatable else {
                throw CoverageInputError(path: path, "is not a kernel module (.ko, a relocatable ELF object): pass the module \(name) as built")
            }
            modules.append(Module(name: name, path: path, image: image, symbolizer: try KernelSymbolizer(vmlinux: path, moduleBase: base), base: base))
        }
        self.modules = modules
    }

    /// `NAME.ko` files under `directory` (searched to any depth), by module name; `names` limits
    /// the search to those modules (all when empty). A compressed module (`.ko.xz`, `.ko.zst`,
    /// `.ko.gz`) is an error that says to decompress it.
    public static func find(in directory: String, names: Set<String> = []) throws(CoverageInputError) -> [String: String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw CoverageInputError(path: directory, "cannot be read as a directory: pass the folder holding the modules' .ko files")
        }
        var found: [String: String] = [:]
        while let entry = walker.nextObject() as? String {
            let file = URL(fileURLWithPath: entry).lastPathComponent
            for suffix in [".ko.xz", ".ko.zst", ".ko.gz"] where file.hasSuffix(suffix) {
                let name = canonicalName(String(file.dropLast(suffix.count)))
                if names.isEmpty || names.contains(name) {
                    throw CoverageInputError(
                        path: directory + "/" + entry, "is compressed (\(suffix.dropFirst(4))): decompress the modules first (for example `xz -dk` or `zstd -dk`) and pass the folder again")
                }
            }
            guard file.hasSuffix(".ko") else { continue }
            let name = canonicalName(String(file.dropLast(3)))
            if names.isEmpty || names.contains(name), found[name] == nil { found[name] = directory + "/" + entry }
        }
        return found
    }

    /// The kernel's spelling of a module name: `-` becomes `_`.
    public static func canonicalName(_ name: String) -> String {
        name.replacingOccurrences(of: "-", with: "_")
    }

    /// `input` with the PCs of given modules moved into the report's module space, and how many
    /// PCs of each loaded module were left where they were because no `.ko` was given for it.
    ///
    /// Throws ``CoverageInputError`` naming the file when the input cannot be mapped: it has no
    /// kernel layout (rawcover, a set file, or a trace written before format 3), the layout's
    /// addresses were unreadable (``KernelLayout/unavailable`` says why), a given module was not
    /// loaded when the trace ended (unloaded during the trace, or misnamed), or the `.ko` is
    /// another build than the one loaded (their build ids differ).
    public func mapped(_ input: CoverageInput) throws(CoverageInputError) -> (input: CoverageInput, unmapped: [String: Int]) {
        guard let layout = input.kernel else {
            if modules.isEmpty { return (input, [:]) }
            throw CoverageInputError(
                path: input.path,
                "has no kernel layout (a rawcover or set file, or a trace from a kcovctl before trace format 3), so its module PCs cannot be placed: trace again with `kcovctl trace --format json`")
        }
        let loaded = Dictionary(layout.modules.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        // Every loaded module's executable sections in the running kernel, with where they go.
        struct Span { var start: UInt64; var size: UInt64; var target: UInt64?; var module: String }
        var spans: [Span] = []
        for module in modules {
            guard let running = loaded[module.name] else {
                let names = layout.modules.map(\.name)
                throw CoverageInputError(
                    path: input.path,
                    "no module \(module.name) was loaded when the trace ended (loaded: \(names.isEmpty ? "none" : names.joined(separator: ", "))): it was unloaded before the trace ended, or the name is wrong")
            }
            if let unavailable = layout.unavailable { throw CoverageInputError(path: input.path, "the module addresses were not recorded: \(unavailable)") }
            if let expected = running.buildID, let actual = module.image.contents(ofSection: ".note.gnu.build-id").flatMap(KernelLayout.gnuBuildID(notes:)),
               expected != actual {
                throw CoverageInputError(
                    path: module.path, "is another build of \(module.name) than the one traced (build id \(actual), the loaded module's \(expected)): pass the .ko that was loaded")
            }
            for section in module.image.executableSections {
                guard let address = running.sections[section.name] else { continue }
                spans.append(Span(start: address, size: UInt64(section.bytes.count), target: section.address, module: module.name))
            }
        }
        // Loaded modules without a .ko: their cores, so their PCs can be counted by name.
        for module in layout.modules where !modules.contains(where: { $0.name == module.name }) {
            spans.append(Span(start: module.base, size: module.size, target: nil, module: module.name))
        }
        guard !spans.isEmpty, layout.text != nil || !modules.isEmpty else { return (input, [:]) }
        guard let text = layout.text else {
            throw CoverageInputError(path: input.path, "the kernel's text address was not recorded: \(layout.unavailable ?? "no _text in /proc/kallsyms")")
        }
        let slide = text &- vmlinuxText
        spans.sort { $0.start < $1.start }
        var unmapped: [String: Int] = [:]
        var moved: [UInt64: UInt64] = [:]
        func place(_ pc: UInt64) -> UInt64 {
            if let known = moved[pc] { return known }
            let running = pc &+ slide
            var low = 0
            var high = spans.count
            while low < high {
                let middle = (low + high) / 2
                if spans[middle].start <= running { low = middle + 1 } else { high = middle }
            }
            var result = pc
            if low > 0, running - spans[low - 1].start < spans[low - 1].size {
                let span = spans[low - 1]
                if let target = span.target { result = target &+ (running - span.start) } else { unmapped[span.module, default: 0] += 1 }
            }
            moved[pc] = result
            return result
        }
        var mapped = input
        mapped.pcs = input.pcs.map(place)
        if let hits = input.hits {
            mapped.hits = Dictionary(hits.map { (place($0.key), $0.value) }, uniquingKeysWith: +)
        }
        return (mapped, unmapped)
    }
}
