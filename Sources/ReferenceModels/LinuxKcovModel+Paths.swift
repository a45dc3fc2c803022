/// The fixed kernel paths the Linux model "executes", as the PCs and comparison records kcov would
/// write for them.
///
/// The addresses are invented: they look like KASLR-stripped x86_64 vmlinux return addresses
/// (0xffffffff81xxxxxx, Docs/kcov-linux.md#pc-mode) but belong to no real kernel build, so they must never be
/// symbolized against a real vmlinux.
extension LinuxKcovModel {
    /// One comparison record as kcov writes it in CMP mode: four 64-bit words.
    package typealias Comparison = KcovComparison

    /// A stretch of kernel execution: the PCs PC mode records for it, in execution order with
    /// repeats, and the comparison records CMP mode records for it.
    package typealias KernelPath = KcovKernelPath

    // Return addresses shared by several paths.
    static let syscallEntryPC: UInt64 = 0xffff_ffff_8100_2c3e
    static let syscallExitPC: UInt64 = 0xffff_ffff_8100_2d07

    /// The probe syscall `read(-1, NULL, 0)`: syscall entry, the read entry points, the fd lookup
    /// (its loop head runs twice, so one PC repeats), the EBADF return and the exit to user space.
    /// Nine PCs in execution order.
    package static let probePCs: [UInt64] = [
        syscallEntryPC,
        0xffff_ffff_813f_5a1e,  // read entry
        0xffff_ffff_813f_4e85,  // ksys_read-like body
        0xffff_ffff_8141_8b23,  // fd lookup, loop head
        0xffff_ffff_8141_8b4f,  // fd table bound check
        0xffff_ffff_8141_8b23,  // loop head again: the repeat
        0xffff_ffff_813f_4ec9,  // -EBADF
        0xffff_ffff_8115_c0a1,  // exit work
        syscallExitPC,
    ]

    /// The probe syscall's comparisons in CMP mode: four records.
    package static let probeComparisons: [Comparison] = [
        // fd < 0: a 4-byte comparison against the constant 0.
        Comparison(type: Comparison.type(bytes: 4, constant: true), first: 0, second: 0xffff_ffff, pc: 0xffff_ffff_813f_4e9a),
        // count > MAX_RW_COUNT: 8 bytes, both operands runtime values.
        Comparison(type: Comparison.type(bytes: 8, constant: false), first: 0, second: 0x7fff_f000, pc: 0xffff_ffff_813f_4eb0),
        // a 1-byte flag test against a constant.
        Comparison(type: Comparison.type(bytes: 1, constant: true), first: 0, second: 1, pc: 0xffff_ffff_8141_8b41),
        // one switch case: the case constant first, the switch value second.
        Comparison(type: Comparison.type(bytes: 4, constant: true), first: 9, second: 0xffff_fff7, pc: 0xffff_ffff_8115_c08c),
    ]

    /// The probe syscall as a path.
    package static let probePath = KernelPath(pcs: probePCs, comparisons: probeComparisons)

    /// The start of every ioctl, up to kcov's own handler: what KCOV_DISABLE records before it
    /// stops coverage (Docs/kcov-linux.md#kcov_disable). Three PCs, one comparison.
    package static let ioctlEntryPath = KernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_813f_d0e1, 0xffff_ffff_8127_a4c9],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 4, constant: true), first: 0x6364, second: 0x6365, pc: 0xffff_ffff_8127_a4d2),
        ])

    /// The end of every ioctl, from kcov's handler to user space: what KCOV_ENABLE records after
    /// it starts coverage (Docs/kcov-linux.md#kcov_enable). Three PCs, one comparison.
    package static let ioctlExitPath = KernelPath(
        pcs: [0xffff_ffff_8127_a5f3, 0xffff_ffff_813f_d14a, syscallExitPC],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 8, constant: false), first: 0, second: 0, pc: 0xffff_ffff_813f_d139),
        ])

    /// Any other syscall the seam makes (open, close, mmap, munmap, gettid, reading a file, fork,
    /// wait, execve, exit): entry, one body PC, exit. Three PCs, one comparison.
    package static let syscallPath = KernelPath(
        pcs: [syscallEntryPC, 0xffff_ffff_8100_0f5e, syscallExitPC],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 8, constant: true), first: 0x1c3, second: 0x10, pc: 0xffff_ffff_8100_2c51),
        ])

    /// What a remote section (Docs/kcov-linux.md#remote-sections, `kcov_remote_start` … `kcov_remote_stop`) executes, for example a
    /// USB hub event: five PCs, two comparisons.
    package static let remoteSectionPath = KernelPath(
        pcs: [
            0xffff_ffff_81a3_c210, 0xffff_ffff_81a3_c2b4, 0xffff_ffff_81a3_9e07, 0xffff_ffff_81a3_c2b4,
            0xffff_ffff_81a3_c391,
        ],
        comparisons: [
            Comparison(type: Comparison.type(bytes: 2, constant: true), first: 0x0100, second: 0x0101, pc: 0xffff_ffff_81a3_c228),
            Comparison(type: Comparison.type(bytes: 8, constant: false), first: 3, second: 7, pc: 0xffff_ffff_81a3_9e1c),
        ])

    /// The words of CONFIG_KCOV_IRQ_AREA_SIZE's default: the buffer a softirq remote section
    /// records into (Docs/kcov-linux.md#remote-coverage).
    package static let irqAreaWords = 0x40000
}
