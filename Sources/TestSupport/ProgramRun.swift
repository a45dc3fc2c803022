package import Foundation
import KernelSeam

#if canImport(Glibc)
import Glibc
#endif

// Running programs from tests: the built kcovctl and host tools, with their outputs captured. Both
// ways of starting a program send its outputs to temporary files, read once it has exited.

/// What a finished program printed, and how it ended.
package struct ProgramResult: Sendable {
    /// Its exit status, or 128 plus the number of the signal that ended it (as a shell says).
    package var status: Int32
    /// Its standard output.
    package var standardOutput: Data
    /// Its standard error (empty when it was not captured).
    package var standardError: Data

    /// Standard output as UTF-8 text.
    package var output: String { String(decoding: standardOutput, as: UTF8.self) }
    /// Standard error as UTF-8 text.
    package var errors: String { String(decoding: standardError, as: UTF8.self) }
}

/// A program a test needs that is missing or failed.
package struct ProgramFailure: Error, CustomStringConvertible {
    package var description: String
}

/// `.build/<config>/kcovctl`, beside the running test bundle; throws when it is not built.
package func builtKcovctl() throws -> String {
    let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let program = URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("kcovctl").path
    guard FileManager.default.isExecutableFile(atPath: program) else {
        throw ProgramFailure(description: "\(program) is not built: run `swift build --build-tests`")
    }
    return program
}

/// Runs the built kcovctl with `arguments` through ``runProgram(_:input:timeLimit:)``.
package func runKcovctl(_ arguments: [String], input: String? = nil, timeLimit: Int? = nil) throws -> ProgramResult {
    try runProgram([try builtKcovctl()] + arguments, input: input, timeLimit: timeLimit)
}

/// Runs a host tool that must exit 0, with `input` on standard input; returns its standard output.
package func runTool(_ executable: String, _ arguments: [String], input: String? = nil) throws -> String {
    let result = try runProgram([executable] + arguments, input: input)
    guard result.status == 0 else {
        throw ProgramFailure(description: "\(executable) \(arguments.joined(separator: " ")) exited with \(result.status): \(result.errors)")
    }
    return result.output
}

/// Runs `command` (an executable's path, then its arguments) to its end with Foundation's
/// `Process`: standard input is `input` (or /dev/null), both outputs are captured, and after
/// `timeLimit` seconds, if given, it is terminated.
package func runProgram(_ command: [String], input: String? = nil, timeLimit: Int? = nil) throws -> ProgramResult {
    let files = CaptureFiles()
    defer { files.remove() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    if let input {
        try input.write(toFile: files.input, atomically: false, encoding: .utf8)
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: files.input))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    for path in [files.output, files.errors] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: files.output))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: files.errors))
    try process.run()
    let watchdog = timeLimit.map { seconds in
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + .seconds(seconds))
        timer.setEventHandler { if process.isRunning { process.terminate() } }
        timer.resume()
        return timer
    }
    process.waitUntilExit()
    watchdog?.cancel()
    let signaled = process.terminationReason == .uncaughtSignal
    return files.result(status: signaled ? 128 + process.terminationStatus : process.terminationStatus)
}

/// Runs `command` to its end with posix_spawn, for tests inside the test kernel's guest, where
/// Foundation's `Process` never learns that a child exited (CoreFoundation cannot create its wakeup
/// socket pair there): standard input is /dev/null, standard output is captured, and standard error
/// too when `capturingErrors` (otherwise the child shares this process's).
package func spawnProgram(_ command: [String], capturingErrors: Bool = true) throws -> ProgramResult {
    let files = CaptureFiles()
    defer { files.remove() }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, files.output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if capturingErrors { posix_spawn_file_actions_addopen(&actions, 2, files.errors, O_WRONLY | O_CREAT | O_TRUNC, 0o600) }
    var argv = command.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
    guard spawned == 0 else { throw CocoaError(.fileNoSuchFile, userInfo: ["errno": spawned, "path": command[0]]) }
    switch SystemKernel().waitForExit(pid) {
    case .exited(let status): return files.result(status: status)
    case .signaled(let signal): return files.result(status: 128 + signal)
    }
}

/// The temporary files a program's standard streams go to, removed after it has run.
private struct CaptureFiles {
    let input: String
    let output: String
    let errors: String

    /// Fresh names under the temporary directory; nothing is created yet.
    init() {
        let base = NSTemporaryDirectory() + "/program-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        (input, output, errors) = (base + ".in", base + ".out", base + ".err")
    }

    /// What the program wrote, with its `status`.
    func result(status: Int32) -> ProgramResult {
        ProgramResult(
            status: status, standardOutput: FileManager.default.contents(atPath: output) ?? Data(),
            standardError: FileManager.default.contents(atPath: errors) ?? Data())
    }

    /// Deletes whichever of the files exist.
    func remove() {
        for path in [input, output, errors] { unlink(path) }
    }
}
