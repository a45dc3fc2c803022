/// The sentry's Go coverage blocks that the gVisor model "executes", and gVisor's two synthetic PC
/// formats (Docs/kcov-gvisor.md#synthetic-pcs).
///
/// gVisor has no instruction addresses to report: the sentry is built with Go's `-cover`, which
/// counts how often each basic block ("unit") of each function of each package ran. kcov turns
/// every block that ran into one synthetic PC. The indexes below are invented: they look like a
/// coverage-built `runsc` (a handful of sentry packages, functions with a few dozen units) but
/// belong to no real binary, so they must never be given to `runsc symbolize`.
///
/// Packages (index into the coverage metadata list) and, for the legacy format, files (index into
/// the sorted list of instrumented file names):
///
/// | package | import path | legacy files |
/// |---|---|---|
/// | 3 | `pkg/sentry/fsimpl/sys` | 0 `pkg/sentry/fsimpl/sys/kcov.go` |
/// | 5 | `pkg/sentry/kernel` | 1 `…/kernel/fd_table.go`, 2 `…/kernel/task_run.go`, 3 `…/kernel/task_syscall.go` |
/// | 8 | `pkg/sentry/syscalls/linux` | 4 `…/linux/sys_file.go`, 5 `…/linux/sys_read_write.go` |
extension GVisorKcovModel {
    /// Where a block is in the sentry's coverage metadata: the three indexes the current synthetic
    /// PC format encodes.
    package struct BlockIndexes: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// Index of the package in the coverage metadata list (`rtcov.Meta.List`).
        package var packageIndex: UInt64
        /// Index of the function in the package's coverage metadata.
        package var functionIndex: UInt64
        /// Index of the unit (counter) within the function.
        package var blockIndex: UInt64

        package init(packageIndex: UInt64, functionIndex: UInt64, blockIndex: UInt64) {
            self.packageIndex = packageIndex
            self.functionIndex = functionIndex
            self.blockIndex = blockIndex
        }

        /// Package, then function, then block: the order one return to user space writes in (Docs/kcov-gvisor.md#buffer-layout).
        package static func < (lhs: Self, rhs: Self) -> Bool {
            (lhs.packageIndex, lhs.functionIndex, lhs.blockIndex) < (rhs.packageIndex, rhs.functionIndex, rhs.blockIndex)
        }

