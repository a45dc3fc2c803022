/// The one error type of every backend: what went wrong, in which syscall, with which errno, and a
/// message that tells the user what to do.
public struct CoverageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, independent of the kernel that said so.
    public enum Code: String, Sendable, Hashable, Codable {
        /// No coverage device: debugfs not mounted, kernel built without kcov, or not this OS.
        case deviceMissing
        /// The device exists but this process may not use it (not root, lockdown).
        case permissionDenied
        /// The mode is not offered by this backend or not built into this kernel.
        case unsupportedMode
        /// The kernel does not know this request (ENOTTY), or the backend has no such feature.
        case unsupportedOperation
        /// A buffer size the kernel refuses, or a mapping that does not match it.
        case bufferSize
        /// A call made in the wrong state: not initialised, already enabled, not mapped.
        case invalidState
        /// The fd is already initialised, or this thread already has coverage enabled elsewhere.
        case busy
        /// DISABLE from a thread that did not enable the fd, or when nothing is enabled.
        case notOwner
        /// A remote handle is already registered by another collector.
        case handleInUse
        /// An argument the kernel rejects (unknown mode, bad handle).
        case invalidArgument
        /// The kernel could not allocate the buffer.
        case outOfMemory
        /// The traced command could not be started.
        case commandFailed
        /// The backend does not fit this kernel (the linux backend inside gVisor): use the one named.
        case wrongBackend
        /// Any other failure of a syscall.
        case system
    }

    public var code: Code
    /// The failing call, such as `ioctl(KCOV_ENABLE)`; `nil` for checks made before any syscall.
    public var syscall: String?
    /// The errno the kernel returned, if a syscall failed.
    public var errno: Int32?
    /// One sentence on what is wrong and what to do.
    public var message: String

    public init(_ code: Code, _ message: String, syscall: String? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.syscall = syscall
        self.errno = errno
    }

    /// True when the backend cannot be used here at all: no device, no permission, no such mode in this kernel.
    public var meansUnavailable: Bool {
        switch code {
        case .deviceMissing, .permissionDenied, .unsupportedMode, .wrongBackend: true
        default: false
        }
    }

    public var description: String {
        var text = message
        if let syscall {
            text += " (\(syscall)"
            if let errno { text += ": errno \(errno)" }
            text += ")"
        }
        return text
    }
}
