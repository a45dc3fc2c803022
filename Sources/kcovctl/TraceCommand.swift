import ArgumentParser
import CoverageAPI
import Foundation
import BackendSelection
import TraceFile
import WholeRun

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

            With --follow, every thread and process the command and its descendants create is traced \
            apart (an agent library the loader injects gives each task a kcov; Docs/follow.md): the \
            JSON holds one task record per task and image (pid, tid, parent, executable, start and end \
            order, how it ended, truncation) and lists what could not be traced with the reason; the \
            summary counts traced, truncated and untraced tasks. Default buffer with --follow: 1 Mi \
            words (8 MiB) per task.
            """)

    @Option(help: "Backend: \(BackendSelection.optionValues).")
    var backend: String = BackendSelection.auto

    @Option(help: "What to record: pc (covered blocks) or cmp (comparison operands).")
    var mode: ModeOption = .pc

    /// 4 Mi words (32 MiB): a whole program's exec, dynamic loading and run.
    static let defaultBufferWords = 1 << 22

    @Option(parsing: .unconditional, help: "Buffer size in 64-bit words, count word included (default 4 Mi words, 32 MiB: a whole program's exec and run; with --follow 1 Mi words per task).")
    var bufferWords: Int?

    var words: Int { bufferWords ?? (follow ? WholeRunRequest.defaultBufferWords : Self.defaultBufferWords) }

    @Flag(help: "Trace every thread and process of the command and its descendants, each apart (Docs/follow.md).")
    var follow = false

    @Option(parsing: .unconditional, help: "With --follow: seconds to wait, after the command exits, for descendants still running (then they are read as they are).")
    var linger: Double = 5

    @Option(help: "Output: summary, rawcover (one 0x%016x PC a line, trace order) or json.")
    var format: TraceFormat = .summary

    @Option(help: "Write the result to this file instead of standard output.")
    var output: String?

    @Flag(help: "Run this trace inside the project's test kernel under QEMU.")
    var vm = false

    @OptionGroup(title: "With --vm")
    var guest: GuestOptions

    @Option(help: "kprobe backend: functions to probe — names or globs over /proc/kallsyms, comma-separated or repeated.")
    var functions: [String] = []

    @Option(help: "kprobe backend: a file of function names or globs, one a line.")
    var functionsFile: [String] = []

    var selection: FunctionSelection {
        FunctionSelection(
            patterns: functions.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty },
            files: functionsFile)
    }

    @Option(parsing: .unconditional, help: "Kill the command with SIGKILL after this many seconds; the trace keeps what it covered until then.")
    var timeout: Double?

    @Argument(parsing: .postTerminator, help: "The command to trace, after --.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("name a command to trace after --, for example: kcovctl trace -- /bin/true") }
        guard BackendSelection.system.names.contains(backend) else {
            throw ValidationError("there is no backend called \"\(backend)\": use one of \(BackendSelection.optionValues)")
        }
        guard words >= 2 else { throw ValidationError("--buffer-words must be at least 2 (one count word and one entry)") }
        if follow && !selection.isEmpty { throw ValidationError("--follow records every block of every task: --functions and --functions-file do not apply") }
        guard linger >= 0 && linger <= 3600 else { throw ValidationError("--linger must be 0 to 3600 seconds, not \(linger)") }
        if guest.given && !vm { throw ValidationError(GuestOptions.onlyWithVM) }
        if let timeout, !(timeout > 0 && timeout <= 86_400) {
            throw ValidationError("--timeout must be a number of seconds above 0 and at most 86400, not \(timeout)")
        }
    }

    func run() throws {
        if vm { return try runInGuest() }
        if follow { return try runFollowing() }
        do {
            // rawcover and JSON on standard output must hold only the trace: the command's own
            // output goes to standard error instead.
            let run = TraceRun(
                backend: backend, mode: mode.mode, words: words, functions: selection, command: command,
                standardOutput: output == nil && format != .summary ? STDERR_FILENO : nil,
                timeout: timeout.map { .milliseconds(Int64(($0 * 1000).rounded(.up))) })
            try write(try run.collect(over: BackendSelection.system, note: note).render(format))
        } catch {
            throw fail(error)
        }
    }

    /// Re-runs this subcommand, minus `--vm`, `--kvm` and `--output`, in the test kernel.
    private func runInGuest() throws {
        var arguments = ["trace", "--backend", backend, "--mode", mode.rawValue,
                         "--buffer-words", String(words), "--format", format.rawValue]
        if follow { arguments += ["--follow", "--linger", String(linger)] }
        for pattern in functions { arguments += ["--functions", pattern] }
        for file in functionsFile { arguments += ["--functions-file", file] }
        if let timeout { arguments += ["--timeout", String(timeout)] }
        arguments.append("--")
        arguments += command
        do {
            let result = try GuestLauncher(guest, needs: GuestLauncher.needs(backend: backend)).run([try GuestLauncher.selfPath()] + arguments)
            StandardStream.writeError(result.standardError)
            guard result.exitStatus == 0 else { throw ExitCode(result.exitStatus) }
            try write(String(decoding: result.standardOutput, as: UTF8.self))
        } catch {
            throw fail(error)
        }
    }

    /// `--follow`: the whole run through the agent (Docs/follow.md).
    private func runFollowing() throws {
        do {
            let program = try Command(path: command[0], arguments: command, environment: []).resolvedPath()
            let chosen = try BackendSelection.resolveOption(backend, explain: note)
            guard chosen.capabilities.wholeRunAgent else {
                throw CoverageError(
                    .unsupportedOperation,
                    "--follow needs a backend the follow agent speaks (its kcov device and ABI); the \(chosen.name) backend is not one: use --backend linux")
            }
            guard chosen.capabilities.supportedModes.contains(mode.mode) else {
                throw CoverageError(.unsupportedMode, "the \(chosen.name) backend has no \(mode.rawValue) mode")
            }
            if let rules = chosen.capabilities.buffer, !rules.words.contains(words) {
                throw CoverageError(.bufferSize, "--buffer-words \(words) is outside what \(chosen.name) accepts (\(rules.words.lowerBound)...\(rules.words.upperBound))")
            }
            let agent = try GuestLauncher.selfDirectory() + "/libKcovFollowAgent.so"
            let result = try WholeRunCollector.run(WholeRunRequest(
                command: Command(
                    path: program, arguments: command, standardOutput: output == nil && format != .summary ? STDERR_FILENO : nil,
                    timeout: timeout.map { .milliseconds(Int64(($0 * 1000).rounded(.up))) }),
                agentPath: agent, bufferWords: words, mode: mode.mode, linger: .milliseconds(Int64(linger * 1000))))
            var file = result.traceFile
            file.kernel = chosen.kernelLayout()
            let report = WholeRunReport(file: file, exit: result.exit, peakBuffers: result.peakBuffers)
            let text: String
            switch format {
            case .summary: text = report.summary()
            case .rawcover: text = TraceReport.rawcover(file.pcs)
            case .json: text = String(decoding: try file.jsonData(), as: UTF8.self)
            }
            try write(text)
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
