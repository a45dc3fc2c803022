package import CoverageAPI

// The kernel paths every model "executes": the PCs and comparison records kcov writes for them.

/// One comparison record as kcov's `trace_cmp` writes it on every kernel: four words, type first
/// (Docs/kcov-linux.md#cmp-mode, Docs/kcov-netbsd.md#cmp-mode, Docs/kcov-freebsd.md#cmp-mode,
/// Docs/kcov-openbsd.md#cmp-mode). The models write the record a client decodes.
package typealias KcovComparison = ComparisonRecord

extension ComparisonRecord {
    /// KCOV_CMP_CONST.
    package static let constantFlag: UInt64 = 1

    /// The type word for operands of `bytes` bytes (1, 2, 4 or 8), with KCOV_CMP_CONST if `constant`.
    package static func type(bytes: Int, constant: Bool) -> UInt64 {
        let log2: UInt64 = switch bytes {
        case 1: 0
        case 2: 1
        case 4: 2
        case 8: 3
        default: preconditionFailure("operand size \(bytes)")
        }
        return log2 << 1 | (constant ? constantFlag : 0)
    }

    /// The records `__sanitizer_cov_trace_switch` writes for one switch on Linux, NetBSD and
    /// OpenBSD: one per case, each with the CONST bit, the case constant first and the switch
    /// value second, at one PC. (FreeBSD writes its own form, ``FreeBSDKcovModel/switchRecords(bytes:value:cases:pc:)``.)
    package static func switchRecords(bytes: Int, value: UInt64, cases: [UInt64], pc: UInt64) -> [KcovComparison] {
        cases.map { KcovComparison(type: type(bytes: bytes, constant: true), first: $0, second: value, pc: pc) }
    }

    /// The record's four words in buffer order.
    package var words: [UInt64] { [type, first, second, pc] }
}

/// A stretch of kernel execution: the PCs PC mode records for it, in execution order with
/// repeats, and the comparison records CMP mode records for it.
package struct KcovKernelPath: Sendable, Hashable {
    package var pcs: [UInt64]
    package var comparisons: [KcovComparison]

    package init(pcs: [UInt64], comparisons: [KcovComparison]) {
        self.pcs = pcs
        self.comparisons = comparisons
    }
}