        package var description: String { "(\(packageIndex), \(functionIndex), \(blockIndex))" }
    }

    /// Where a block is in the legacy (2020-12 to 2025-11) numbering: file, then block in file.
    package struct LegacyBlockIndexes: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// Index of the file in the sorted list of instrumented file names.
        package var fileIndex: UInt64
        /// Index of the block within that file.
        package var blockIndex: UInt64

        package init(fileIndex: UInt64, blockIndex: UInt64) {
            self.fileIndex = fileIndex
            self.blockIndex = blockIndex
        }

        /// Files in sorted name order, then block index: the legacy emission order (Docs/kcov-gvisor.md#synthetic-pcs).
        package static func < (lhs: Self, rhs: Self) -> Bool {
            (lhs.fileIndex, lhs.blockIndex) < (rhs.fileIndex, rhs.blockIndex)
        }

        package var description: String { "(\(fileIndex), \(blockIndex))" }
    }

    /// One Go coverage block of the simulated sentry.
    package struct CoverageBlock: Sendable, Hashable, CustomStringConvertible {
        /// Its indexes in the current format.
        package var indexes: BlockIndexes
        /// Its indexes in the legacy format.
        package var legacy: LegacyBlockIndexes
        /// What the block is, for people reading a trace.
        package var location: String

        package init(_ packageIndex: UInt64, _ functionIndex: UInt64, _ blockIndex: UInt64,
                     legacyFile: UInt64, legacyBlock: UInt64, _ location: String) {
            indexes = BlockIndexes(packageIndex: packageIndex, functionIndex: functionIndex, blockIndex: blockIndex)
            legacy = LegacyBlockIndexes(fileIndex: legacyFile, blockIndex: legacyBlock)
            self.location = location
        }

        /// The PC the current format writes for this block.
        package var syntheticPC: UInt64 { GVisorKcovModel.syntheticPC(indexes) }
        /// The PC the legacy format writes for this block.
        package var legacyPC: UInt64 { GVisorKcovModel.legacyPC(legacy) }

        package var description: String { "\(indexes) \(location)" }
    }

    // MARK: Synthetic PC formats (Docs/kcov-gvisor.md#synthetic-pcs)

    /// The current synthetic PC (since gVisor `9d3d0af03`, 2025-11-04):
    /// `~(block | function << 8 | package << 20)`, a 64-bit NOT.
    ///
    /// The fields are not masked, as in gVisor: a block index above 255 or a function index above
    /// 4095 spills into the next field, so two blocks can get the same PC (Docs/kcov-gvisor.md#synthetic-pcs, [inferred]).
    /// For a package index below 2048, bits 31–63 of the result are all 1, so every PC is above
    /// `0xffffffff7fffffff`.
    package static func syntheticPC(packageIndex: UInt64, functionIndex: UInt64, blockIndex: UInt64) -> UInt64 {
        ~(blockIndex | functionIndex << 8 | packageIndex << 20)
    }

    /// The current synthetic PC of `indexes`; see ``syntheticPC(packageIndex:functionIndex:blockIndex:)``.
    package static func syntheticPC(_ indexes: BlockIndexes) -> UInt64 {
        syntheticPC(packageIndex: indexes.packageIndex, functionIndex: indexes.functionIndex, blockIndex: indexes.blockIndex)
    }

    /// Decodes a current-format synthetic PC: `v = ~pc`; block is the low 8 bits, function the next
    /// 12, package everything above bit 20. Only exact for blocks that did not overflow a field.
    package static func decodeSyntheticPC(_ pc: UInt64) -> BlockIndexes {
        let value = ~pc
        return BlockIndexes(packageIndex: value >> 20, functionIndex: (value >> 8) & 0xfff, blockIndex: value & 0xff)
    }

    /// The legacy synthetic PC (2020-12 to 2025-11): `(file << 16) + block`, small numbers below
    /// 2^32 for any realistic binary and not in the kernel range. The addition wraps.
    package static func legacyPC(fileIndex: UInt64, blockIndex: UInt64) -> UInt64 {
        (fileIndex << 16) &+ blockIndex
    }

    /// The legacy synthetic PC of `indexes`; see ``legacyPC(fileIndex:blockIndex:)``.
    package static func legacyPC(_ indexes: LegacyBlockIndexes) -> UInt64 {
        legacyPC(fileIndex: indexes.fileIndex, blockIndex: indexes.blockIndex)
    }

    /// Decodes a legacy synthetic PC: file is everything above bit 16, block the low 16 bits.
    /// Only exact for a block index below 65536.
    package static func decodeLegacyPC(_ pc: UInt64) -> LegacyBlockIndexes {
        LegacyBlockIndexes(fileIndex: pc >> 16, blockIndex: pc & 0xffff)
    }

    /// What one return to user space writes when `sets` are the blocks pending: each block once,
    /// in (package, function, block) order as current-format PCs, or in (file, block) order as
    /// legacy PCs. Capacity is not applied.
    package static func window(_ sets: [CoverageBlock]..., legacy: Bool = false) -> [UInt64] {
        pcs(of: Set(sets.joined()), legacy: legacy)
    }

    /// The PCs of a pending set in emission order.
    static func pcs(of blocks: Set<CoverageBlock>, legacy: Bool) -> [UInt64] {
        legacy
            ? blocks.sorted { $0.legacy < $1.legacy }.map(\.legacyPC)
            : blocks.sorted { $0.indexes < $1.indexes }.map(\.syntheticPC)
    }

    // MARK: The blocks (invented indexes; see the table above)

    // Shared by every syscall: `(*Task).doSyscall` entry and table dispatch, and the return to
    // user space in `(*runApp).execute` (where task work, and so kcov, runs).
    static let syscallEntry = CoverageBlock(5, 40, 0, legacyFile: 3, legacyBlock: 31, "kernel.(*Task).doSyscall: entry")
    static let syscallDispatch = CoverageBlock(5, 40, 2, legacyFile: 3, legacyBlock: 33, "kernel.(*Task).doSyscall: table lookup")
    static let syscallHandled = CoverageBlock(5, 40, 6, legacyFile: 3, legacyBlock: 38, "kernel.(*Task).doSyscall: handler returned a value")
    static let returnToUser = CoverageBlock(5, 61, 0, legacyFile: 2, legacyBlock: 12, "kernel.(*runApp).execute: back to the application")
    static let runTaskWork = CoverageBlock(5, 61, 3, legacyFile: 2, legacyBlock: 15, "kernel.(*runApp).execute: run queued task work")

    /// The probe syscall `read(-1, NULL, 0)`: syscall entry and dispatch, the read handler, the fd
    /// table lookup that finds nothing, the EBADF return, and the return to user space. Eight
    /// blocks. Every list here is in emission order.
    package static let probeBlocks: [CoverageBlock] = [
        CoverageBlock(5, 17, 0, legacyFile: 1, legacyBlock: 44, "kernel.(*FDTable).Get: entry"),
        CoverageBlock(5, 17, 4, legacyFile: 1, legacyBlock: 47, "kernel.(*FDTable).Get: fd out of range"),
        syscallEntry,
        syscallDispatch,
        returnToUser,
        runTaskWork,
        CoverageBlock(8, 112, 0, legacyFile: 5, legacyBlock: 5, "linux.Read: entry"),
        CoverageBlock(8, 112, 3, legacyFile: 5, legacyBlock: 9, "linux.Read: EBADF"),
    ]

    /// Any other syscall the seam makes (open, close, mmap, munmap, gettid, reading a file, fork,
    /// wait, execve, exit_group): entry, dispatch, "handler returned", return to user space. Five
    /// blocks; all but `(5, 40, 6)` are also in ``probeBlocks``.
    package static let syscallBlocks: [CoverageBlock] = [
        syscallEntry, syscallDispatch, syscallHandled, returnToUser, runTaskWork,
    ]

    /// Every ioctl up to kcov's handler: what KCOV_ENABLE's counter reset wipes (Docs/kcov-gvisor.md#kcov_enable). Five blocks.
    package static let ioctlEntryBlocks: [CoverageBlock] = [
        CoverageBlock(3, 9, 0, legacyFile: 0, legacyBlock: 2, "sys.(*kcovFD).Ioctl: entry"),
        syscallEntry,
        syscallDispatch,
        CoverageBlock(8, 77, 0, legacyFile: 4, legacyBlock: 20, "linux.Ioctl: entry"),
        CoverageBlock(8, 77, 4, legacyFile: 4, legacyBlock: 24, "linux.Ioctl: not a generic ioctl, to the file"),
    ]

    /// Every ioctl from kcov's handler back to user space: what KCOV_ENABLE leaves for its own
    /// return to write (Docs/kcov-gvisor.md#kcov_enable). Four blocks.
    package static let ioctlExitBlocks: [CoverageBlock] = [
        CoverageBlock(3, 9, 12, legacyFile: 0, legacyBlock: 14, "sys.(*kcovFD).Ioctl: return"),
        syscallHandled,
        returnToUser,
        runTaskWork,
    ]

    /// Every block the simulated sentry has.
    package static let allBlocks: Set<CoverageBlock> = Set(probeBlocks + syscallBlocks + ioctlEntryBlocks + ioctlExitBlocks)
}
