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
            Each FILE is a trace file of `kcovctl trace --format json` (any version) or rawcover; `-` \
            is standard input. Block signal is the set of PCs (for a kprobe trace, of entered \
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
            var signal = PCSet()
            var content: SignalSetFile.Content?
            var dropped = 0
            var truncated: [String] = []
            for path in files {
                let file = try TraceFile.read(path: path)
                let unit = file.unit
                let fileContent: SignalSetFile.Content = unit == .function ? .functions : edges ? .edges : .pcs
                if let content, content != fileContent {
                    throw ValidationError("\(path) holds \(fileContent.name), the files before it \(content.name): signal one kind at a time")
                }
                content = fileContent
                let extraction = try SignalExtraction(
                    kind: edges ? .edges : .blocks, unit: unit, orderedTrace: unit == .pc && file.mode == .pc)
                for task in file.tasks {
                    dropped += extraction.forEachSignal(of: task.entryPCs) { signal.insert($0) }
                }
                if file.isTruncated { truncated.append(path) }
            }
            if !truncated.isEmpty {
                note("warning: \(truncated.count) of \(files.count) traces filled their buffer (\(truncated.joined(separator: ", "))): their signal is a lower bound")
            }
            if dropped > 0 { note("warning: \(dropped) entries were not kernel PCs and were dropped (a buffer written by the traced program?)") }
            var result = SignalSetFile(content: content ?? .pcs, kernel: kernelBuild, set: signal)
            if let newAgainst {
                let base = try SignalSetFile.decode(try readBytes(newAgainst), source: newAgainst)
                try result.checkCompatible(content: base.content, kernel: base.kernel, source: newAgainst)
                result.set = signal.subtracting(base.set)
            }
            if let output {
                try writeBytes(result.encoded(), to: output)
            } else {
                var text = [UInt8]()
                text.reserveCapacity(result.set.count * 19)
                for element in result.set {
                    appendHex(element, to: &text)
                    text.append(0x0a)
                }
                try StandardStream.writeOutput(text)
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
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CoverageError(.invalidArgument, "\(path): cannot read the set file: \(error.localizedDescription)")
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
