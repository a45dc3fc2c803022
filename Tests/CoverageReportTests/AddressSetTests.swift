@testable import KernelImage
import Testing

/// The scan's open-addressing set against Swift's Set on the same addresses.
@Suite struct AddressSetTests {
    @Test func agreesWithSetThroughGrowth() {
        // Kernel-like addresses 16 bytes apart, 0 (the empty-slot marker) and the top address.
        var generator = SystemRandomNumberGenerator()
        let inserted = (0..<5000).map { 0xffff_ffff_8100_0000 + UInt64($0) * 16 } + [0, .max]
        var set = AddressSet([])
        var reference = Set<UInt64>()
        for address in inserted.shuffled(using: &generator) {
            #expect(set.insert(address) == reference.insert(address).inserted)
        }
        #expect(!set.insert(0) && !set.insert(.max), "repeats are not new")
        #expect(set.count + 1 == reference.count, "0 is kept aside, not counted in a slot")
        let probes = inserted + inserted.map { $0 &+ 8 } + [1, 0xffff_ffff_8100_0001]
        for probe in probes { #expect(set.contains(probe) == reference.contains(probe), "0x\(String(probe, radix: 16))") }
        #expect(!AddressSet([]).contains(0) && AddressSet([0]).contains(0))
    }
}
