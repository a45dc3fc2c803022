import CoverageAPI
import CoverageSignal
import Foundation
import Synchronization
import Testing

@Suite struct EdgeSignalTests {
    @Test func hash32MatchesSyzkallersVectors() {
        #expect(EdgeSignal.hash32(0x0) == 0xc0a9_496a)
        #expect(EdgeSignal.hash32(0x123) == 0x63e7_5d59)
        #expect(EdgeSignal.hash32(0xfff) == 0xf3a9_cff3)
    }

    @Test func edgeSignalsMatchSyzkallersVectors() {
        let pcs: [UInt64] = [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0123, 0xffff_ffff_8100_0abc]
        #expect(EdgeSignal.signals(of: pcs) == [0xffff_ffff_8100_097a, 0xffff_ffff_8100_0208, 0xffff_ffff_8100_07e5])
    }

    @Test func theMixTableIsTheHashOfEvery12BitValue() {
        #expect(EdgeSignal.mixes.count == 4096)
        for value in 0..<4096 {
            #expect(UInt32(EdgeSignal.mixes[value]) == EdgeSignal.hash32(UInt32(value)) & 0xfff, "entry \(value)")
        }
    }

    @Test func theLazySignalsEqualTheFormulaOnEveryPreviousValue() {
        // Every 12-bit low part as the previous PC, so each table entry is used once.
        let pcs = (0..<UInt64(8192)).map { 0xffff_ffff_8100_0000 | ($0 * 0x9e37) & 0xf_ffff }
        var previous: UInt64 = 0
        let expected = pcs.map { pc -> UInt64 in
            defer { previous = pc }
            return pc ^ UInt64(EdgeSignal.hash32(UInt32(previous & 0xfff)) & 0xfff)
        }
        #expect(Array(EdgeSignal.lazy(pcs)) == expected)
        #expect(Set(pcs.map { $0 & 0xfff }).count == 4096)
    }

    @Test func pathsWithTheSameBlocksGiveDifferentEdges() {
        let (a, b, c, d): (UInt64, UInt64, UInt64, UInt64) = (0xffff_ffff_8100_0010, 0xffff_ffff_8100_0220, 0xffff_ffff_8100_0330, 0xffff_ffff_8100_0440)
        let first = Set(EdgeSignal.signals(of: [a, b, c, d]))
        let second = Set(EdgeSignal.signals(of: [a, d, c, b]))
        #expect(Set([a, b, c, d]) == Set([a, d, c, b]), "the same blocks")
        #expect(first != second, "A->B C->D and A->D C->B are different paths")
    }
}

