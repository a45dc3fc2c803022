import LinuxBackend
import Testing

@Suite struct LinuxKcovABITests {
    @Test func requestNumbersMatchTheUAPIHeader() {
        #expect(LinuxKcovABI.initTrace == 0x8008_6301)
        #expect(LinuxKcovABI.enable == 0x6364)
        #expect(LinuxKcovABI.disable == 0x6365)
        #expect(LinuxKcovABI.remoteEnable == 0x4018_6366)
    }

    @Test func modesAndHandles() {
        #expect(LinuxKcovABI.tracePC == 0)
        #expect(LinuxKcovABI.traceCMP == 1)
        #expect(LinuxKcovABI.enotsupp == 524)
        #expect(LinuxKcovABI.remoteHandle(subsystem: LinuxKcovABI.subsystemUSB, instance: 3) == 0x0100_0000_0000_0003)
        #expect(LinuxKcovABI.remoteHandle(subsystem: LinuxKcovABI.subsystemCommon, instance: 42) == 42)
        #expect(LinuxKcovABI.bufferWords == 2...268_435_455)
    }
}
