import GVisorBackend
import Testing

@Suite struct SyntheticPCTests {
    @Test func currentFormatFollowsGVisorsFormula() {
        let block = SyntheticPC.current(package: 5, function: 0x123, block: 0x45)
        #expect(block.pc == ~UInt64(0x45 | 0x123 << 8 | 5 << 20))
        #expect(block.pc > 0xffff_ffff_7fff_ffff, "gVisor's own test bound for small package indexes")
        #expect(SyntheticPC.format(of: block.pc) == .current)
        #expect(SyntheticPC.decode(block.pc, as: .current) == block)
    }

    @Test(arguments: [UInt64(0), 1, 2047, 4096, 8_388_607])
    func currentRoundTrips(package: UInt64) {
        let block = SyntheticPC.current(package: package, function: 0xfff, block: 0xff)
        #expect(SyntheticPC.format(of: block.pc) == .current)
        #expect(SyntheticPC.decode(block.pc, as: .current) == block)
    }

    @Test func packageIndexesFrom2To23AreNotRecognised() {
        #expect(SyntheticPC.format(of: SyntheticPC.current(package: 1 << 23, function: 0, block: 0).pc) == nil)
    }

    @Test func legacyFormatFollowsGVisorsFormula() {
        let block = SyntheticPC.legacy(file: 17, block: 300)
        #expect(block.pc == 17 << 16 + 300)
        #expect(SyntheticPC.format(of: block.pc) == .legacy)
        #expect(SyntheticPC.decode(block.pc, as: .legacy) == block)
    }

    @Test func kernelAddressesAreNeitherFormat() {
        #expect(SyntheticPC.format(of: 0xffff_ffff_8100_0000) == .current, "a kernel text address looks current-format")
        #expect(SyntheticPC.format(of: 0x0001_0000_0000_0000) == nil)
    }

    @Test func traceFormat() {
        let current = [SyntheticPC.current(package: 1, function: 2, block: 3).pc, SyntheticPC.current(package: 9, function: 0, block: 0).pc]
        let legacy = [SyntheticPC.legacy(file: 1, block: 2).pc]
        #expect(SyntheticPC.format(ofTrace: current) == .current)
        #expect(SyntheticPC.format(ofTrace: legacy) == .legacy)
        #expect(SyntheticPC.format(ofTrace: current + legacy) == nil)
        #expect(SyntheticPC.format(ofTrace: []) == nil)
    }
}
