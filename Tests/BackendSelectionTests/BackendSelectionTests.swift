import BackendSelection
import CoverageAPI
import GVisorBackend
import KprobeBackend
import LinuxBackend
import NetBSDBackend
import ReferenceModels
import Testing

/// Backend selection as a library user gets it, over the reference models: names, `auto`, and the
/// gVisor rule.
@Suite struct BackendSelectionTests {
    static let outside = GVisorDetection.Verdict(insideGVisor: false, explanation: "kernel version is Linux's")
    static let inside = GVisorDetection.Verdict(insideGVisor: true, explanation: "kernel version is gVisor's fixed one")

    /// linux, netbsd, gvisor, kprobe over models; `linux` and `kprobe` can be made unavailable.
    func selection(linux: Bool = true, kprobe: Bool = true, gVisorBuild: Bool = true, inGVisor: Bool = false) -> BackendSelection {
        let verdict = inGVisor ? Self.inside : Self.outside
        return BackendSelection(
            backends: [
                LinuxKcovBackend(kernel: LinuxKcovModel(deviceExists: linux)),
                NetBSDKcovBackend(kernel: NetBSDKcovModel(), devicePath: "/nonexistent/kcov"),
                GVisorKcovBackend(kernel: GVisorKcovModel(coverageBuild: gVisorBuild)) { verdict },
                KprobeBackend(kernel: KprobePMUModel(pmu: kprobe)),
            ],
            detectGVisor: { verdict })
    }

    func error(_ body: () throws(CoverageError) -> Void) -> CoverageError? {
        do { try body() } catch { return error }
        return nil
    }

    @Test func namesAreAutoThenEveryBackend() {
        #expect(selection().names == ["auto", "linux", "netbsd", "gvisor", "kprobe"])
        #expect(BackendSelection.system.names == ["auto", "linux", "netbsd", "gvisor", "kprobe"])
    }

    @Test func anUnknownNameListsTheNames() {
        let failure = error { () throws(CoverageError) in _ = try selection().resolve("freebsd9") }
        #expect(failure?.code == .invalidArgument)
        #expect(failure?.message == "there is no backend called \"freebsd9\": use one of auto, linux, netbsd, gvisor, kprobe")
    }

    @Test func autoTakesKcovFirstAndSaysWhyNotTheOthers() throws {
        let choice = try selection().resolve("auto")
        #expect(choice.backend.name == "linux")
        #expect(choice.explanation.hasPrefix("auto: using the linux backend"))
        let fallback = try selection(linux: false).resolve("auto")
        #expect(fallback.backend.name == "kprobe", "kprobe is the fallback for kernels without kcov")
        #expect(fallback.explanation.contains("not linux: "), "\(fallback.explanation)")
        #expect(fallback.explanation.contains("CONFIG_KCOV"), "\(fallback.explanation)")
    }

    @Test func autoWithNothingAvailableGivesEachReason() {
        let failure = error { () throws(CoverageError) in _ = try selection(linux: false, kprobe: false).resolve("auto") }
        #expect(failure?.code == .deviceMissing)
        let message = failure?.message ?? ""
        #expect(message.hasPrefix("no coverage backend is available here — "))
        for name in ["linux: ", "netbsd: ", "kprobe: ", "gvisor: not inside gVisor"] {
            #expect(message.contains(name), "\(name) missing from: \(message)")
        }
    }

    @Test func insideGVisorAutoTakesGVisorOnly() throws {
        let choice = try selection(inGVisor: true).resolve("auto")
        #expect(choice.backend.name == "gvisor")
        #expect(choice.explanation.contains("inside gVisor"))
        // A release runsc has no kcov file: auto fails rather than falling back to linux.
        let failure = error { () throws(CoverageError) in _ = try selection(gVisorBuild: false, inGVisor: true).resolve("auto") }
        #expect(failure?.code == .deviceMissing)
        #expect(failure?.message.contains("only the gvisor backend can be used") == true)
    }

    @Test func insideGVisorTheLinuxBackendByNameIsRefused() {
        let failure = error { () throws(CoverageError) in _ = try selection(inGVisor: true).resolve("linux") }
        #expect(failure?.code == .wrongBackend)
        #expect(failure?.message.contains("use the gvisor backend") == true)
        #expect((try? selection(inGVisor: true).resolve("gvisor"))?.backend.name == "gvisor")
    }

    @Test func listGivesEveryBackendWithItsReason() {
        let statuses = selection(linux: false).list()
        #expect(statuses.map(\.name) == ["linux", "netbsd", "gvisor", "kprobe"])
        #expect(statuses.map(\.availability.available) == [false, false, false, true])
        #expect(statuses[0].availability.reason.contains("CONFIG_KCOV"))
        #expect(statuses[3].capabilities.buffer == nil)
    }
}
