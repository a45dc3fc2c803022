// Every backend reads the coverage buffer as 64-bit words and sends the request numbers of a 64-bit
// process. A 32-bit build would send KCOV_INIT_TRACE as 0x80046301 (ENOTTY under a 64-bit kernel)
// and misread its 8-byte words (Docs/kcov-linux.md, "32-bit userland"): it is refused when compiled.
#if !(arch(x86_64) || arch(arm64))
#error("KernelCoverage runs as a 64-bit process only (x86_64 or arm64): kcov's buffer words are the kernel's unsigned long; see Docs/kcov-linux.md, 32-bit userland")
#endif

public import Synchronization

/// The shared coverage buffer as the kernel sees it: word 0 is the entry count, entries follow.
///
/// Every access is a relaxed atomic on a word the kernel may be writing concurrently; the words are
/// bound to `Atomic<UInt64>` once, when the buffer is created over a mapping.
public struct CoverageBuffer: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
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
    @inlinable public var rawCount: UInt64 { words[0].load(ordering: .relaxed) }

    /// Starts a new trace: the kernel appends after whatever count it finds.
    @inlinable public func reset() { words[0].store(0, ordering: .relaxed) }

    /// Word `index` of the buffer.
    public func word(_ index: Int) -> UInt64 {
        precondition(index >= 0 && index < wordCount, "word \(index) is outside a \(wordCount)-word buffer")
        return words[index].load(ordering: .relaxed)
    }

    /// The most PCs the buffer holds: the kernel saturates the count here.
    @inlinable public var pcCapacity: Int { wordCount - 1 }

    /// The most comparison records the buffer holds (four words each, after the count).
    public var comparisonCapacity: Int { (wordCount - 1) / 4 }

    /// The PCs recorded so far (PC mode), read in place: no copy, no allocation. The count is read
    /// once, now; each element is a relaxed atomic load when accessed.
    @inlinable public var pcs: PCs {
        let count = rawCount
        let capacity = pcCapacity
        return PCs(words: words + 1, count: count >= UInt64(capacity) ? capacity : Int(count), truncated: count >= UInt64(capacity))
    }

    /// Copies the PCs recorded so far (PC mode) into `array`, replacing its contents and reusing
    /// its capacity (no allocation once it is large enough); returns whether the buffer was full.
    @inlinable @discardableResult
    public func readPCs(into array: inout [UInt64]) -> Bool {
        let view = pcs
        array.removeAll(keepingCapacity: true)
        array.reserveCapacity(view.count)
        for index in 0..<view.count { array.append(words[1 + index].load(ordering: .relaxed)) }
        return view.truncated
    }

    /// A view of the PCs in a live buffer (``pcs``): valid while the buffer's mapping is.
    public struct PCs: RandomAccessCollection, @unchecked Sendable {
        @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
        /// PCs recorded when the view was made (at most the buffer's capacity).
        public let count: Int
        /// The buffer was full: the kernel dropped later entries.
        public let truncated: Bool

        @inlinable init(words: UnsafeMutablePointer<Atomic<UInt64>>, count: Int, truncated: Bool) {
            self.words = words
            self.count = count
            self.truncated = truncated
        }

        @inlinable public var startIndex: Int { 0 }
        @inlinable public var endIndex: Int { count }

        @inlinable @inline(__always)
        public subscript(position: Int) -> UInt64 {
            precondition(position >= 0 && position < count, "PC \(position) is outside a view of \(count)")
            return words[position].load(ordering: .relaxed)
        }
    }

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
            return Trace(unit: CoverageUnit(pcKind: pcKind, granularity: .basicBlock), mode: mode, pcs: pcs, truncated: count >= UInt64(capacity))
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
            return Trace(unit: CoverageUnit(pcKind: pcKind, granularity: .basicBlock), mode: mode, comparisons: records, truncated: count >= UInt64(capacity))
        }
    }
}