@Suite struct PCSetTests {
    /// Random PCs in a kernel-like range, with repeats and the odd 0.
    static func randomPCs(_ count: Int, seed: UInt64) -> [UInt64] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let pc = 0xffff_ffff_8100_0000 | (state >> 40) & 0xff_ffff
            return pc & 0xfff == 0x123 ? 0 : pc
        }
    }

    @Test(arguments: [0, 1, 11, 1000, 50000])
    func agreesWithSwiftsSet(count: Int) {
        let pcs = Self.randomPCs(count, seed: UInt64(count) + 7)
        let others = Self.randomPCs(count / 2 + 3, seed: UInt64(count) + 99)
        var set = PCSet()
        var reference = Set<UInt64>()
        for pc in pcs { #expect(set.insert(pc) == reference.insert(pc).inserted) }
        #expect(set.count == reference.count)
        #expect(set.sorted == reference.sorted())
        #expect(Array(set) == reference.sorted(), "iteration is in address order")
        for pc in others { #expect(set.contains(pc) == reference.contains(pc)) }
        // The per-call path, from a sequence that does not say how long it is (so it must grow midway).
        var bulk = PCSet()
        var fresh: [UInt64] = []
        bulk.insertNew(AnySequence(pcs), appendingTo: &fresh)
        var firsts = Set<UInt64>()
        #expect(fresh == pcs.filter { firsts.insert($0).inserted }, "the new elements, in order")
        #expect(bulk == set)
        fresh.removeAll()
        bulk.insertNew(pcs, appendingTo: &fresh)
        #expect(fresh.isEmpty)
        let other = PCSet(others)
        #expect(set.union(other).sorted == reference.union(others).sorted())
        #expect(set.subtracting(other).sorted == reference.subtracting(others).sorted())
    }

    @Test func unionIsCommutativeAndAssociative() {
        let a = PCSet(Self.randomPCs(300, seed: 1)), b = PCSet(Self.randomPCs(500, seed: 2)), c = PCSet(Self.randomPCs(50, seed: 3))
        #expect(a.union(b) == b.union(a))
        #expect(a.union(b).union(c) == a.union(b.union(c)))
        #expect(a.union(b).hashValue == b.union(a).hashValue)
        #expect(a != b)
    }
}

@Suite struct MaxSignalTests {
    @Test func aSecondPassOverTheSameCallsFindsNothingNew() {
        let shared = MaxSignal()
        var worker = MaxSignal.Worker(shared)
        let calls: [[UInt64]] = [[1, 2, 3], [2, 3, 4, 4], [5], [1, 5]]
        #expect(calls.map { worker.newSignals($0) } == [[1, 2, 3], [4], [5], []])
        #expect(calls.allSatisfy { worker.newSignals($0).isEmpty })
        var other = MaxSignal.Worker(shared)
        #expect(other.newSignals([3, 6]) == [6], "what one worker found is known to the others")
    }

    @Test func concurrentWorkersReportEachSignalExactlyOnce() {
        let shared = MaxSignal()
        let notified = Mutex<[UInt64]>([])
        shared.onNewSignal { fresh in notified.withLock { $0 += fresh } }
        let reported = Mutex<[UInt64]>([])
        let group = DispatchGroup()
        for worker in 0..<4 {
            group.enter()
            Thread {
                var view = MaxSignal.Worker(shared)
                var mine: [UInt64] = []
                for call in 0..<2000 {
                    let base = UInt64((call * 7 + worker * 13) % 5000)
                    mine += view.newSignals([base, base + 1, base + 2])
                }
                reported.withLock { $0 += mine }
                group.leave()
            }.start()
        }
        group.wait()
        let all = reported.withLock { $0 }
        #expect(all.count == Set(all).count, "a signal was reported as new twice")
        #expect(Set(all) == Set(shared.snapshot))
        #expect(notified.withLock { $0 }.sorted() == all.sorted())
    }
}

@Suite struct ComparisonHintTests {
    static func record(_ size: Int, constant: Bool, _ first: UInt64, _ second: UInt64, pc: UInt64 = 0xffff_ffff_8100_0010) -> ComparisonRecord {
        let log = [1: 0, 2: 1, 4: 2, 8: 3][size]!
        return ComparisonRecord(type: UInt64(log << 1) | (constant ? 1 : 0), first: first, second: second, pc: pc)
    }

    @Test func hintsDropZeroConstantsAndEqualOperandsSignExtendAndDeduplicate() {
        let records = [
            Self.record(1, constant: true, 0xff, 0x41),        // -1 vs 'A', 1 byte
            Self.record(1, constant: true, 0xff, 0x41),        // the same again: deduplicated
            Self.record(4, constant: true, 0, 7),              // a constant 0: dropped
            Self.record(8, constant: false, 9, 9),             // equal operands: dropped
            Self.record(2, constant: false, 0x8000, 3),        // sign-extended 2-byte operand
            Self.record(4, constant: true, 0x10, 0x20, pc: 0xffff_ffff_8100_0020),  // a switch case
            ComparisonRecord(type: 0x10, first: 1, second: 2, pc: 3),               // not well formed
        ]
        let (hints, malformed) = ComparisonHint.hints(from: records)
        #expect(malformed == 1)
        #expect(hints == [
            ComparisonHint(pc: 0xffff_ffff_8100_0010, first: 0xffff_ffff_ffff_ffff, second: 0x41, size: 1, isConstant: true),
            ComparisonHint(pc: 0xffff_ffff_8100_0010, first: 0xffff_ffff_ffff_8000, second: 3, size: 2, isConstant: false),
            ComparisonHint(pc: 0xffff_ffff_8100_0020, first: 0x10, second: 0x20, size: 4, isConstant: true),
        ])
    }

    @Test func signExtensionBySize() {
        #expect(ComparisonHint.signExtend(0x7f, size: 1) == 0x7f)
        #expect(ComparisonHint.signExtend(0x80, size: 1) == 0xffff_ffff_ffff_ff80)
        #expect(ComparisonHint.signExtend(0x1_8000_0000, size: 4) == 0xffff_ffff_8000_0000)
        #expect(ComparisonHint.signExtend(0x8000_0000_0000_0000, size: 8) == 0x8000_0000_0000_0000)
    }
}

@Suite struct SignalExtractionTests {
    static let ordered = BackendCapabilities(
        supportedModes: [.pc], pcKind: .kernelAddress, granularity: .basicBlock, perThread: true, orderedTrace: true, remote: [],
        requiresMapBeforeEnable: false, remapAfterDisable: false, mapLengthMustMatch: true, oneEnabledInstancePerThread: true,
        collectsAfterClose: true, buffer: BufferRules(words: 2...1024, wordMultiple: 512, wordSize: 8))

    @Test func edgesFromAnUnorderedBackendAreRefused() {
        var unordered = Self.ordered
        unordered.orderedTrace = false
        unordered.pcKind = .synthetic
        #expect(throws: CoverageError.self) { try SignalExtraction(kind: .edges, capabilities: unordered) }
        #expect(throws: Never.self) { try SignalExtraction(kind: .blocks, capabilities: unordered) }
    }

