import Synchronization

/// The shared coverage buffer as the kernel sees it: word 0 is the entry count, entries follow.
///
/// Every access is a relaxed atomic on a word the kernel may be writing concurrently; the words are
/// bound to `Atomic<UInt64>` once, when the buffer is created over a mapping.
public struct CoverageBuffer: @unchecked Sendable {
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    /// Size of the buffer in 64-bit words, count word included.
    public let wordCount: Int

    /// Views `wordCount` 64-bit words at `address` (a live kcov mapping) as a coverage buffer.
    public init(address: UnsafeMutableRawPointer, wordCount: Int) {
        precondition(wordCount >= 2, "a coverage buffer holds a count and at least one entry")
        self.words = address.bindMemory(to: Atomic<UInt64>.self, capacity: wordCount)
        self.wordCount = wordCount
    }

    /// Address of the count word (word 0).
    public var countAddress: UnsafeMutableRawPointer { UnsafeMutableRawPointer(words) }

    /// The count word as the kernel last wrote it.
    public var rawCount: UInt64 { words[0].load(ordering: .relaxed) }

    /// Starts a new trace: the kernel appends after whatever count it finds.
    public func reset() { words[0].store(0, ordering: .relaxed) }

    /// Word `index` of the buffer.
    public func word(_ index: Int) -> UInt64 {
        precondition(index >= 0 && index < wordCount, "word \(index) is outside a \(wordCount)-word buffer")
        return words[index].load(ordering: .relaxed)
    }

    /// The most PCs the buffer holds: the kernel saturates the count here.
    public var pcCapacity: Int { wordCount - 1 }

    /// The most comparison records the buffer holds (four words each, after the count).
    public var comparisonCapacity: Int { (wordCount - 1) / 4 }

    /// Decodes what the kernel wrote in `mode`. A count at capacity is reported as truncated,
    /// because the kernel drops entries silently once the buffer is full.
    public func read(mode: CoverageMode, pcKind: BackendCapabilities.PCKind) -> Trace {
        let count = rawCount
        switch mode {
        case .pc:
            let capacity = pcCapacity
            let n = count >= UInt64(capacity) ? capacity : Int(count)
            var pcs = [UInt64]()
            pcs.reserveCapacity(n)
            for index in 0..<n { pcs.append(words[1 + index].load(ordering: .relaxed)) }
            return Trace(unit: CoverageUnit(pcKind), mode: mode, pcs: pcs, truncated: count >= UInt64(capacity))
        case .comparisons:
            let capacity = comparisonCapacity
            let n = count >= UInt64(capacity) ? capacity : Int(count)
            var records = [ComparisonRecord]()
            records.reserveCapacity(n)
            for index in 0..<n {
                let base = 1 + 4 * index
                records.append(ComparisonRecord(
                    type: words[base].load(ordering: .relaxed),
                    first: words[base + 1].load(ordering: .relaxed),
                    second: words[base + 2].load(ordering: .relaxed),
                    pc: words[base + 3].load(ordering: .relaxed)))
            }
            return Trace(unit: CoverageUnit(pcKind), mode: mode, comparisons: records, truncated: count >= UInt64(capacity))
        }
    }
}

extension CoverageUnit {
    /// The unit of a kcov buffer's entries with `pcKind`.
    public init(_ pcKind: BackendCapabilities.PCKind) {
        self = pcKind == .synthetic ? .syntheticBlock : .pc
    }
}
