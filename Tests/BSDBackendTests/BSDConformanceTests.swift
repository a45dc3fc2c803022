import Conformance
import CoverageAPI
import FreeBSDBackend
import FreeBSDConformance
import GVisorBackend
import LinuxBackend
import NetBSDBackend
import OpenBSDBackend
import OpenBSDConformance
import ReferenceModels
import Testing

@Suite struct BSDConformanceTests {
    /// The shared suite passes on both models; what does not apply says which capability.
    @Test func sharedChecksPassOnTheFreeBSDModel() {
        let results = ConformanceSuite.run(on: FreeBSDKcovBackend(kernel: FreeBSDKcovModel()))
        #expect(results.count == ConformanceSuite.checks.count)
        for result in results where result.status == .fail { Issue.record("\(result.id): \(result.detail)") }
        let notApplicable = results.filter { $0.status == .notApplicable }
        #expect(notApplicable.map(\.id) == ["mode.unsupported", "remote.common-handle"])
        #expect(notApplicable.map(\.detail) == ["supportedModes lists every mode", "remote lacks commonHandle"])
    }

    @Test func sharedChecksPassOnTheOpenBSDModel() {
        let model = OpenBSDKcovModel()
        let results = ConformanceSuite.run(on: OpenBSDKcovBackend(kernel: model))
        #expect(results.count == ConformanceSuite.checks.count)
        for result in results where result.status == .fail { Issue.record("\(result.id): \(result.detail)") }
        let notApplicable = results.filter { $0.status == .notApplicable }
        #expect(notApplicable.map(\.id) == ["mode.unsupported"])
        #expect(notApplicable.map(\.detail) == ["supportedModes lists every mode"])
        #expect(results.first { $0.id == "remote.common-handle" }?.status == .pass)
    }

    @Test func everyFreeBSDTestCaseIsACheck() {
        let ids = FreeBSDChecks.all.map(\.id)
        #expect(ids.count == 13 && Set(ids).count == 13)
        #expect(ids.first == "freebsd.kcov_bufsize" && ids.last == "freebsd.kcov_enable_multi_thread")
    }

    @Test func everyOpenBSDTestIsACheck() {
        let ids = OpenBSDChecks.all.map(\.id)
        #expect(ids == [
            "openbsd.close", "openbsd.coverage", "openbsd.dying", "openbsd.exec", "openbsd.fdsend", "openbsd.fork", "openbsd.open",
            "openbsd.remote", "openbsd.remote-close", "openbsd.remote-interrupt", "openbsd.state",
        ])
    }

    @Test func freeBSDChecksPassOnTheFreeBSDModel() {
        let model = FreeBSDKcovModel()
        let results = ConformanceSuite.run(on: FreeBSDKcovBackend(kernel: model), checks: FreeBSDChecks.all)
        for result in results where result.status != .pass { Issue.record("\(result.id): \(result.status.rawValue) \(result.detail)") }
        #expect(model.openDescriptorCount == 0)
        #expect(model.liveMappingCount == 0)
        #expect(model.liveInfoCount == 0, "every kcov_info was freed, the ones closed while running by their thread's destruction")
    }

    @Test func openBSDChecksPassOnTheOpenBSDModel() {
        let model = OpenBSDKcovModel()
        let results = ConformanceSuite.run(on: OpenBSDKcovBackend(kernel: model), checks: OpenBSDChecks.all)
        for result in results where result.status != .pass { Issue.record("\(result.id): \(result.status.rawValue) \(result.detail)") }
        #expect(model.openDescriptorCount == 0)
        #expect(model.liveMappingCount == 0)
        #expect(model.liveDescriptorCount == 0, "every kcov_dev was freed, the dying one by its thread's kcov_exit")
        #expect(!model.remoteAttached)
    }

    @Test func eachKernelsChecksDoNotApplyToTheOthers() {
        let linux = LinuxKcovBackend(kernel: LinuxKcovModel())
        let netbsd = NetBSDKcovBackend(kernel: NetBSDKcovModel())
        for backend in [linux, netbsd] as [any KcovDriver] {
            let results = ConformanceSuite.run(on: backend, checks: Array(FreeBSDChecks.all.prefix(2)) + Array(OpenBSDChecks.all.prefix(2)))
            #expect(results.allSatisfy { $0.status == .notApplicable }, "\(backend.name)")
        }
        let crossed = ConformanceSuite.run(on: OpenBSDKcovBackend(kernel: OpenBSDKcovModel()), checks: Array(FreeBSDChecks.all.prefix(1)))
        #expect(crossed.first?.status == .notApplicable)
    }

    /// On a real kernel the checks that need a simulated fork, descriptor passing or kernel task
    /// are not applicable rather than failed; here the host backend is not even a BSD. Each BSD
    /// backend on the host's kernel refuses before it opens anything, naming its system and the
    /// kernel to run on instead.
    @Test func hostBackendsReportUnavailableOnLinux() {
        let backends: [(backend: any KcovDriver, system: String, kernel: String)] = [
            (NetBSDKcovBackend(), "NetBSD", "options KCOV"), (FreeBSDKcovBackend(), "FreeBSD", "options COVERAGE and options KCOV"),
            (OpenBSDKcovBackend(), "OpenBSD", "pseudo-device kcov"),
        ]
        for (backend, system, kernel) in backends {
            let availability = backend.availability()
            #expect(!availability.available)
            #expect(availability.reason.contains("/dev/kcov is \(system)'s kcov(4) and this host runs Linux, not \(system)"), "\(availability.reason)")
            #expect(availability.reason.contains(kernel), "\(availability.reason)")
            let error = #expect(throws: CoverageError.self) { _ = try backend.openDevice() }
            #expect(error?.code == .deviceMissing && error?.syscall == nil, "refused before any open: \(String(describing: error))")
        }
    }
}

/// The portability the user asked for: one client function, unchanged, over any backend.
func probeCoverage(_ backend: any KcovDriver) throws -> [UInt64] {
    var session = try CoverageCollector(backend: backend, mode: .pc, bufferWords: 4096)
    return try session.collect { backend.probe() }.pcs
}

@Suite struct PortabilityTests {
    /// Five kernels' models, the same function, each kernel's own probe path.
    @Test func sameClientCodeCollectsEachModelsProbe() throws {
        #expect(try probeCoverage(LinuxKcovBackend(kernel: LinuxKcovModel())) == LinuxKcovModel.probePCs)
        #expect(try probeCoverage(NetBSDKcovBackend(kernel: NetBSDKcovModel())) == NetBSDKcovModel.probePCs)
        #expect(try probeCoverage(FreeBSDKcovBackend(kernel: FreeBSDKcovModel())) == FreeBSDKcovModel.probePCs)
        #expect(try probeCoverage(OpenBSDKcovBackend(kernel: OpenBSDKcovModel())) == OpenBSDKcovModel.probePCs)
        #expect(try probeCoverage(GVisorKcovBackend(kernel: GVisorKcovModel())) == GVisorKcovModel.window(GVisorKcovModel.probeBlocks))
        // Five different answers: the function did not get one kernel's PCs five times.
        let all = [LinuxKcovModel.probePCs, NetBSDKcovModel.probePCs, FreeBSDKcovModel.probePCs, OpenBSDKcovModel.probePCs, GVisorKcovModel.window(GVisorKcovModel.probeBlocks)]
        #expect(Set(all).count == 5)
    }
}