    @Test func scribbledEntriesAreDroppedAndCountedBeforeTheyBecomeSignal() throws {
        // 0x80007000c0008 is the kind of "PC" a fuzzed program writing into the buffer produced.
        let pcs: [UInt64] = [0xffff_ffff_8100_0010, 0x8_0007_000c_0008, 0xffff_ffff_8100_0123, 0, 0xffff_ffff_8100_0abc]
        let blocks = try SignalExtraction(kind: .blocks, capabilities: Self.ordered)
        let (signal, dropped) = blocks.signal(of: pcs)
        #expect(dropped == 2)
        #expect(signal.sorted == [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0123, 0xffff_ffff_8100_0abc])
        // Edges pair each plausible PC with the previous plausible one: the vectors still hold.
        let edges = try SignalExtraction(kind: .edges, capabilities: Self.ordered)
        #expect(edges.signal(of: pcs).signal.sorted == [0xffff_ffff_8100_0208, 0xffff_ffff_8100_07e5, 0xffff_ffff_8100_097a])
        // With the kernel's text known, a kernel address outside it is dropped too.
        let text = try SignalExtraction(kind: .blocks, capabilities: Self.ordered, text: 0xffff_ffff_8100_0000...0xffff_ffff_8100_0200)
        #expect(text.signal(of: pcs).dropped == 3)
    }
}

@Suite struct SignalSetFileTests {
    @Test func roundTripIsCompactAndExact() throws {
        let pcs = PCSetTests.randomPCs(20000, seed: 5)
        let file = SignalSetFile(content: .edges, kernel: "6.12.117 #1 SMP", set: PCSet(pcs))
        let bytes = file.encoded()
        #expect(try SignalSetFile.decode(bytes, source: "a") == file)
        #expect(bytes.count < file.set.count * 4, "\(bytes.count) bytes for \(file.set.count) elements")
    }

    @Test func mergingInAnyOrderGivesTheSameFile() throws {
        let parts = (0..<4).map { SignalSetFile(content: .pcs, kernel: $0 == 2 ? "" : "k1", set: PCSet(PCSetTests.randomPCs(500, seed: UInt64($0)))) }
        let forward = try parts.dropFirst().reduce(parts[0]) { try $0.merged(with: $1, otherSource: "x") }
        let backward = try parts.dropLast().reversed().reduce(parts[3]) { try $0.merged(with: $1, otherSource: "x") }
        #expect(forward.set == backward.set)
        #expect(forward.encoded() == backward.encoded())
    }

    @Test func anotherKindOrBuildIsAClearError() {
        let pcs = SignalSetFile(content: .pcs, kernel: "k1", set: PCSet([1, 2]))
        let edges = SignalSetFile(content: .edges, kernel: "k1", set: PCSet([3]))
        let other = SignalSetFile(content: .pcs, kernel: "k2", set: PCSet([3]))
        #expect(throws: SignalSetError(source: "e.set", "holds edge signals, but the set it meets holds block PCs: compare like with like")) {
            try pcs.merged(with: edges, otherSource: "e.set")
        }
        #expect(throws: SignalSetError(source: "o.set", "comes from kernel build \"k2\", but the set it meets from \"k1\": PCs of different builds do not match")) {
            try pcs.merged(with: other, otherSource: "o.set")
        }
    }

    static let magic = SignalSetFile.magic
    static let corrupt: [(bytes: [UInt8], expected: String)] = [
        (Array("nonsense".utf8), "not a signal set file"),
        (magic, "ends before its content"),
        (magic + [7], "content 7 is not one of"),
        (magic + [0, 0, 5, 1], "holds 5 elements but has 1 bytes left"),
        (magic + [0, 0, 2, 1, 0], "element 1 repeats"),
        (magic + [0, 0, 1] + Array(repeating: 0xff, count: 10) + [1], "does not fit 64 bits"),
        (magic + [0, 0, 1, 1, 9], "1 bytes follow the last element"),
    ]

    @Test(arguments: corrupt)
    func corruptFilesSayWhatIsWrong(bytes: [UInt8], expected: String) {
        do {
            _ = try SignalSetFile.decode(bytes, source: "bad.set")
            Issue.record("decoded a corrupt file")
        } catch {
            #expect(error.message.contains(expected), "\(error)")
        }
    }
}

@Suite struct DensePCSetTests {
    @Test func agreesWithTheSparseSetAndKeepsStrays() {
        let coverable = PCSetTests.randomPCs(5000, seed: 11).filter { $0 != 0 }
        let index = CoverableIndex(coverable + coverable.prefix(10))
        #expect(index.pcs == Array(Set(coverable)).sorted())
        let inserts = Array(coverable.prefix(1500)) + [0xffff_ffff_9000_0000, 0xffff_ffff_9000_0000]
        var dense = DensePCSet(index: index)
        var sparse = PCSet()
        for pc in inserts { #expect(dense.insert(pc) == sparse.insert(pc)) }
        #expect(dense.count == sparse.count)
        #expect(dense.sorted == sparse.sorted)
        #expect(dense.strays.sorted == [0xffff_ffff_9000_0000], "a PC the index lacks is kept aside, not dropped")
        #expect(dense.sparse == sparse)
        var other = DensePCSet(index: index)
        for pc in coverable.suffix(2000) { other.insert(pc) }
        var union = dense
        union.formUnion(other)
        #expect(union.sparse == sparse.union(other.sparse))
        #expect(dense.subtracting(other).sparse == sparse.subtracting(other.sparse))
        #expect(coverable.allSatisfy { dense.contains($0) == sparse.contains($0) })
    }
}
