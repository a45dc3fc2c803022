/// The fixed kernel paths the OpenBSD model "executes", as the PCs and comparison records kcov
/// writes for them.
///
/// The addresses are invented: they look like raw OpenBSD/amd64 kernel return addresses (text from
/// 0xffffffff81000000; kcov removes no offset, Docs/kcov-openbsd.md#buffer-layout) but belong to
/// no real kernel build, so they must never be symbolized against a real OpenBSD kernel.
extension OpenBSDKcovModel {
    static let syscallEntryPC: UInt64 = 0xffff_ffff_8190_2a11
    static let syscallExitPC: UInt64 = 0xffff_ffff_8190_2c5e

    /// The probe syscall `read(-1, NULL, 0)`: `syscall` entry, `sys_read`, `fd_getfile` failing,
    /// the EBADF return, `mi_syscall_return`, `userret` twice (one PC repeats), the return to user
    /// space. Eight PCs in execution order.
    package static let probePCs: [UInt64] = [
        syscallEntryPC,
        0xffff_ffff_8144_7b02,  // sys_read
        0xffff_ffff_8141_1e3d,  // fd_getfile: fd >= fd_nfiles
        0xffff_ffff_8144_7b27,  // sys_read: return EBADF
        0xffff_ffff_8190_2b90,  // mi_syscall_return
        0xffff_ffff_8190_1f04,  // userret loop head
        0xffff_ffff_8190_1f04,  // userret loop head again: the repeat
        syscallExitPC,
    ]

    /// The probe's comparisons in CMP mode: two compares, then a two-case switch recorded as
    /// OpenBSD's `__sanitizer_cov_trace_switch` does (constant flag set, the case first, the value second).
    package static let probeComparisons: [KcovComparison] = [
        KcovComparison(type: KcovComparison.type(bytes: 8, constant: true), first: 0x14b, second: 3, pc: 0xffff_ffff_8190_2a48),
        KcovComparison(type: KcovComparison.type(bytes: 4, constant: false), first: 0xffff_ffff, second: 0x80, pc: 0xffff_ffff_8141_1e31),
    ] + KcovComparison.switchRecords(bytes: 4, value: 9, cases: [0xffff_fffd, 0xffff_fffe], pc: 0xffff_ffff_8190_2b71)

    package static let probePath = KcovKernelPath(pcs: probePCs, comparisons: probeComparisons)

    /// The start of every ioctl up to the driver (`sys_ioctl`, `vn_ioctl`, `spec_ioctl`).
    static let ioctlEntryPath = KcovKernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_8144_9c15, 0xffff_ffff_8147_3a60],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 8, constant: true), first: 0x1fff, second: 8, pc: 0xffff_ffff_8144_9c3e)])

    /// The end of every ioctl after the driver, up to the return to user space.
    static let ioctlExitPath = KcovKernelPath(
        pcs: [0xffff_ffff_8147_3a99, 0xffff_ffff_8144_9d21, syscallExitPC],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 4, constant: false), first: 0, second: 0, pc: 0xffff_ffff_8144_9d0a)])

    /// Any other syscall the seam makes: entry, dispatch, exit.
    static let syscallPath = KcovKernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_8190_2a6c, syscallExitPC],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 8, constant: true), first: 0x14b, second: 6, pc: 0xffff_ffff_8190_2a48)])

    /// What one kernel task queued on behalf of the process runs between `kcov_remote_enter` and
    /// `kcov_remote_leave` (`taskq_thread` in `sys/kern/kern_task.c`): five PCs, one comparison.
    package static let remoteTaskPath = KcovKernelPath(
        pcs: [0xffff_ffff_8143_0e12, 0xffff_ffff_8142_1a77, 0xffff_ffff_8142_1b03, 0xffff_ffff_8142_1a77, 0xffff_ffff_8143_0e5c],
        comparisons: [KcovComparison(type: KcovComparison.type(bytes: 4, constant: true), first: 1, second: 2, pc: 0xffff_ffff_8142_1a90)])
}
