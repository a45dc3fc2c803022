import CoverageAPI
import Foundation

/// Writes a command's result to `--output`: a regular file (or a new one) is replaced atomically
/// (a temporary file in the same directory, then rename(2)); a symbolic link is written through,
/// and a device or FIFO is written in place, so neither is replaced by a regular file. Errors say
/// the real reason (strerror of the call that failed).
enum OutputFile {
    static func write(_ bytes: [UInt8], to path: String) throws(CoverageError) {
        var status = stat()
        let exists = lstat(path, &status) == 0
        if exists, status.st_mode & S_IFMT == S_IFDIR {
            throw CoverageError(.system, "cannot write \(path): it is a directory; name a file")
        }
        if exists, status.st_mode & S_IFMT != S_IFREG {
            // A link (to whatever it points at), a device, a FIFO: written where it is.
            let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
            guard fd >= 0 else { throw failure(path, "open", errno) }
            defer { close(fd) }
            if let code = writeAll(fd, bytes) { throw failure(path, "write", code) }
            return
        }
        if exists {
            // Why an existing file cannot be replaced is best told by opening it (EACCES, EROFS).
            let probe = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
            guard probe >= 0 else { throw failure(path, "open", errno) }
            close(probe)
        }
        let directory = (path as NSString).deletingLastPathComponent
        var template = Array(((directory.isEmpty ? "." : directory) + "/.kcovctl-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            let code = errno
            throw CoverageError(
                .system, "cannot write \(path): cannot create a file in \(directory.isEmpty ? "." : directory): \(String(cString: strerror(code)))",
                syscall: "mkstemp", errno: code)
        }
        let temporary = String(cString: template)
        var code = writeAll(fd, bytes)
        if code == nil, exists, fchmod(fd, status.st_mode & 0o7777) != 0 { code = errno }
        if code == nil, fsync(fd) != 0 { code = errno }
        close(fd)
        if code == nil, rename(temporary, path) != 0 { code = errno }
        if let code {
            unlink(temporary)
            throw failure(path, "write", code)
        }
    }

    /// Writes all of `bytes` to `fd`, retrying after interrupts; the errno that stopped it, or `nil`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBytes { buffer -> Int32? in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
    }

    private static func failure(_ path: String, _ call: String, _ code: Int32) -> CoverageError {
        CoverageError(.system, "cannot write \(path): \(String(cString: strerror(code)))", syscall: call, errno: code)
    }
}
