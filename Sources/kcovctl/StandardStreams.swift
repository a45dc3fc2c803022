import CoverageAPI
import Foundation

/// Standard output and error, written with write(2): a closed or full stream is an error to
/// report (output) or to pass over (error), never a trap as with `FileHandle.write`.
enum StandardStream {
    case output
    case error

    var descriptor: Int32 { self == .output ? STDOUT_FILENO : STDERR_FILENO }
    var name: String { self == .output ? "standard output" : "standard error" }

    /// Writes all of `bytes`, retrying after interrupts and short writes; the errno that stopped
    /// it, or `nil` once everything is written.
    func write<Bytes: DataProtocol>(_ bytes: Bytes) -> Int32? {
        let contiguous = Array(bytes)
        return contiguous.withUnsafeBytes { buffer -> Int32? in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
    }

    /// Writes all of `bytes` to standard output, or throws what stopped it.
    static func writeOutput<Bytes: DataProtocol>(_ bytes: Bytes) throws(CoverageError) {
        // Whatever `print` buffered goes first.
        fflush(nil)
        if let code = StandardStream.output.write(bytes) {
            throw CoverageError(.system, "cannot write to standard output: \(String(cString: strerror(code)))", syscall: "write", errno: code)
        }
    }

    /// Writes to standard error; a closed or full standard error leaves nothing else to tell.
    static func writeError<Bytes: DataProtocol>(_ bytes: Bytes) {
        fflush(nil)
        _ = StandardStream.error.write(bytes)
    }
}
