import ArgumentParser
import CoverageAPI
import CoverageSignal
import Foundation

/// `kcovctl merge`: the union of many trace files and set files, as one set file.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge trace files and set files into one set file: the union of their PCs, the same in any order.",
        discussion: """
            Each FILE is a trace file (`kcovctl trace --format json`, rawcover) or a set file \
            (`kcovctl signal --output`, an earlier merge). Files are read one at a time and only the \
            union is kept, so any number of files can be merged. Trace files give their PCs as recorded \
            (a kprobe trace its entered functions); set files must all hold the same kind and come \
            from the same kernel build (an unknown build matches any). Hit counts and the order of \
            execution are not kept: the result is a set. Without --output, the PCs are printed one \
            0x%016x a line, ascending. Feed the result to `kcovctl report`, `kcovctl diff` or \
            `kcovctl signal --new-against`.
            """)

    @Option(help: "Write the set file here (replaced atomically) instead of printing the PCs.")
    var output: String?

    @Option(help: "The kernel build the traces came from (e.g. `uname -rv` of the guest), recorded in the set file and checked against set files that name one.")
    var kernelBuild: String = ""

    @Argument(help: "Trace files (JSON from `kcovctl trace`, rawcover) and set files; - for a trace on standard input.")
    var files: [String] = []

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one trace or set file to merge") }
    }

    func run() throws {
        do {
            var union = SetUnion(edges: false, dropsImplausible: false, kernel: kernelBuild)
            for path in files { try union.add(path: path) }
            for warning in union.warnings { note("warning: \(warning)") }
            if let output {
                try OutputFile.write(union.file.encoded(), to: output)
            } else {
                try writeRawcover(union.set)
            }
        } catch let error as InputError {
            throw fail(CoverageError(.invalidArgument, error.description))
        } catch {
            throw fail(error)
        }
    }
}
