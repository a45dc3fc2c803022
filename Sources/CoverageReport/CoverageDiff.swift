public import CoverageAPI
import Foundation

/// What one coverage covers that another does not, both ways, per file and function: two
/// reports over the same coverable PCs, and the PCs each alone covers.
public struct CoverageDiff: Sendable {
    /// One function (or file) in both: coverage in BASE and NEW, and the PCs only one covers.
    public struct Change: Sendable, Hashable, Encodable {
        public var name: String
        /// The function's definition line; 0 for a file.
        public var line: Int
        public var base: CoverageReport.Counts
        public var new: CoverageReport.Counts
        /// Coverable PCs NEW covers and BASE does not.
        public var onlyNew: Int
        /// Coverable PCs BASE covers and NEW does not.
        public var onlyBase: Int
        /// For a file, its functions with a difference; empty for a function.
        public var functions: [Change]

        /// Entered in NEW, not in BASE.
        public var isNewlyEntered: Bool { base.covered == 0 && new.covered > 0 }
        /// Entered in BASE, not in NEW.
        public var isNoLongerEntered: Bool { base.covered > 0 && new.covered == 0 }
    }

    public var base: CoverageReport
    public var new: CoverageReport
    /// Coverable PCs NEW covers and BASE does not (and the reverse).
    public var onlyNew: Int
    public var onlyBase: Int
    /// Files with a difference, by path; each with its functions that have one.
    public var files: [Change]

    /// Compares `base` with `new`, both measured against `symbolizer`'s coverable PCs.
    ///
    /// PCs are compared as a set (hit counts do not make a difference); 32-bit PCs are restored
    /// first (see ``CoverageReport/restoringTruncatedPCs(_:coverableUpperHalves:)``).
    ///
    /// - Throws: as ``CoverageReport/init(inputs:symbolizer:imageName:uncounted:)`` for either
    ///   side, and for function-level (kprobe) inputs, which have no PCs to compare.
    public init(
        base baseInputs: [CoverageInput], new newInputs: [CoverageInput], symbolizer: some CoverageSymbolizer, imageName: String,
        uncounted: (UInt64) -> Bool = { _ in false }
    ) throws(CoverageInputError) {
        if let kprobe = (baseInputs + newInputs).first(where: { $0.probedFunctions != nil }) {
            throw CoverageInputError(path: kprobe.path, "is function-level (kprobe) coverage: diff compares kcov PCs; compare the two reports' functions instead")
        }
        let upperHalves = Set(symbolizer.coverable.lazy.map { $0.pc >> 32 })
        func restoredPCs(_ inputs: [CoverageInput]) throws(CoverageInputError) -> Set<UInt64> {
            var pcs = Set<UInt64>()
            for input in inputs { pcs.formUnion(try CoverageReport.restoringTruncatedPCs(input, coverableUpperHalves: upperHalves).input.pcs) }
            return pcs
        }
        if let first = baseInputs.first, let other = newInputs.first(where: { $0.mode != first.mode }) {
            throw CoverageInputError(path: other.path, "is \(other.mode.rawValue) mode but \(first.path) is \(first.mode.rawValue) mode: compare like with like")
        }
        base = try CoverageReport(inputs: baseInputs, symbolizer: symbolizer, imageName: imageName, uncounted: uncounted)
        new = try CoverageReport(inputs: newInputs, symbolizer: symbolizer, imageName: imageName, uncounted: uncounted)
        let basePCs = try restoredPCs(baseInputs)
        let newPCs = try restoredPCs(newInputs)
        let coverable = Set(symbolizer.coverable.lazy.map(\.pc))
        let newOnly = newPCs.subtracting(basePCs).filter(coverable.contains)
        let baseOnly = basePCs.subtracting(newPCs).filter(coverable.contains)
        onlyNew = newOnly.count
        onlyBase = baseOnly.count
        // Reports of the PCs only one side covers: same coverable PCs, so the same files and
        // functions in the same order as `base` and `new`.
        let newSide = try CoverageReport(
            inputs: [CoverageInput(path: "only in NEW", mode: new.mode, pcs: newOnly.sorted(), truncated: false)], symbolizer: symbolizer, imageName: imageName)
        let baseSide = try CoverageReport(
            inputs: [CoverageInput(path: "only in BASE", mode: base.mode, pcs: baseOnly.sorted(), truncated: false)], symbolizer: symbolizer, imageName: imageName)
        var files: [Change] = []
        for index in base.files.indices where newSide.files[index].counts.covered > 0 || baseSide.files[index].counts.covered > 0 {
            let (b, n, plus, minus) = (base.files[index], new.files[index], newSide.files[index], baseSide.files[index])
            var functions: [Change] = []
            for at in b.functions.indices where plus.functions[at].counts.covered > 0 || minus.functions[at].counts.covered > 0 {
                functions.append(Change(
                    name: b.functions[at].name, line: b.functions[at].line, base: b.functions[at].counts, new: n.functions[at].counts,
                    onlyNew: plus.functions[at].counts.covered, onlyBase: minus.functions[at].counts.covered, functions: []))
            }
            files.append(Change(
                name: b.path, line: 0, base: b.counts, new: n.counts, onlyNew: plus.counts.covered, onlyBase: minus.counts.covered, functions: functions))
        }
        self.files = files
    }
}
