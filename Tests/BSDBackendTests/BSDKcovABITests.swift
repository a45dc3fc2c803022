import FreeBSDBackend
import NetBSDBackend
import OpenBSDBackend
import ReferenceModels
import Testing

/// The request numbers, computed by each backend from its kernel's `<sys/ioccom.h>` encoding,
/// against the numbers issue 18 gives (and the headers confirm, Docs/kcov-freebsd.md#ioctl-encoding,
/// Docs/kcov-openbsd.md#ioctl-encoding).
@Suite struct BSDKcovABITests {
    @Test func freeBSDRequestNumbers() {
        #expect(FreeBSDKcovABI.enable == 0x2004_6302)
        #expect(FreeBSDKcovABI.disable == 0x2000_6303)
        #expect(FreeBSDKcovABI.setBufferSize == 0x2004_6304)
        // _IOWINT is IOC_VOID with an int's length: no copy-in, the argument is the value.
        #expect(FreeBSDKcovABI.enable & 0xe000_0000 == 0x2000_0000)
        #expect((FreeBSDKcovABI.setBufferSize >> 16) & 0x1fff == 4)
        // The model is the kernel: it answers the same numbers.
        #expect(FreeBSDKcovModel.Request.enable == FreeBSDKcovABI.enable)
        #expect(FreeBSDKcovModel.Request.disable == FreeBSDKcovABI.disable)
        #expect(FreeBSDKcovModel.Request.setBufferSize == FreeBSDKcovABI.setBufferSize)
    }

    @Test func openBSDRequestNumbers() {
        #expect(OpenBSDKcovABI.setBufferSize == 0x8008_4b01)
        #expect(OpenBSDKcovABI.enable == 0x8004_4b02)
        #expect(OpenBSDKcovABI.disable == 0x2000_4b03)
        #expect(OpenBSDKcovABI.remoteAttach == 0x8008_4b04)
        #expect(OpenBSDKcovModel.Request.setBufferSize == OpenBSDKcovABI.setBufferSize)
        #expect(OpenBSDKcovModel.Request.enable == OpenBSDKcovABI.enable)
        #expect(OpenBSDKcovModel.Request.disable == OpenBSDKcovABI.disable)
        #expect(OpenBSDKcovModel.Request.remoteAttach == OpenBSDKcovABI.remoteAttach)
    }

    /// NetBSD and OpenBSD share three numbers, which is why detection never sends them to find out.
    @Test func openBSDSharesNetBSDsNumbers() {
        #expect(OpenBSDKcovABI.setBufferSize == NetBSDKcovABI.setBufferSize)
        #expect(OpenBSDKcovABI.enable == NetBSDKcovABI.enable)
        #expect(OpenBSDKcovABI.disable == NetBSDKcovABI.disable)
        #expect(OpenBSDKcovABI.remoteAttach != NetBSDKcovABI.remoteAttach)
    }

    @Test func requestNumbersAreZeroExtended() {
        for request in [OpenBSDKcovABI.setBufferSize, OpenBSDKcovABI.enable, OpenBSDKcovABI.remoteAttach, FreeBSDKcovABI.enable] {
            #expect(request >> 32 == 0)
        }
    }

    @Test func modesSizesAndRanges() {
        #expect([FreeBSDKcovABI.modeTracePC, FreeBSDKcovABI.modeTraceCMP] == [0, 1])
        #expect([OpenBSDKcovABI.modeNone, OpenBSDKcovABI.modeTracePC, OpenBSDKcovABI.modeTraceCMP] == [0, 1, 2])
        #expect(FreeBSDKcovABI.entrySize == 8 && OpenBSDKcovABI.entrySize == 8)
        #expect(FreeBSDKcovABI.bufferEntries == 2...16_777_216)
        #expect(OpenBSDKcovABI.bufferEntries == 1...524_288)
        #expect(OpenBSDKcovABI.remoteCommon == 0)
    }
}
