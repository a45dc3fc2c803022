public import CoverageAPI

/// Linux kcov's user ABI (`include/uapi/linux/kcov.h`, 64-bit kernels), computed from the
/// asm-generic `_IOC` encoding and pinned by tests.
public enum LinuxKcovABI {
    /// `_IOC(dir, type, nr, size)` of asm-generic: nr bits 0–7, type 8–15, size 16–29, dir 30–31.
    static func ioc(direction: UInt, type: Character, number: UInt, size: UInt) -> UInt {
        direction << 30 | size << 16 | UInt(type.asciiValue!) << 8 | number
    }
    static let write: UInt = 1
    static let read: UInt = 2

    /// KCOV_INIT_TRACE = `_IOR('c', 1, unsigned long)`: sizes the buffer, in words.
    public static let initTrace = ioc(direction: read, type: "c", number: 1, size: 8)
    /// KCOV_ENABLE = `_IO('c', 100)`: binds the fd to the calling thread; argument is the mode.
    public static let enable = ioc(direction: 0, type: "c", number: 100, size: 0)
    /// KCOV_DISABLE = `_IO('c', 101)`: argument must be 0.
    public static let disable = ioc(direction: 0, type: "c", number: 101, size: 0)
    /// KCOV_REMOTE_ENABLE = `_IOW('c', 102, struct kcov_remote_arg)` (24 bytes before the handles).
    public static let remoteEnable = ioc(direction: write, type: "c", number: 102, size: 24)

    /// `_IO('c', 127)`: a request in kcov's group that no kernel defines.
    public static let undefinedRequest = ioc(direction: 0, type: "c", number: 127, size: 0)

    /// KCOV_TRACE_PC, the ENABLE argument for PC mode.
    public static let tracePC: UInt = 0
    /// KCOV_TRACE_CMP, the ENABLE argument for comparison mode.
    public static let traceCMP: UInt = 1

    /// The kernel-internal ENOTSUPP (524): KCOV_TRACE_CMP on a kernel without
    /// CONFIG_KCOV_ENABLE_COMPARISONS. No libc names it.
    public static let enotsupp: Int32 = 524

    /// Smallest and largest INIT_TRACE sizes on a 64-bit kernel (`INT_MAX / sizeof(long)`).
    public static let bufferWords: ClosedRange<Int> = 2...268_435_455

    /// Handle subsystem in bits 56–63.
    public static let subsystemCommon: UInt64 = 0x00 << 56
    public static let subsystemUSB: UInt64 = 0x01 << 56
    /// KCOV_REMOTE_MAX_HANDLES.
    public static let maxRemoteHandles = 0x100

    /// `kcov_remote_handle(subsystem, instance)`.
    public static func remoteHandle(subsystem: UInt64, instance: UInt32) -> UInt64 {
        subsystem | UInt64(instance)
    }

    /// The device under a debugfs mounted at its usual place.
    public static let devicePath = "/sys/kernel/debug/kcov"

    /// The ENABLE argument for `mode`.
    public static func modeArgument(_ mode: CoverageMode) -> UInt {
        switch mode {
        case .pc: tracePC
        case .comparisons: traceCMP
        }
    }
}
