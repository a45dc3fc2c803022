import BackendSelection
import CoverageAPI
import FreeBSDBackend
import GVisorBackend
import KprobeBackend
import LinuxBackend
import NetBSDBackend
import OpenBSDBackend
import ReferenceModels
import Synchronization
import Testing

/// Backend selection as a library user gets it, over the reference models: names, `auto` (the
/// kernel told by uname first), and the gVisor rule.
@Suite struct BackendSelectionTests {
    static let outside = GVisorDetection.Verdict(insideGVisor: false, explanation: "kernel version is Linux's")
    static let inside = GVisorDetection.Verdict(insideGVisor: true, explanation: "kernel version is gVisor's fixed one")

    /// linux, netbsd, freebsd, openbsd, gvisor, kprobe over models on a host whose uname says
    /// `system`; `linux`, `kprobe` and the BSD devices can be made unavailable. The gVisor
    /// detection counts how often it is asked.
    func selection(
        system: String? = "Linux", linux: Bool = true, kprobe: Bool = true, bsd: Bool = true, gVisorBuild: Bool = true,
        inGVisor: Bool = false, asked: GVisorQuestions = GVisorQuestions()
    ) -> BackendSelection {
        let verdict = inGVisor ? Self.inside : Self.outside
        return BackendSelection(
            candidates: [
                .init(LinuxKcovBackend(kernel: LinuxKcovModel(deviceExists: linux)), systemName: "Linux"),
                .init(NetBSDKcovBackend(kernel: NetBSDKcovModel(deviceExists: bsd)), systemName: "NetBSD"),
                .init(FreeBSDKcovBackend(kernel: FreeBSDKcovModel(deviceExists: bsd)), systemName: "FreeBSD"),
                .init(OpenBSDKcovBackend(kernel: OpenBSDKcovModel(deviceExists: bsd)), systemName: "OpenBSD"),
                .init(GVisorKcovBackend(kernel: GVisorKcovModel(coverageBuild: gVisorBuild)) { verdict }, systemName: "Linux"),
                .init(KprobeBackend(kernel: KprobePMUModel(pmu: kprobe)), systemName: "Linux"),
            ],
            hostSystem: { system },
            detectGVisor: {
                asked.count.add(1, ordering: .relaxed)
                return verdict
            })
    }

    func error(_ body: () throws(CoverageError) -> Void) -> CoverageError? {
        do { try body() } catch { return error }
        return nil
    }

    @Test func namesAreAutoThenEveryBackend() {
        #expect(selection().names == ["auto", "linux", "netbsd", "freebsd", "openbsd", "gvisor", "kprobe"])
        #expect(BackendSelection.system.names == ["auto", "linux", "netbsd", "freebsd", "openbsd", "gvisor", "kprobe"])
    }

    @Test func anUnknownNameListsTheNames() {
        let failure = error { () throws(CoverageError) in _ = try selection().resolve("freebsd9") }
        #expect(failure?.code == .invalidArgument)
        #expect(failure?.message == "there is no backend called \"freebsd9\": use one of auto, linux, netbsd, freebsd, openbsd, gvisor, kprobe")
    }

