import CoverageAPI
import Testing

/// A zeroed, page-aligned buffer standing in for a kcov mapping.
final class ScratchBuffer {
    let address: UnsafeMutableRawPointer
    let words: Int

    init(words: Int) {
        self.words = words
        address = UnsafeMutableRawPointer.allocate(byteCount: words * 8, alignment: 4096)
        address.initializeMemory(as: UInt64.self, repeating: 0, count: words)
    }

    deinit { address.deallocate() }

    subscript(index: Int) -> UInt64 {
        get { address.load(fromByteOffset: index * 8, as: UInt64.self) }
        set { address.storeBytes(of: newValue, toByteOffset: index * 8, as: UInt64.self) }
    }

    var buffer: CoverageBuffer { CoverageBuffer(address: address, wordCount: words) }
}

@Suite struct CoverageBufferTests {
    @Test func pcModeReadsCountThenEntriesInOrder() {
        let scratch = ScratchBuffer(words: 8)
        scratch[0] = 3
        scratch[1] = 0xffff_ffff_8100_0010
        scratch[2] = 0xffff_ffff_8100_0020
        scratch[3] = 0xffff_ffff_8100_0010
        scratch[4] = 0xdead  // beyond the count: not part of the trace
        let trace = scratch.buffer.read(mode: .pc, pcKind: .kernelAddress)
        #expect(trace.pcs == [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0020, 0xffff_ffff_8100_0010])
        #expect(!trace.truncated)
        #expect(trace.count == 3)
    }

    @Test func pcCountAtCapacityIsTruncated() {
        let scratch = ScratchBuffer(words: 4)
        scratch[0] = 3  // the kernel saturates at size - 1
        for index in 1...3 { scratch[index] = UInt64(index) }
        let trace = scratch.buffer.read(mode: .pc, pcKind: .kernelAddress)
        #expect(trace.truncated)
        #expect(trace.pcs == [1, 2, 3])
    }

    @Test func corruptedCountIsClampedNotTrusted() {
        let scratch = ScratchBuffer(words: 4)
        scratch[0] = .max
        let trace = scratch.buffer.read(mode: .pc, pcKind: .kernelAddress)
        #expect(trace.pcs.count == 3)
        #expect(trace.truncated)
    }

    @Test func comparisonRecordsDecode() {
        let scratch = ScratchBuffer(words: 9)
        scratch[0] = 2
        // const, 4-byte operands
        scratch[1] = 0b101; scratch[2] = 0x10; scratch[3] = 0x20; scratch[4] = 0xffff_ffff_8100_0100
        // not const, 1-byte operands
        scratch[5] = 0b000; scratch[6] = 0x7f; scratch[7] = 0x80; scratch[8] = 0xffff_ffff_8100_0200
        let trace = scratch.buffer.read(mode: .comparisons, pcKind: .kernelAddress)
        #expect(trace.comparisons.count == 2)
        #expect(trace.truncated)  // (9 - 1) / 4 = 2 records fit: full
        let first = trace.comparisons[0]
        #expect(first.isConstant && first.operandSize == 4 && first.first == 0x10 && first.second == 0x20)
        #expect(first.pc == 0xffff_ffff_8100_0100 && first.isWellFormed)
        let second = trace.comparisons[1]
        #expect(!second.isConstant && second.operandSize == 1 && second.pc == 0xffff_ffff_8100_0200)
    }

    @Test(arguments: [(UInt64(0), 1), (2, 2), (4, 4), (6, 8), (7, 8)])
    func operandSizeFromTypeBits(type: UInt64, size: Int) {
        #expect(ComparisonRecord(type: type, first: 0, second: 0, pc: 0).operandSize == size)
    }

    @Test func typeWithUndefinedBitsIsNotWellFormed() {
        #expect(!ComparisonRecord(type: 0x10, first: 0, second: 0, pc: 0).isWellFormed)
    }

    @Test func resetZeroesOnlyTheCount() {
        let scratch = ScratchBuffer(words: 4)
        scratch[0] = 2
        scratch[1] = 7
        scratch.buffer.reset()
        #expect(scratch[0] == 0)
        #expect(scratch[1] == 7)
        #expect(scratch.buffer.read(mode: .pc, pcKind: .kernelAddress).pcs.isEmpty)
    }
}
