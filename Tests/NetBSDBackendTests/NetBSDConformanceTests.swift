import Conformance
import CoverageAPI
import KernelSeam
import LinuxBackend
import NetBSDBackend
import NetBSDConformance
import ReferenceModels
import Testing

@Suite struct NetBSDConformanceTests {
    @Test func sharedChecksPassOnTheNetBSDModel() {
        let results = ConformanceSuite.run(on: NetBSDKcovBackend(kernel: NetBSDKcovModel()))
        #expect(results.count == ConformanceSuite.checks.count)
        for result in results where result.status == .fail {
            Issue.record("\(result.id): \(result.detail)")
        }
        let notApplicable = results.filter { $0.status == .notApplicable }.map(\.id)
        #expect(notApplicable == ["mode.unsupported", "remote.common-handle"])
    }

    @Test func everyNetBSDTestCaseIsACheck() {
        let ids = NetBSDChecks.all.map(\.id)
        #expect(ids.count == 23)
        #expect(Set(ids).count == 23)
        #expect(ids.first == "netbsd.kcov_dup2")
        #expect(ids.contains("netbsd.kcov_multiple_threads32"))
        #expect(ids.allSatisfy { $0.split(separator: ".").count == 2 && $0 == $0.lowercased() })
    }

    @Test func netBSDChecksPassOnTheNetBSDModel() {
        let model = NetBSDKcovModel()
        let results = ConformanceSuite.run(on: NetBSDKcovBackend(kernel: model), checks: NetBSDChecks.all)
        #expect(results.count == 23)
        for result in results where result.status != .pass {
            Issue.record("\(result.id): \(result.status.rawValue) \(result.detail)")
        }
        // Everything a check opened or mapped was given back (or went with the simulated exit).
        #expect(model.openDescriptorCount == 0)
        #expect(model.liveMappingCount == 0)
    }

    @Test func netBSDChecksDoNotApplyToOtherBackends() {
        let results = ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel()), checks: Array(NetBSDChecks.all.prefix(3)))
        #expect(results.allSatisfy { $0.status == .notApplicable })
    }

    /// The fork pattern itself works on NetBSD, with a buffer NetBSD accepts.
    @Test func forkPatternWithTheLargestNetBSDBuffer() throws {
        let backend = NetBSDKcovBackend(kernel: NetBSDKcovModel())
        var session = try CoverageCollector(backend: backend, bufferWords: NetBSDKcovABI.bufferEntries.upperBound)
        let (exit, trace) = try session.run(Command(path: "/bin/true", arguments: ["true"], environment: []))
        #expect(exit == .exited(0))
        #expect(trace.pcs.contains(NetBSDKcovModel.probePCs[2]))
    }
}
