import KernelSeam

/// FreeBSD kcov(4)'s user ABI (`sys/sys/kcov.h`), computed from FreeBSD's `<sys/ioccom.h>`
/// encoding and pinned by tests (Docs/kcov-freebsd.md#ioctl-encoding). Request numbers are 32-bit:
/// `sys_ioctl` truncates the command to `uint32_t`, so they are zero-extended here.
public enum FreeBSDKcovABI {
    /// KIOENABLE = `_IOWINT('c', 2)`: the mode, by value.
    public static let enable = BSDIoctl.request(direction: BSDIoctl.void, group: "c", number: 2, length: 4)
    /// KIODISABLE = `_IO('c', 3)`: the argument is ignored (FreeBSD's tests pass 0).
    public static let disable = BSDIoctl.request(direction: BSDIoctl.void, group: "c", number: 3, length: 0)
    /// KIOSETBUFSIZE = `_IOWINT('c', 4)`: the buffer size in entries, by value.
    public static let setBufferSize = BSDIoctl.request(direction: BSDIoctl.void, group: "c", number: 4, length: 4)

    /// KCOV_MODE_TRACE_PC and KCOV_MODE_TRACE_CMP: Linux's numbers; there is no NONE mode.
    public static let modeTracePC: Int32 = 0
    public static let modeTraceCMP: Int32 = 1

    /// KCOV_ENTRY_SIZE: every entry is a `uint64_t`, on every architecture.
    public static let entrySize = 8
    /// SETBUFSIZE accepts 2 … `kern.kcov.max_entries` entries; the sysctl defaults to
    /// KCOV_MAXENTRIES (1 << 24).
    public static let bufferEntries: ClosedRange<Int> = 2...(1 << 24)

    /// The device.
    public static let devicePath = "/dev/kcov"
    /// What uname(3) calls the system.
    public static let systemName = "FreeBSD"
}
