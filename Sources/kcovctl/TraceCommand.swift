import ArgumentParser
import CoverageAPI
import Foundation
import BackendSelection

/// `kcovctl trace`: runs a command with coverage enabled on its main thread and writes what it covered.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run a command with kernel coverage enabled on its main thread and write what it covered.",
        discussion: """
            The coverage device is opened, sized and mapped here; a forked child enables coverage for \
            itself and execs the command, so the trace holds the kernel code the command's main thread \
            ran (threads it starts are not recorded). Exits 0 when coverage was collected, whatever the \
            command's own status, which the summary and JSON report.

            With --backend kprobe (or when `auto` finds no kcov but kprobes), coverage is per function: \
            a counting kprobe on each function --functions names (names, globs over /proc/kallsyms, \
            comma-separated or repeated; --functions-file for a list), armed when the command execs \
            and inherited by its threads and children. The JSON adds "functions" (name, pc, hits) and \
            "skipped" (functions that cannot be probed, with the reason).
            """)

    @Option(help: "Backend: \(BackendSelection.optionValues).")
    var backend: String = BackendSelection.auto

    @Option(help: "What to record: pc (covered blocks) or cmp (comparison operands).")
    var mode: ModeOption = .pc

    /// 4 Mi words (32 MiB): a whole program's exec, dynamic loading and run.
    static let defaultBufferWords = 1 << 22

    @Option(help: "Buffer size in 64-bit words, count word included (default 4 Mi words, 32 MiB: a whole program's exec and run).")
    var bufferWords: Int = TraceCommand.defaultBufferWords

    @Option(help: "Output: summary, rawcover (one 0x%016x PC a line, trace order) or json.")
    var format: TraceFormat = .summary

    @Option(help: "Write the result to this file instead of standard output.")
    var output: String?

    @Flag(help: "Run this trace inside the project's test kernel under QEMU.")
    var vm = false

    @Flag(help: "With --vm: use KVM instead of software emulation (may hang on some hosts).")
    var kvm = false

    @Option(help: "kprobe backend: functions to probe — names or globs over /proc/kallsyms, comma-separated or repeated.")
    var functions: [String] = []

    @Option(help: "kprobe backend: a file of function names or globs, one a line.")
    var functionsFile: [String] = []

    var selection: FunctionSelection {
        FunctionSelection(
            patterns: functions.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty },
            files: functionsFile)
    }

    @Argument(parsing: .postTerminator, help: "The command to trace, after --.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("name a command to trace after --, for example: kcovctl trace -- /bin/true") }
        guard BackendSelection.system.names.contains(backend) else {
            throw ValidationError("there is no backend called \"\(backend)\": use one of \(BackendSelection.optionValues)")
        }
        guard bufferWords >= 2 else { throw ValidationError("--buffer-words must be at least 2 (one count word and one entry)") }
        if kvm && !vm { throw ValidationError("--kvm only applies with --vm") }
    }

    func run() throws {
        if vm { return try runInGuest() }
        // rawcover and JSON on standard output must hold only the trace: the command's own output
        // goes to standard error instead.
        let commandOutput = output == nil && format != .summary ? CommandOutputOnStandardError() : nil
        defer { commandOutput?.restore() }
        do {
            let program = try Command(path: command[0], arguments: command, environment: []).resolvedPath()
            let chosen = try BackendSelection.resolveOption(backend, explain: note)
            let functionLevel = chosen.capabilities.granularity == .function
            if functionLevel && selection.isEmpty {
                throw CoverageError(
                    .invalidArgument,
                    "the \(chosen.name) backend records named functions only: pass --functions (for example --functions 'vfs_*,ksys_read') or --functions-file")
            }
            if !functionLevel && !selection.isEmpty {
                throw CoverageError(.invalidArgument, "--functions and --functions-file apply to the kprobe backend only; the \(chosen.name) backend records every block")
            }
            var collector = try CoverageCollector(backend: chosen, mode: mode.mode, bufferWords: bufferWords, functions: selection)
            for skipped in collector.skippedFunctions { note("\(chosen.name): skipping \(skipped.name): \(skipped.reason)") }
            if functionLevel && collector.probedFunctions.isEmpty {
                throw CoverageError(.invalidArgument, "none of the named functions can be probed (see the reasons above)")
            }
            let result = try collector.run(Command(
                path: program, arguments: command, environment: ProcessInfo.processInfo.environment.map { "\($0)=\($1)" }))
            let text = try TraceReport(
                backend: chosen.name, command: command, exit: result.exit, trace: result.trace, bufferWords: collector.bufferWords ?? 0,
                functions: functionLevel
                    ? FunctionReport(probed: collector.probedFunctions, hits: result.trace.functions, skipped: collector.skippedFunctions) : nil
            ).render(format)
            commandOutput?.restore()
            try write(text)
        } catch {
            throw fail(error)
        }
    }

    /// Re-runs this subcommand, minus `--vm`, `--kvm` and `--output`, in the test kernel.
    private func runInGuest() throws {
        var arguments = ["trace", "--backend", backend, "--mode", mode.rawValue,
                         "--buffer-words", String(bufferWords), "--format", format.rawValue]
        for pattern in functions { arguments += ["--functions", pattern] }
        for file in functionsFile { arguments += ["--functions-file", file] }
        arguments.append("--")
        arguments += command
        do {
            let result = try GuestLauncher(kvm: kvm).run([try GuestLauncher.selfPath()] + arguments)
            StandardStream.writeError(result.standardError)
            guard result.exitStatus == 0 else { throw ExitCode(result.exitStatus) }
            try write(String(decoding: result.standardOutput, as: UTF8.self))
        } catch {
            throw fail(error)
        }
    }

    private func write(_ text: String) throws {
        if let output {
            do {
                try text.write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                throw CoverageError(.system, "cannot write \(output): \(error.localizedDescription)")
            }
        } else {
            try StandardStream.writeOutput(Array(text.utf8))
        }
    }
}

/// Points standard output at standard error while the traced command runs, so a trace printed on
/// standard output is not mixed with the command's output; ``restore()`` undoes it.
final class CommandOutputOnStandardError {
    private var saved: Int32

    init() {
        fflush(nil)
        saved = dup(STDOUT_FILENO)
        if saved >= 0 { dup2(STDERR_FILENO, STDOUT_FILENO) }
    }

    /// Standard output is itself again (once; later calls do nothing).
    func restore() {
        guard saved >= 0 else { return }
        fflush(nil)
        dup2(saved, STDOUT_FILENO)
        close(saved)
        saved = -1
    }
}
