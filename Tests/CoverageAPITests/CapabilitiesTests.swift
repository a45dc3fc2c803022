import CoverageAPI
import Foundation
import LinuxBackend
import Testing

@Suite struct CapabilitiesTests {
    let linux = LinuxKcovBackend().capabilities
    var linuxBuffer: BufferRules { linux.buffer! }

    @Test(arguments: [0, 1, 511, 513, 268_435_456])
    func linuxRefusesUnmappableOrOutOfRangeSizes(words: Int) {
        #expect(throws: CoverageError.self) { try linuxBuffer.validate(words: words) }
        do {
            try linuxBuffer.validate(words: words)
        } catch let error as CoverageError {
            #expect(error.code == .bufferSize)
            #expect(error.syscall == nil, "refused before any syscall")
            #expect(error.message.contains("use 512…268434944 words"), "names the mappable sizes: \(error.message)")
        } catch {
            Issue.record("not a CoverageError: \(error)")
        }
    }

    @Test(arguments: [512, 1024, 262_144])
    func linuxAcceptsPageMultiples(words: Int) throws {
        try linuxBuffer.validate(words: words)
    }

    @Test func linuxCapabilitiesDescribeKcov() {
        #expect(linux.supportedModes == [.pc, .comparisons])
        #expect(linux.pcKind == .kernelAddress)
        #expect(linux.perThread && linux.orderedTrace)
        #expect(!linux.requiresMapBeforeEnable && !linux.remapAfterDisable)
        #expect(linux.remote == [.commonHandle, .usbBus])
    }

    @Test func capabilitiesRoundTripThroughJSON() throws {
        let data = try JSONEncoder().encode(linux)
        #expect(try JSONDecoder().decode(BackendCapabilities.self, from: data) == linux)
    }

    @Test func unavailableCodes() {
        #expect(CoverageError(.deviceMissing, "").meansUnavailable)
        #expect(CoverageError(.permissionDenied, "").meansUnavailable)
        #expect(CoverageError(.unsupportedMode, "").meansUnavailable)
        #expect(!CoverageError(.busy, "").meansUnavailable)
        #expect(!CoverageError(.commandFailed, "").meansUnavailable)
    }

    @Test func descriptionNamesSyscallAndErrno() {
        let error = CoverageError(.busy, "already initialised", syscall: "ioctl(KCOV_INIT_TRACE, 512)", errno: 16)
        #expect(error.description == "already initialised (ioctl(KCOV_INIT_TRACE, 512): errno 16)")
    }
}
