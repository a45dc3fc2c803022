package import CoverageAPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The calls every kcov-style backend makes on its device the same way: open, probe, close, map,
// unmap, an ioctl whose argument goes by pointer, and the errors a call has on any device. Only
// what an errno means is the backend's own, passed in as `meanings`, `explain` or `unknownRequest`.

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

    /// A failed ioctl: what `meanings` says its errno means on this device, or else the errors any
    /// ioctl has. ENOTTY is a request the device does not know (`unknownRequest` says so in the
    /// backend's words); EFAULT and EBADF can only be this library's fault and trap; anything else
    /// is a system error.
    package static func ioctl(
        _ call: String, errno code: Int32, unknownRequest: String, meanings: (Int32) -> ErrnoMeaning? = { _ in nil }
    ) -> CoverageError {
        if let meant = CoverageError(call, errno: code, meanings: meanings) { return meant }
        precondition(code != EFAULT && code != EBADF, "\(call) failed with \(code == EFAULT ? "EFAULT" : "EBADF"): a bug in KernelCoverage")
        if code == ENOTTY { return CoverageError(.unsupportedOperation, unknownRequest, syscall: call, errno: code) }
        return .system(call, errno: code)
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

    /// A shared read-write mapping of `bytes` of `fd` at `offset`, or `nil` with errno set.
    package func mapShared(_ fd: Int32, bytes: Int, offset: Int = 0) -> UnsafeMutableRawPointer? {
        mmap(length: bytes, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: offset)
    }

    /// Unmaps a coverage buffer; a failure can only be this library's bug and traps.
    package func unmapBuffer(_ address: UnsafeMutableRawPointer, bytes: Int) {
        let result = munmap(address, length: bytes)
        precondition(result == 0, "munmap of a kcov buffer failed: errno \(errno)")
    }

    /// An ioctl whose argument is a pointer to a copy of `argument` (NetBSD's style).
    package func ioctl<Argument>(_ fd: Int32, _ request: UInt, passing argument: Argument) -> Int32 {
        var copy = argument
        return withUnsafeMutableBytes(of: &copy) { ioctl(fd, request, pointer: $0.baseAddress!) }
    }
}
