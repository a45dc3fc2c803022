import ArgumentParser
import CoverageAPI
import CoverageReport
import TraceFile
import Foundation
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
            All PCs are symbolized in one batch that reads each compilation unit once.
            """)

    @Option(help: "The unstripped vmlinux of the kernel the PCs came from.")
    var vmlinux: String

    @Flag(help: "The PCs are return addresses, as kcov records them: symbolize the call before each (PC - 1) and print the PC as given.")
    var returnAddresses = false

    @Argument(help: "PCs in hexadecimal (0x optional), or - to read them from standard input, one a line (a rawcover file).")
    var pcs: [String] = []

    func validate() throws {
        guard !pcs.isEmpty else { throw ValidationError("give PCs in hexadecimal, or - to read them from standard input") }
        if pcs.contains("-") {
            guard pcs.count == 1 else { throw ValidationError("- (read standard input) cannot be mixed with PCs on the command line") }
            return
        }
        if let bad = pcs.first(where: { CoverageInput.parsePC($0) == nil }) { throw ValidationError("'\(bad)' is not a hexadecimal PC") }
    }

    func run() throws {
        let addresses = pcs == ["-"] ? try readStandardInput() : pcs.map { CoverageInput.parsePC($0)! }
        let symbolizer: KernelSymbolizer
        do {
            symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
        } catch {
            throw fail(error)
        }
        let frames: [[SymbolFrame]]
        do {
            frames = try symbolizer.checkedFrames(for: returnAddresses ? addresses.map { $0 &- 1 } : addresses)
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

    /// PCs from standard input: rawcover, or the JSON of `trace`. A malformed line is a usage error.
    /// The PCs on standard input: unreadable is a failure (exit 1), malformed a usage error (64).
    private func readStandardInput() throws -> [UInt64] {
        let bytes: [UInt8]
        do {
            bytes = try TraceFile.readBytes(path: "-", kind: "PCs")
        } catch {
            throw fail(CoverageError(.system, error.description))
        }
        do {
            return try CoverageInput(TraceFile.decode(bytes: bytes, source: "standard input"), path: "standard input").pcs
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
