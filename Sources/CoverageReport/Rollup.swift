extension CoverageReport {
    /// Covered out of coverable, for units without hit counts (lines, functions, files).
    public struct Fraction: Sendable, Hashable, Encodable {
        public var covered = 0
        public var coverable = 0

        public init(covered: Int = 0, coverable: Int = 0) {
            self.covered = covered
            self.coverable = coverable
        }

        /// Covered as a percentage of coverable (0 when nothing is coverable).
        public var percent: Double { coverable == 0 ? 0 : Double(covered) * 100 / Double(coverable) }

        mutating func add(covered isCovered: Bool, count: Int = 1) {
            coverable += count
            if isCovered { covered += count }
        }

        private enum Keys: String, CodingKey { case covered, coverable, percent }

        /// Adds the percentage, rounded to hundredths, as ``Counts`` does.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(covered, forKey: .covered)
            try container.encode(coverable, forKey: .coverable)
            try container.encode((percent * 100).rounded() / 100, forKey: .percent)
        }
    }

    /// The coverage of a set of files added up: a directory of the HTML tree, a subsystem, a group.
    ///
    /// A line is covered when one of its PCs is; a function when one of its PCs is; a file when
    /// one of its PCs is. Totals saturate at `Int.max` hits, as ``Counts`` does.
    public struct Rollup: Sendable, Hashable, Encodable {
        /// Coverable PCs (or probed functions, for kprobe traces), with hits.
        public var pcs = Counts()
        /// Source lines with coverable PCs.
        public var lines = Fraction()
        public var functions = Fraction()
        public var files = Fraction()

        public init() {}

        /// The rollup of `files`.
        public init(_ files: some Sequence<File>) {
            for file in files { add(file) }
        }

        /// Adds one file's counts.
        public mutating func add(_ file: File) {
            pcs.merge(file.counts)
            lines.add(covered: false, count: file.lines.count)
            lines.covered += file.lines.count { $0.counts.covered > 0 }
            functions.add(covered: false, count: file.functions.count)
            functions.covered += file.functions.count { $0.counts.covered > 0 }
            files.add(covered: file.counts.covered > 0)
        }

        /// Adds another rollup's counts (of files not counted here yet).
        public mutating func add(_ other: Rollup) {
            pcs.merge(other.pcs)
            lines.covered += other.lines.covered
            lines.coverable += other.lines.coverable
            functions.covered += other.functions.covered
            functions.coverable += other.functions.coverable
            files.covered += other.files.covered
            files.coverable += other.files.coverable
        }
    }
}

extension CoverageReport.Counts {
    /// Adds `other`'s units; the hit total stops at `Int.max`.
    mutating func merge(_ other: Self) {
        covered += other.covered
        coverable += other.coverable
        let (sum, overflow) = hits.addingReportingOverflow(other.hits)
        hits = overflow ? .max : sum
    }
}
