import KernelSeam

/// OpenBSD kcov(4)'s user ABI (`sys/sys/kcov.h` 1.9, LP64), computed from OpenBSD's
/// `<sys/ioccom.h>` encoding and pinned by tests (Docs/kcov-openbsd.md#ioctl-encoding).
///
/// KIOSETBUFSIZE, KIOENABLE and KIODISABLE have the same numbers as NetBSD's SETBUFSIZE, ENABLE
/// and DISABLE, under other rules: only the host's system name tells the two kernels apart.
public enum OpenBSDKcovABI {
    /// KIOSETBUFSIZE = `_IOW('K', 1, unsigned long)`: the buffer size in entries, by pointer.
    public static let setBufferSize = BSDIoctl.request(direction: BSDIoctl.input, group: "K", number: 1, length: 8)
    /// KIOENABLE = `_IOW('K', 2, int)`: the mode, by pointer.
    public static let enable = BSDIoctl.request(direction: BSDIoctl.input, group: "K", number: 2, length: 4)
    /// KIODISABLE = `_IO('K', 3)`.
    public static let disable = BSDIoctl.request(direction: BSDIoctl.void, group: "K", number: 3, length: 0)
    /// KIOREMOTEATTACH = `_IOW('K', 4, struct kio_remote_attach *)`: the length is that of a
    /// *pointer* (8 on LP64), which happens to equal the struct's two `int`s; the driver reads
    /// `struct kio_remote_attach` from the copied bytes.
    public static let remoteAttach = BSDIoctl.request(direction: BSDIoctl.input, group: "K", number: 4, length: 8)

    /// KCOV_MODE_NONE (refused by KIOENABLE), KCOV_MODE_TRACE_PC, KCOV_MODE_TRACE_CMP.
    public static let modeNone: Int32 = 0
    public static let modeTracePC: Int32 = 1
    public static let modeTraceCMP: Int32 = 2

    /// KCOV_REMOTE_COMMON: coverage of kernel tasks and timeouts run on behalf of the caller's process.
    public static let remoteCommon: Int32 = 0

    /// `sizeof(uintptr_t)` on LP64: entries are pointer-sized (4 bytes on 32-bit kernels).
    public static let entrySize = 8
    /// KIOSETBUFSIZE accepts 1 … KCOV_BUF_MAX_NMEMB (512 << 10) entries (`sys/dev/kcov.c` 1.51).
    public static let bufferEntries: ClosedRange<Int> = 1...(512 << 10)

    /// The device.
    public static let devicePath = "/dev/kcov"
    /// What uname(3) calls the system.
    public static let systemName = "OpenBSD"
}
