/// The fixed kernel paths the NetBSD model "executes", as the PCs and comparison records kcov
/// writes for them.
///
/// The addresses are invented: they look like raw NetBSD/amd64 kernel return addresses (text from
/// 0xffffffff80200000; NetBSD removes no KASLR offset, Docs/kcov-netbsd.md#buffer-layout) but belong to no real kernel build,
/// so they must never be symbolized against a real netbsd kernel image.
extension NetBSDKcovModel {
    /// One comparison record as kcov writes it in CMP mode: four 64-bit words.
    package typealias Comparison = KcovComparison

    /// A stretch of kernel execution: the PCs PC mode records for it, in execution order with
    /// repeats, and the comparison records CMP mode records for it.
    package typealias KernelPath = KcovKernelPath

    // Return addresses shared by several paths: the amd64 syscall() entry and its return to user space.
    static let syscallEntryPC: UInt64 = 0xffff_ffff_8022_1a4c
    static let syscallExitPC: UInt64 = 0xffff_ffff_8022_1b93

    /// The probe syscall `read(-1, NULL, 0)`: syscall entry and dispatch, `sys_read`, the fd lookup
    /// that rejects fd 0xffffffff, the EBADF return, the error return path, the `userret` loop head
    /// (run twice, so one PC repeats) and the return to user space. Nine PCs in execution order.
    package static let probePCs: [UInt64] = [
        syscallEntryPC,
        0xffff_ffff_8022_1a9e,  // syscall dispatch through sy_call
        0xffff_ffff_80b6_3e12,  // sys_read
        0xffff_ffff_80a8_0f27,  // fd_getfile: fd >= dt_nfiles
        0xffff_ffff_80b6_3e3b,  // sys_read: return EBADF
        0xffff_ffff_8022_1b05,  // syscall: error return
        0xffff_ffff_8026_47d0,  // userret loop head
        0xffff_ffff_8026_47d0,  // userret loop head again: the repeat
        syscallExitPC,
    ]

    /// The probe syscall's comparisons in TRACE_CMP mode: five records, ending with a two-case switch.
    package static let probeComparisons: [Comparison] = [
        // code >= SYS_MAXSYSCALL: 8 bytes against a constant (the constant first).
        Comparison(type: Comparison.type(bytes: 8, constant: true), first: 0x200, second: 3, pc: 0xffff_ffff_8022_1a71),
        // (unsigned)fd >= dt_nfiles: 4 bytes, both runtime values.
        Comparison(type: Comparison.type(bytes: 4, constant: false), first: 0xffff_ffff, second: 0x40, pc: 0xffff_ffff_80a8_0f19),
        // a 1-byte flag test against a constant.
        Comparison(type: Comparison.type(bytes: 1, constant: true), first: 0, second: 1, pc: 0xffff_ffff_80b6_3e30),
    ] + Comparison.switchRecords(
        // switch (error) on the return path: case ERESTART (-3), case EJUSTRETURN (-2); error is EBADF (9).
        bytes: 4, value: 9, cases: [0xffff_fffd, 0xffff_fffe], pc: 0xffff_ffff_8022_1ae2)

    /// The probe syscall as a path.
    package static let probePath = KernelPath(pcs: probePCs, comparisons: probeComparisons)

    /// The start of every ioctl up to the driver's handler (`sys_ioctl`, `fd_getfile`): what
    /// DISABLE records before it stops tracing. Three PCs, one comparison.
    package static let ioctlEntryPath = KernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_80b6_81c4, 0xffff_ffff_80a8_0f5b],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 8, constant: true), first: 0x1fff, second: 8, pc: 0xffff_ffff_80b6_81f0),
        ])

    /// The end of every ioctl after the driver's handler (`fd_putfile`, return to user space):
    /// what ENABLE records after it starts tracing. Three PCs, one comparison.
    package static let ioctlExitPath = KernelPath(
        pcs: [0xffff_ffff_80b6_8302, 0xffff_ffff_80a8_1044, syscallExitPC],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 4, constant: false), first: 0, second: 0, pc: 0xffff_ffff_80b6_82e9),
        ])

    /// Any other syscall the seam makes (open, close, dup, mmap, munmap, `_lwp_self`, fork, wait,
    /// execve, exit): entry, dispatch, exit. Three PCs, one comparison.
    package static let syscallPath = KernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_8022_1a9e, syscallExitPC],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 8, constant: true), first: 0x200, second: 6, pc: 0xffff_ffff_8022_1a71),
        ])

    /// What the USB hub-explore remote section of a vHCI port executes (Docs/kcov-netbsd.md#remote-coverage): six PCs with one
    /// repeat, two comparisons.
    package static let remoteSectionPath = KernelPath(
        pcs: [
            0xffff_ffff_80c3_1a20, 0xffff_ffff_80c3_1b4c, 0xffff_ffff_80c2_e807, 0xffff_ffff_80c3_1b4c,
            0xffff_ffff_80c2_f13a, 0xffff_ffff_80c3_1c91,
        ],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 2, constant: true), first: 0x0100, second: 0x0101, pc: 0xffff_ffff_80c3_1a38),
            Comparison(type: Comparison.type(bytes: 8, constant: false), first: 3, second: 7, pc: 0xffff_ffff_80c2_e81c),
        ])
}
