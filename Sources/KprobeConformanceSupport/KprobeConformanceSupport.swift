public import Conformance
public import CoverageAPI
public import KprobeBackend

/// The kprobe backend runs the `function.*` conformance checks through sessions.
extension KprobeBackend: FunctionCoverageOperations {
    /// `read(-1, NULL, 0)` enters `ksys_read` once.
    public var probeFunctions: [String] { ["ksys_read"] }

    /// `read(-1, NULL, 0)` fails on the descriptor before reaching the VFS.
    public var functionsOffProbePath: [String] { ["vfs_read", "vfs_write", "vfs_open"] }

    public func openCounters(_ functions: [String], mode: CoverageMode) throws(CoverageError) -> any FunctionCounters {
        try KprobeSession(backend: self, selection: FunctionSelection(patterns: functions), mode: mode)
    }

    /// Open perf event descriptors: the kernel removes a PMU kprobe when its descriptor closes.
    public func heldProbes() -> Int { kernel.openPerfEventCount() }
}

extension KprobeSession: FunctionCounters {
    public var probedFunctions: [String] { functions.map(\.name) }

    public func counts() throws(CoverageError) -> [FunctionCount] { try read().functions.map(FunctionCount.init) }

    public func newFunctions() throws(CoverageError) -> [FunctionCount] { try readNew().map(FunctionCount.init) }
}

extension FunctionCount {
    init(_ hit: FunctionHit) { self.init(name: hit.name, pc: hit.pc, hits: hit.hits) }
}
