import Conformance
import CoverageAPI
import LinuxBackend
import ReferenceModels
import Testing

@Suite struct LinuxModelConformanceTests {
    @Test func everyCheckPassesOnTheLinuxModel() {
        let results = ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel()))
        #expect(results.count == ConformanceSuite.checks.count)
        for result in results where result.status == .fail {
            Issue.record("\(result.id): \(result.detail)")
        }
        let notApplicable = results.filter { $0.status == .notApplicable }.map(\.id)
        #expect(notApplicable == ["mode.unsupported"], "Linux lists every mode; everything else applies")
    }

    @Test func checkIdsAreUniqueAndNamed() {
        let ids = ConformanceSuite.checks.map(\.id)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.split(separator: ".").count == 2 && $0 == $0.lowercased() })
    }
}
