package import CoverageAPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// What every backend makes of the seam's results alike: a failed syscall with no coverage meaning,
// and a command run with coverage enabled in the child. Only the child's ENABLE errno is the
// backend's own.

extension CoverageError {
    /// A syscall failure with no coverage meaning, worded the same on every backend.
    package static func system(_ call: String, errno code: Int32) -> CoverageError {
        CoverageError(.system, "\(call) failed: \(String(cString: strerror(code)))", syscall: call, errno: code)
    }
}

extension CommandExit {
    /// How a child the seam waited for ended, as the API reports it.
    package init(_ status: ExitStatus) {
        switch status {
        case .exited(let code): self = .exited(code)
        case .signaled(let signal): self = .signaled(signal)
        }
    }
}

extension KernelInterface {
    /// Runs `command` in a child that enables coverage with `enable`
    /// (``spawnEnabled(_:fd:enable:buffer:bufferBytes:)``) and waits for it, at most its timeout.
    /// A failed ENABLE in the child becomes `enableError(errno)`; exec, redirection and fork
    /// failures become `.commandFailed` and `.system`; a non-positive timeout is `.invalidArgument`.
    package func run(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int,
        enableError: (CInt) -> CoverageError
    ) throws(CoverageError) -> CommandExit {
        let timeout = try Command.milliseconds(of: command.timeout)
        let outcome = spawnEnabled(command, fd: fd, enable: enable, buffer: buffer, bufferBytes: bufferBytes)
        switch outcome {
        case .running(let pid):
            guard let timeout else { return CommandExit(waitForExit(pid)) }
            let (status, timedOut) = waitForExit(pid, milliseconds: timeout)
            return timedOut ? .timedOut : CommandExit(status)
        case .enableFailed(let code):
            throw enableError(code)
        case .execFailed(let code):
            let advice = switch code {
            case ENOENT: ": there is no such file; give the program's path (absolute, or relative to the current directory) or a name on PATH"
            case EACCES: ": permission denied; is it an executable file?"
            default: ": \(String(cString: strerror(code)))"
            }
            throw CoverageError(.commandFailed, "cannot run \(command.path)" + advice, syscall: "execve", errno: code)
        case .redirectFailed(let code):
            throw CoverageError(
                .commandFailed,
                "cannot give \(command.path) its standard streams: dup2 failed (\(String(cString: strerror(code)))); pass open descriptors of this process",
                syscall: "dup2", errno: code)
        case .forkFailed(let code):
            throw CoverageError.system("fork", errno: code)
        }
    }

    /// The fork server's step (``forkEnabled(fd:enable:buffer:timeoutMilliseconds:child:)``): runs
    /// `body` in a forked child that enabled coverage with `enable`, and waits for it, at most
    /// `timeout`. A failed ENABLE in the child becomes `enableError(errno)`; a failed fork is
    /// `.system`; a non-positive timeout is `.invalidArgument`.
    package func runForked(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeout: Duration?, body: () -> Int32,
        enableError: (CInt) -> CoverageError
    ) throws(CoverageError) -> ForkedChild {
        let milliseconds = try Command.milliseconds(of: timeout)
        switch forkEnabled(fd: fd, enable: enable, buffer: buffer, timeoutMilliseconds: milliseconds, child: body) {
        case .finished(let pid, let status, let timedOut):
            return ForkedChild(pid: pid, exit: timedOut ? .timedOut : CommandExit(status))
        case .enableFailed(let code):
            throw enableError(code)
        case .forkFailed(let code):
            throw CoverageError.system("fork", errno: code)
        }
    }
}
