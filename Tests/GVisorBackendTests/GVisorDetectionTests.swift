import GVisorBackend
import KernelSeam
import ReferenceModels
import Testing

@Suite struct GVisorDetectionTests {
    @Test func fingerprintTellsTheModelsApart() {
        #expect(GVisorDetection.fingerprint(kernel: GVisorKcovModel()) == .gVisor)
        #expect(GVisorDetection.fingerprint(kernel: LinuxKcovModel()) == .linux)
        #expect(GVisorDetection.fingerprint(kernel: GVisorKcovModel(coverageBuild: false)) == .noDevice)
        #expect(GVisorDetection.fingerprint(kernel: LinuxKcovModel(deviceExists: false)) == .noDevice)
    }

    @Test func fingerprintLeavesNothingBehind() {
        let gVisor = GVisorKcovModel()
        _ = GVisorDetection.fingerprint(kernel: gVisor)
        #expect(gVisor.openDescriptorCount == 0 && gVisor.liveBufferCount == 0)
    }

    @Test func seamOnlyEvidence() {
        // The gVisor model's /proc/version is gVisor's; the Linux model has none.
        let inside = GVisorDetection.Evidence.gather(kernel: GVisorKcovModel(coverageBuild: false), kernelVersion: nil, bootLog: nil)
        #expect(inside.versionIsGVisor)
        #expect(inside.fingerprint == .noDevice)
        #expect(inside.verdict.insideGVisor)
        let linux = GVisorDetection.Evidence.gather(kernel: LinuxKcovModel(), kernelVersion: nil, bootLog: nil)
        #expect(!linux.verdict.insideGVisor)
        #expect(linux.verdict.explanation.contains("accepted INIT_TRACE(2)"))
    }

    @Test func eachPieceOfEvidenceIsEnough() {
        let version = GVisorDetection.Evidence(kernelVersion: "#1 SMP Sun Jan 10 15:06:54 PST 2016", bootLogHasBanner: nil, fingerprint: .noDevice)
        #expect(version.verdict.insideGVisor)
        #expect(version.verdict.explanation.contains("fixed"))
        let banner = GVisorDetection.Evidence(kernelVersion: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0", bootLogHasBanner: true, fingerprint: .noDevice)
        #expect(banner.verdict.insideGVisor)
        #expect(banner.verdict.explanation.contains("Starting gVisor..."))
        let fingerprint = GVisorDetection.Evidence(kernelVersion: nil, bootLogHasBanner: false, fingerprint: .gVisor)
        #expect(fingerprint.verdict.insideGVisor)
        let none = GVisorDetection.Evidence(kernelVersion: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0", bootLogHasBanner: false, fingerprint: .linux)
        #expect(!none.verdict.insideGVisor)
        #expect(none.verdict.explanation.contains("not gVisor's"))
    }

    @Test func procVersionTailCounts() {
        let evidence = GVisorDetection.Evidence(
            kernelVersion: "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016", bootLogHasBanner: nil, fingerprint: .noDevice)
        #expect(evidence.versionIsGVisor)
    }

    @Test func bootLogIsSearched() {
        let log = "[    0.000000] Starting gVisor...\n[    0.226152] Synthesizing system calls...\n"
        let evidence = GVisorDetection.Evidence.gather(kernel: LinuxKcovModel(deviceExists: false), kernelVersion: "x", bootLog: log)
        #expect(evidence.bootLogHasBanner == true)
        #expect(evidence.verdict.insideGVisor)
    }

    @Test func thisHostIsNotGVisor() {
        // The tests run on the host; the sandbox tests check the inside.
        #expect(!GVisorDetection.current().insideGVisor)
    }
}
