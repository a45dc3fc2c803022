import KernelSeam

/// NetBSD kcov(4)'s user ABI (`sys/sys/kcov.h`), computed from NetBSD's `<sys/ioccom.h>`
/// encoding and pinned by tests. Request numbers are 32-bit and zero-extended into the `unsigned
/// long` of ioctl(2), never sign-extended.
public enum NetBSDKcovABI {
    /// KCOV_IOC_SETBUFSIZE = `_IOW('K', 1, uint64_t)`: the buffer size in entries, by pointer.
    public static let setBufferSize = BSDIoctl.request(direction: BSDIoctl.input, group: "K", number: 1, length: 8)
    /// KCOV_IOC_ENABLE = `_IOW('K', 2, int)`: the mode, by pointer.
    public static let enable = BSDIoctl.request(direction: BSDIoctl.input, group: "K", number: 2, length: 4)
    /// KCOV_IOC_DISABLE = `_IO('K', 3)`.
    public static let disable = BSDIoctl.request(direction: BSDIoctl.void, group: "K", number: 3, length: 0)
    /// KCOV_IOC_REMOTE_ATTACH = `_IOW('K', 10, struct kcov_ioc_remote_attach)` (two `uint64_t`).
    public static let remoteAttach = BSDIoctl.request(direction: BSDIoctl.input, group: "K", number: 10, length: 16)
    /// KCOV_IOC_REMOTE_DETACH = `_IO('K', 11)`.
    public static let remoteDetach = BSDIoctl.request(direction: BSDIoctl.void, group: "K", number: 11, length: 0)

    /// KCOV_MODE_NONE, KCOV_MODE_TRACE_PC, KCOV_MODE_TRACE_CMP.
    public static let modeNone: Int32 = 0
    public static let modeTracePC: Int32 = 1
    public static let modeTraceCMP: Int32 = 2

    /// `kcov_int_t` is 64-bit on every architecture.
    public static let entrySize = 8
    /// SETBUFSIZE accepts 2 … KCOV_BUF_MAX_ENTRIES (256 Ki) entries.
    public static let bufferEntries: ClosedRange<Int> = 2...262_144

    /// KCOV_REMOTE_VHCI, the only remote subsystem.
    public static let remoteVHCI: UInt64 = 0
    /// `KCOV_REMOTE_VHCI_ID(bus, port)`.
    public static func vhciID(bus: UInt32, port: UInt32) -> UInt64 {
        UInt64(bus) << 32 | UInt64(port)
    }

    /// The device.
    public static let devicePath = "/dev/kcov"
    /// What uname(3) calls the system.
    public static let systemName = "NetBSD"
}
