import NetBSDBackend
import NetBSDConformance
import Testing

@Suite struct NetBSDKcovABITests {
    /// The values of NetBSD's `sys/kcov.h`, as its compiler computes them.
    @Test func requestNumbersMatchTheHeader() {
        #expect(NetBSDKcovABI.setBufferSize == 0x8008_4b01)
        #expect(NetBSDKcovABI.enable == 0x8004_4b02)
        #expect(NetBSDKcovABI.disable == 0x2000_4b03)
        #expect(NetBSDKcovABI.remoteAttach == 0x8010_4b0a)
        #expect(NetBSDKcovABI.remoteDetach == 0x2000_4b0b)
    }

    @Test func requestNumbersAreZeroExtended() {
        // A sign-extended 0x80084b01 would be 0xffffffff80084b01: another request to the kernel.
        for request in [NetBSDKcovABI.setBufferSize, NetBSDKcovABI.enable, NetBSDKcovABI.remoteAttach] {
            #expect(request >> 32 == 0)
        }
    }

    @Test func modesSizesAndVHCIHandles() {
        #expect([NetBSDKcovABI.modeNone, NetBSDKcovABI.modeTracePC, NetBSDKcovABI.modeTraceCMP] == [0, 1, 2])
        #expect(NetBSDKcovABI.entrySize == 8)
        #expect(NetBSDKcovABI.bufferEntries == 2...262_144)
        #expect(NetBSDKcovABI.vhciID(bus: 3, port: 1) == 0x0000_0003_0000_0001)
        #expect(NetBSDKcovABI.vhciID(bus: 0, port: 0xffff_ffff) == 0xffff_ffff)
    }
}
