import ArgumentParser
import CoverageAPI
import CoverageSignal
import Foundation
import TraceFile

/// `kcovctl signal`: trace files as fuzzing signal, for scripts and other tools.
struct SignalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Print the signal of trace files (one 0x%016x a line, sorted), or write it as a set file.",
        discussion: """
            Each FILE is a trace file of `kcovctl trace --format json` (any version) or rawcover, or a \
            set file (`--output`, `kcovctl merge`); `-` is standard input (a trace file). Block signal is the set of PCs (for a kprobe trace, of entered \
            functions); --edges gives syzkaller's edge signal (pc ^ hash of the previous PC), computed \
            per task, for traces in execution order only. Entries that cannot be kernel PCs (a fuzzed \
            program can write into the buffer) are dropped and counted. A truncated trace still \
            contributes: its signal is a lower bound, and a warning says so.
            """)

    @Flag(help: "Edge signal instead of block signal (ordered traces only).")
    var edges = false

    @Option(help: "Print (or write) only the signal not in this set file (written by --output).")
    var newAgainst: String?

    @Option(help: "Write a set file here instead of printing: compact, mergeable in any order.")
    var output: String?

    @Option(help: "With --output: the kernel build the traces came from (e.g. `uname -rv` of the guest), checked when sets meet.")
    var kernelBuild: String = ""

    @Argument(help: "Trace files: JSON from `kcovctl trace` or rawcover; - for standard input.")
    var files: [String] = []

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one trace file (rawcover or `kcovctl trace --format json`)") }
    }

    func run() throws {
        do {
            var union = SetUnion(edges: edges, dropsImplausible: true, kernel: kernelBuild)
            for path in files { try union.add(path: path) }
            for warning in union.warnings { note("warning: \(warning)") }
            var result = union.file
            if let newAgainst {
                let base = try SignalSetFile.decode(try readBytes(newAgainst), source: newAgainst)
                try result.checkCompatible(content: base.content, kernel: base.kernel, source: newAgainst)
                result.set = result.set.subtracting(base.set)
            }
            if let output {
                try writeBytes(result.encoded(), to: output)
            } else {
                try writeRawcover(result.set)
            }
        } catch let error as InputError {
            throw fail(CoverageError(.invalidArgument, error.description))
        } catch let error as ValidationError {
            throw error
        } catch {
            throw fail(error)
        }
    }

    private func readBytes(_ path: String) throws -> [UInt8] {
        do {
            return try TraceFile.readBytes(path: path, kind: "set file")
        } catch {
            throw CoverageError(.invalidArgument, error.description)
        }
    }

    private func writeBytes(_ bytes: [UInt8], to path: String) throws {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CoverageError(.system, "cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// Writes `set` to standard output, one `0x%016x` a line in ascending order.
func writeRawcover(_ set: PCSet) throws {
    var text = [UInt8]()
    text.reserveCapacity(set.count * 19)
    for element in set {
        appendHex(element, to: &text)
        text.append(0x0a)
    }
    try StandardStream.writeOutput(text)
}
