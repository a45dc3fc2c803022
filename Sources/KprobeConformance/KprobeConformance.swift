public import Conformance
public import CoverageAPI
public import KprobeBackend

/// The kprobe backend runs the `function.*` conformance checks.
extension KprobeBackend: FunctionCoverageOperations {
    /// `read(-1, NULL, 0)` enters `ksys_read` once.
    public var probeFunctions: [String] { ["ksys_read"] }

    /// `read(-1, NULL, 0)` fails on the descriptor before reaching the VFS.
    public var functionsOffProbePath: [String] { ["vfs_read", "vfs_write", "vfs_open"] }

    /// Open perf event descriptors: the kernel removes a PMU kprobe when its descriptor closes.
    public func heldProbes() -> Int { kernel.openPerfEventCount() }
}
