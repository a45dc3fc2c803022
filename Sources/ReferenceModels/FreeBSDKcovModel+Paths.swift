/// The fixed kernel paths the FreeBSD model "executes", as the PCs and comparison records kcov
/// writes for them.
///
/// The addresses are invented: they look like raw FreeBSD/amd64 kernel return addresses (the
/// kernel is linked at 0xffffffff80200000 and kcov removes no offset,
/// Docs/kcov-freebsd.md#buffer-layout) but belong to no real kernel build, so they must never be
/// symbolized against a real FreeBSD kernel.
extension FreeBSDKcovModel {
    static let syscallEntryPC: UInt64 = 0xffff_ffff_810a_3c41
    static let syscallExitPC: UInt64 = 0xffff_ffff_810a_3e07

    /// The probe syscall `read(-1, NULL, 0)`: `amd64_syscall`, `syscallenter`, `sys_read`,
    /// `kern_readv`, the fd lookup that fails, the EBADF return, `syscallret`, the `userret` loop
    /// head twice (one PC repeats) and the return to user space. Ten PCs in execution order.
    package static let probePCs: [UInt64] = [
        syscallEntryPC,
        0xffff_ffff_810a_2f18,  // syscallenter: sysent lookup
        0xffff_ffff_80c6_b1a2,  // sys_read
        0xffff_ffff_80c6_b3e9,  // kern_readv
        0xffff_ffff_80c0_4c57,  // fget_unlocked: fd out of range
        0xffff_ffff_80c6_b40d,  // kern_readv: return EBADF
        0xffff_ffff_810a_3d66,  // syscallret
        0xffff_ffff_80c5_9a80,  // userret loop head
        0xffff_ffff_80c5_9a80,  // userret loop head again: the repeat
        syscallExitPC,
    ]

    /// The probe's comparisons in CMP mode: three compares, then a two-case switch recorded the
    /// FreeBSD way (`__sanitizer_cov_trace_switch` in `sys/kern/subr_coverage.c` ORs the constant
    /// flag into the *value*, not the type, and passes the value first and the case second).
    package static let probeComparisons: [KcovComparison] = [
        KcovComparison(type: KcovComparison.type(bytes: 4, constant: true), first: 0x23a, second: 3, pc: 0xffff_ffff_810a_2f0c),
        KcovComparison(type: KcovComparison.type(bytes: 4, constant: false), first: 0xffff_ffff, second: 0x40, pc: 0xffff_ffff_80c0_4c4b),
        KcovComparison(type: KcovComparison.type(bytes: 8, constant: true), first: 0, second: 0, pc: 0xffff_ffff_80c6_b3d1),
    ] + switchRecords(bytes: 4, value: 9, cases: [0xffff_fffd, 0xffff_fffe], pc: 0xffff_ffff_810a_3d40)

    /// What `__sanitizer_cov_trace_switch` writes on FreeBSD for one switch: per case, the type
    /// *without* KCOV_CMP_CONST, the switch value with bit 0 set, then the case constant.
    package static func switchRecords(bytes: Int, value: UInt64, cases: [UInt64], pc: UInt64) -> [KcovComparison] {
        cases.map { KcovComparison(type: KcovComparison.type(bytes: bytes, constant: false), first: value | 1, second: $0, pc: pc) }
    }

    package static let probePath = KcovKernelPath(pcs: probePCs, comparisons: probeComparisons)

    /// The start of every ioctl up to the driver (`sys_ioctl`, `kern_ioctl`, `devfs_ioctl_f`).
    static let ioctlEntryPath = KcovKernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_80c6_f0a3, 0xffff_ffff_80a3_14c8],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 4, constant: true), first: 0x1fff, second: 4, pc: 0xffff_ffff_80c6_f0b9)])

    /// The end of every ioctl after the driver, up to the return to user space.
    static let ioctlExitPath = KcovKernelPath(
        pcs: [0xffff_ffff_80a3_1522, 0xffff_ffff_80c6_f1f0, syscallExitPC],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 4, constant: false), first: 0, second: 0, pc: 0xffff_ffff_80c6_f1d8)])

    /// Any other syscall the seam makes: entry, dispatch, exit.
    static let syscallPath = KcovKernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_810a_2f18, syscallExitPC],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 4, constant: true), first: 0x23a, second: 6, pc: 0xffff_ffff_810a_2f0c)])
}
