import ArgumentParser
import CoverageAPI
import CoverageReport
import TraceFile
import Foundation
import KernelImage
import KernelSymbolizer

/// `kcovctl symbolize`: kernel PCs to function, file and line, inlined frames included, like
/// `addr2line -afi` but in one pass over the DWARF.
struct SymbolizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "symbolize",
        abstract: "Print the function, file and line of kernel PCs, inlined frames included, from a vmlinux's DWARF.",
        discussion: """
            One line per PC, `0x%016x function file:line`, for the innermost (inlined) function, then \
            one indented `(inlined by) function file:line` line for each function it was inlined \
            into, the one it was compiled into last: what `addr2line -afi` reports. PCs the vmlinux \
            has no code or no debug information for print `?? ??:0` and are counted in a warning. \
            All PCs are symbolized in one batch that reads each compilation unit once. A trace file \
            read from standard input places its module PCs through its kernel layout \
            (Docs/modules.md): give each module's .ko with --module or --modules.
            """)

    @Option(help: "The unstripped vmlinux of the kernel the PCs came from.")
    var vmlinux: String

    @Flag(help: "The PCs are return addresses, as kcov records them: symbolize the call before each (PC - 1) and print the PC as given.")
    var returnAddresses = false

    @Option(name: .customLong("module"), help: "A loaded module's .ko, as NAME=PATH (repeatable): the module PCs of the trace read from standard input are symbolized in it.")
    var module: [String] = []

    @Option(help: "A folder of .ko files (searched to any depth): the modules the trace read from standard input had loaded are looked up there.")
    var modules: String?

    @Argument(help: "PCs in hexadecimal (0x optional), or - to read them from standard input: one a line (a rawcover file), or a `kcovctl trace --format json` file.")
    var pcs: [String] = []

    func validate() throws {
        guard !pcs.isEmpty else { throw ValidationError("give PCs in hexadecimal, or - to read them from standard input") }
        if !module.isEmpty || modules != nil, pcs != ["-"] {
            throw ValidationError("--module and --modules place module PCs through a trace's kernel layout: pipe a `kcovctl trace --format json` file in with -")
        }
        for entry in module where ModuleArguments.parse(entry) == nil {
            throw ValidationError("--module takes NAME=PATH.ko (for example kcov_test_module=/lib/modules/6.12.0/extra/kcov_test_module.ko), not '\(entry)'")
        }
        if pcs.contains("-") {
            guard pcs.count == 1 else { throw ValidationError("- (read standard input) cannot be mixed with PCs on the command line") }
            return
        }
        if let bad = pcs.first(where: { CoverageInput.parsePC($0) == nil }) { throw ValidationError("'\(bad)' is not a hexadecimal PC") }
    }

    func run() throws {
        let input = pcs == ["-"] ? try readStandardInput() : nil
        let addresses = input?.pcs ?? pcs.map { CoverageInput.parsePC($0)! }
        let frames: [[SymbolFrame]]
        do {
            let symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
            // Module PCs move to where their .ko's symbolizer answers (Docs/modules.md); others stay.
            var lookups = addresses
            var placed: ModuleCoverage?
            let asked = !module.isEmpty || modules != nil
            if asked, input?.kernel == nil {
                throw CoverageInputError(
                    path: "standard input",
                    "has no kernel layout (rawcover, or a trace from a kcovctl before trace format 3), so its module PCs cannot be placed: trace again with `kcovctl trace --format json`")
            }
            if let input, let layout = input.kernel, asked || !layout.modules.isEmpty {
                let given = try ModuleCoverage(
                    paths: try ModuleArguments(module: module, folder: modules).paths(loaded: Set(layout.modules.map(\.name))),
                    vmlinux: try KernelImage(path: vmlinux))
                let (mapped, unmapped) = try given.mapped(input)
                lookups = mapped.pcs
                placed = given
                noteUnmappedModules(unmapped)
            }
            if returnAddresses { lookups = lookups.map { $0 &- 1 } }
            frames = try Self.frames(of: lookups, vmlinux: symbolizer, modules: placed)
        } catch {
            throw fail(error)
        }
        var output: [UInt8] = []
        output.reserveCapacity(1 << 20)
        var unknown = 0
        for (pc, stack) in zip(addresses, frames) {
            if output.count >= 1 << 20 {
                do { try StandardStream.writeOutput(output) } catch { throw fail(error) }
                output.removeAll(keepingCapacity: true)
            }
            appendHex(pc, to: &output)
            guard let innermost = stack.first else {
                unknown += 1
                output.append(contentsOf: " ?? ??:0\n".utf8)
                continue
            }
            append(innermost, to: &output)
            for caller in stack.dropFirst() {
                output.append(contentsOf: "    (inlined by)".utf8)
                append(caller, to: &output)
            }
        }
        do { try StandardStream.writeOutput(output) } catch { throw fail(error) }
        if unknown > 0 {
            note("warning: \(unknown) of \(addresses.count) PCs have no code or debug information in \(vmlinux) (printed as ?? ??:0): PCs of another build, or KASLR not undone?")
        }
    }

    /// Each PC's frames, from the module whose space holds it (``ModuleCoverage/module(containing:)``),
    /// else from the vmlinux: one batch per symbolizer.
    private static func frames(of pcs: [UInt64], vmlinux: KernelSymbolizer, modules: ModuleCoverage?) throws(SymbolizerError) -> [[SymbolFrame]] {
        let owner = pcs.map { pc in modules?.module(containing: pc) ?? -1 }
        var frames = [[SymbolFrame]](repeating: [], count: pcs.count)
        for index in -1..<(modules?.modules.count ?? 0) {
            let positions = owner.indices.filter { owner[$0] == index }
            guard !positions.isEmpty else { continue }
            let symbolizer = index < 0 ? vmlinux : modules!.modules[index].symbolizer
            let answers = try symbolizer.checkedFrames(for: positions.map { pcs[$0] })
            for (position, answer) in zip(positions, answers) { frames[position] = answer }
        }
        return frames
    }

    /// The PCs on standard input (rawcover, or the JSON of `trace`, with its kernel layout):
    /// unreadable is a failure (exit 1), malformed a usage error (64).
    private func readStandardInput() throws -> CoverageInput {
        let bytes: [UInt8]
        do {
            bytes = try TraceFile.readBytes(path: "-", kind: "PCs")
        } catch {
            throw fail(CoverageError(.system, error.description))
        }
        do {
            return try CoverageInput(TraceFile.decode(bytes: bytes, source: "standard input"), path: "standard input")
        } catch {
            StandardStream.writeError(Data("kcovctl: error: \(error)\n".utf8))
            throw ExitStatus.usage
        }
    }
}

/// ` function file:line` and a newline, with addr2line's `??` and `?` for what is unknown.
private func append(_ frame: SymbolFrame, to output: inout [UInt8]) {
    output.append(UInt8(ascii: " "))
    output.append(contentsOf: (frame.function ?? "??").utf8)
    output.append(UInt8(ascii: " "))
    output.append(contentsOf: frame.file.utf8)
    output.append(UInt8(ascii: ":"))
    output.append(contentsOf: (frame.line == 0 ? "?" : String(frame.line)).utf8)
    output.append(UInt8(ascii: "\n"))
}
