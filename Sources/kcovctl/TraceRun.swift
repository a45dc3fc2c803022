import BackendSelection
import CoverageAPI

#if canImport(Glibc)
import Glibc
#endif

/// What `kcovctl trace` does on this machine (neither `--vm` nor `--follow`), over any backend
/// selection: resolves the program and the backend, checks the function selection against the
/// backend's granularity, collects the command's coverage and returns the report to render. The
/// fault-injection tests drive it over the reference models.
struct TraceRun {
    /// `--backend`: a backend's name or `auto`.
    var backend: String
    var mode: CoverageMode
    var words: Int
    var functions: FunctionSelection
    /// The command and its arguments (`command[0]` is resolved on PATH).
    var command: [String]
    /// Where the command's standard output goes (`nil`: this process's).
    var standardOutput: Int32?
    var timeout: Duration?

    /// Collects the command's coverage with the backend `backends` resolves; `note` is told what
    /// `auto` found and which functions were skipped.
    ///
    /// - Throws: the resolution's, the collector's and the command's errors; `.invalidArgument`
    ///   for functions given to a kcov backend, none given to a function-level one, or none of
    ///   them probe-able.
    func collect(over backends: BackendSelection, note: (String) -> Void) throws(CoverageError) -> TraceReport {
        let program = try Command(path: command[0], arguments: command, environment: []).resolvedPath()
        let choice = try backends.resolve(backend)
        if backend == BackendSelection.auto { note(choice.explanation) }
        let chosen = choice.backend
        let functionLevel = chosen.capabilities.granularity == .function
        if functionLevel && functions.isEmpty {
            throw CoverageError(
                .invalidArgument,
                "the \(chosen.name) backend records named functions only: pass --functions (for example --functions 'vfs_*,ksys_read') or --functions-file")
        }
        if !functionLevel && !functions.isEmpty {
            throw CoverageError(.invalidArgument, "--functions and --functions-file apply to the kprobe backend only; the \(chosen.name) backend records every block")
        }
        var collector = try CoverageCollector(backend: chosen, mode: mode, bufferWords: words, functions: functions)
        for skipped in collector.skippedFunctions { note("\(chosen.name): skipping \(skipped.name): \(skipped.reason)") }
        if functionLevel && collector.probedFunctions.isEmpty {
            throw CoverageError(.invalidArgument, "none of the named functions can be probed (see the reasons above)")
        }
        let result = try collector.run(Command(path: program, arguments: command, standardOutput: standardOutput, timeout: timeout))
        return TraceReport(
            backend: chosen.name, command: command, exit: result.exit, trace: result.trace, bufferWords: collector.bufferWords ?? 0,
            functions: functionLevel
                ? FunctionReport(probed: collector.probedFunctions, hits: result.trace.functions, skipped: collector.skippedFunctions) : nil,
            kernel: chosen.kernelLayout())
    }
}
