package import CoverageAPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The calls every kcov-style backend makes on its device the same way: open, probe, close, map,
// unmap, an ioctl whose argument goes by pointer, and turning a failed call's errno into an error.
// Only what an errno means is the backend's own, passed in as `meanings`, `explain` or
// `unknownRequest`.

/// What one errno means to a backend for one call: the error code and the message it reports.
package typealias ErrnoMeaning = (code: CoverageError.Code, message: String)

extension CoverageError {
    /// `call` failed with `code` and the backend's table `meanings` (a `switch` from errno to
    /// ``ErrnoMeaning``, `nil` by default) says what that means here; `nil` when it says nothing.
    package init?(_ call: String, errno code: Int32, meanings: (Int32) -> ErrnoMeaning?) {
        guard let meaning = meanings(code) else { return nil }
        self.init(meaning.code, meaning.message, syscall: call, errno: code)
    }

    /// A failed call other than an ioctl (open, mmap): what `meanings` says its errno means, or
    /// else a system error.
    package static func system(_ call: String, errno code: Int32, meanings: (Int32) -> ErrnoMeaning?) -> CoverageError {
        CoverageError(call, errno: code, meanings: meanings) ?? .system(call, errno: code)
    }

}

/// One backend's ioctl errors: what the backend's table says an errno means for the call, or else
/// what it means for any ioctl on a device, with the backend's words for an unknown request.
package struct IoctlErrors: Sendable {
    /// What ENOTTY, a request the device does not know, means in the backend's words.
    package let unknownRequest: String

    /// The errors of a backend that words an unknown request as `unknownRequest`.
    package init(unknownRequest: String) {
        self.unknownRequest = unknownRequest
    }

    /// The error of ioctl `call` failing with `code`: what `meanings` says, or else ENOTTY is
    /// `.unsupportedOperation`, EFAULT and EBADF (only ever this library's bug) trap, and anything
    /// else is a system error.
    package func error(_ call: String, _ code: Int32, meanings: (Int32) -> ErrnoMeaning? = { _ in nil }) -> CoverageError {
        if let meant = CoverageError(call, errno: code, meanings: meanings) { return meant }
        precondition(code != EFAULT && code != EBADF, "\(call) failed with \(code == EFAULT ? "EFAULT" : "EBADF"): a bug in KernelCoverage")
        if code == ENOTTY { return CoverageError(.unsupportedOperation, unknownRequest, syscall: call, errno: code) }
        return .system(call, errno: code)
    }

    /// Throws ``error(_:_:meanings:)`` when an ioctl's `result` says it failed (not 0), reading
    /// errno at once; `call` is only worded then.
    package func check(
        _ result: Int32, _ call: @autoclosure () -> String, meanings: (Int32) -> ErrnoMeaning? = { _ in nil }
    ) throws(CoverageError) {
        guard result != 0 else { return }
        let code = errno
        throw error(call(), code, meanings: meanings)
    }
}

extension KernelInterface {
    /// Opens a coverage device read-write, close-on-exec; `explain` turns a failure's errno into
    /// the backend's error.
    package func openDevice(_ path: String, explain: (Int32) -> CoverageError) throws(CoverageError) -> Int32 {
        let fd = open(path, flags: O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw explain(errno) }
        return fd
    }

    /// Opens `path` read-write and closes it at once: available with `reason`, or unavailable
    /// with the message `explain` gives the errno.
    package func availability(of path: String, reason: String, explain: (Int32) -> CoverageError) -> Availability {
        do throws(CoverageError) {
            closeDevice(try openDevice(path, explain: explain))
            return Availability(available: true, reason: reason)
        } catch {
            return Availability(available: false, reason: error.message)
        }
    }

    /// Closes a device fd; a second close of the same fd (EBADF) is this library's bug and traps.
    package func closeDevice(_ fd: Int32) {
        let result = close(fd)
        precondition(result == 0 || errno != EBADF, "closed kcov fd \(fd) twice")
    }

    /// A shared read-write mapping of `bytes` of `fd` at `offset` between guard pages
    /// (``KernelInterface/mmapBetweenGuards(length:fd:offset:)``); a failure throws what `meanings`
    /// says its errno means (else a system error), with `call` worded only then.
    package func mapShared(
        _ fd: Int32, bytes: Int, offset: Int = 0, call: @autoclosure () -> String, meanings: (Int32) -> ErrnoMeaning?
    ) throws(CoverageError) -> UnsafeMutableRawPointer {
        if let address = mmapBetweenGuards(length: bytes, fd: fd, offset: offset) {
            return address
        }
        let code = errno
        throw .system(call(), errno: code, meanings: meanings)
    }

    /// Unmaps a coverage buffer from ``mapShared(_:bytes:offset:call:meanings:)`` and its guard
    /// pages; a failure can only be this library's bug and traps.
    package func unmapBuffer(_ address: UnsafeMutableRawPointer, bytes: Int) {
        let result = munmapBetweenGuards(address, length: bytes)
        precondition(result == 0, "munmap of a kcov buffer failed: errno \(errno)")
    }

    /// An ioctl whose argument is a pointer to a copy of `argument` (NetBSD's style).
    package func ioctl<Argument>(_ fd: Int32, _ request: UInt, passing argument: Argument) -> Int32 {
        var copy = argument
        return withUnsafeMutableBytes(of: &copy) { ioctl(fd, request, pointer: $0.baseAddress!) }
    }
}
