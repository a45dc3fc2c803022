import ArgumentParser
import CoverageAPI
import Foundation

/// Exit statuses scripts can rely on.
enum ExitStatus {
    static let failure = ExitCode(1)
    static let unavailable = ExitCode(2)
    static let usage = ExitCode.validationFailure  // 64
}

/// Prints a one-line error and returns the exit code it deserves.
func fail(_ error: any Error) -> ExitCode {
    let line: String
    let code: ExitCode
    switch error {
    case let coverage as CoverageError:
        line = coverage.description
        code = exitCode(for: coverage)
    case let exit as ExitCode:
        return exit
    default:
        line = String(describing: error)
        code = ExitStatus.failure
    }
    StandardStream.writeError(Data("kcovctl: error: \(line)\n".utf8))
    return code
}

/// A request the backend's capabilities rule out before any syscall is a usage error; a kernel
/// that lacks the device or the mode makes the backend unavailable; anything else is a failure.
func exitCode(for error: CoverageError) -> ExitCode {
    let refusedByCapabilities = error.syscall == nil && [.bufferSize, .unsupportedMode, .unsupportedOperation].contains(error.code)
    if refusedByCapabilities { return ExitStatus.usage }
    return error.meansUnavailable ? ExitStatus.unavailable : ExitStatus.failure
}

/// Writes a progress line to standard error.
@Sendable func note(_ line: String) {
    StandardStream.writeError(Data("kcovctl: \(line)\n".utf8))
}