    @Test func autoTakesKcovFirstAndSaysWhyNotTheOthers() throws {
        let choice = try selection().resolve("auto")
        #expect(choice.backend.name == "linux")
        #expect(choice.explanation.hasPrefix("auto: uname says Linux, not gVisor (kernel version is Linux's): using the linux backend"))
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
        for name in ["linux: ", "kprobe: ", "gvisor: not inside gVisor", "netbsd is for NetBSD", "freebsd is for FreeBSD", "openbsd is for OpenBSD"] {
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
        let statuses = selection(linux: false, bsd: false).list()
        #expect(statuses.map(\.name) == ["linux", "netbsd", "freebsd", "openbsd", "gvisor", "kprobe"])
        #expect(statuses.map(\.systemName) == ["Linux", "NetBSD", "FreeBSD", "OpenBSD", "Linux", "Linux"])
        #expect(statuses.map(\.availability.available) == [false, false, false, false, false, true])
        #expect(statuses[0].availability.reason.contains("CONFIG_KCOV"))
        #expect(statuses[5].capabilities.buffer == nil)
    }

    /// uname tells Linux, NetBSD, FreeBSD and OpenBSD apart, and on Linux the gVisor detection
    /// tells gVisor from Linux: five kernels, each taking its own backend, with the reason.
    @Test(arguments: [
        ("Linux", false, "linux", "uname says Linux, not gVisor"),
        ("Linux", true, "gvisor", "uname says Linux, but this is inside gVisor"),
        ("NetBSD", false, "netbsd", "uname says NetBSD"),
        ("FreeBSD", false, "freebsd", "uname says FreeBSD"),
        ("OpenBSD", false, "openbsd", "uname says OpenBSD"),
    ])
    func autoTellsTheFiveKernelsApart(system: String, inGVisor: Bool, backend: String, evidence: String) throws {
        let asked = GVisorQuestions()
        let choice = try selection(system: system, inGVisor: inGVisor, asked: asked).resolve("auto")
        #expect(choice.backend.name == backend)
        #expect(choice.explanation.hasPrefix("auto: \(evidence)"), "\(choice.explanation)")
        #expect(choice.explanation.contains("using the \(backend) backend"))
        // The gVisor detection (which asks Linux's kcov file) runs on Linux only.
        #expect(asked.count.load(ordering: .relaxed) == (system == "Linux" ? 1 : 0))
    }

    /// NetBSD and OpenBSD share request numbers: on OpenBSD the netbsd backend, whose model would
    /// answer, is never asked; a BSD whose device is missing gets that BSD's reason and nothing else.
    @Test func aBSDIsNeverGivenAnotherKernelsBackend() {
        let asked = GVisorQuestions()
        let failure = error { () throws(CoverageError) in _ = try selection(system: "OpenBSD", bsd: false, asked: asked).resolve("auto") }
        #expect(failure?.code == .deviceMissing)
        let message = failure?.message ?? ""
        #expect(message.contains("uname says OpenBSD"), "\(message)")
        #expect(message.contains("openbsd: /dev/kcov does not exist"), "\(message)")
        #expect(!message.contains("netbsd: "), "the netbsd backend was tried on OpenBSD: \(message)")
        #expect(message.contains("netbsd is for NetBSD"))
        #expect(asked.count.load(ordering: .relaxed) == 0)
    }

    @Test func anUnknownSystemHasNoBackend() {
        let failure = error { () throws(CoverageError) in _ = try selection(system: "Darwin").resolve("auto") }
        #expect(failure?.code == .deviceMissing)
        #expect(failure?.message.hasPrefix("no coverage backend drives this kernel — uname says Darwin") == true, "\(failure?.message ?? "")")
        #expect(selection(system: nil).identify().name == "unknown")
    }

    /// On this Linux host: the kernel is Linux, and the FreeBSD and OpenBSD backends on the host
    /// kernel say why they cannot be used.
    @Test func onThisHostTheBSDBackendsSayItIsNotTheirKernel() {
        let system = BackendSelection.system
        #expect(system.identify().systemName == "Linux")
        let statuses = system.list()
        for (name, kernel) in [("freebsd", "FreeBSD"), ("openbsd", "OpenBSD"), ("netbsd", "NetBSD")] {
            let status = statuses.first { $0.name == name }
            #expect(status?.availability.available == false)
            #expect(status?.availability.reason.contains("this host runs Linux, not \(kernel)") == true, "\(status?.availability.reason ?? "")")
        }
    }
}

/// How often a selection asked whether it runs inside gVisor.
final class GVisorQuestions: Sendable {
    let count = Atomic<Int>(0)
}
