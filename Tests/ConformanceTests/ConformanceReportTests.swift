import Conformance
import Foundation
import TestSupport
import Testing

@Suite struct ConformanceReportTests {
    let report = ConformanceReport(backend: "linux", device: .model, checks: [
        CheckResult(id: "lifecycle.init-twice", status: .pass, detail: ""),
        CheckResult(id: "collect.reenable", status: .fail, detail: "expected <busy> & got \"invalidState\"\nsecond line"),
        CheckResult(id: "mode.unsupported", status: .notApplicable, detail: "supportedModes lists every mode"),
    ])

    @Test func textListsEveryCheckAndCounts() {
        let text = report.text()
        #expect(text.contains("  PASS lifecycle.init-twice\n"))
        #expect(text.contains("  FAIL collect.reenable: expected <busy>"))
        #expect(text.contains("  N/A  mode.unsupported: supportedModes lists every mode\n"))
        #expect(text.hasSuffix("  1 passed, 1 failed, 1 not applicable\n"))
        #expect(!report.passed)
    }

    @Test func jsonRoundTripsWithTheDocumentedShape() throws {
        let data = try JSONEncoder().encode(report)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["backend"] as? String == "linux")
        #expect(object["device"] as? String == "model")
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.map { $0["status"] as? String } == ["pass", "fail", "not-applicable"])
        #expect(try JSONDecoder().decode(ConformanceReport.self, from: data) == report)
    }

    /// The JUnit output as a real consumer reads it: junitparser, from PyPI (Scripts/setup.sh installs it).
    @Test func junitIsAcceptedByJunitparser() throws {
        let other = ConformanceReport(backend: "netbsd", device: .model, checks: [CheckResult(id: "a.b", status: .pass, detail: "")])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(UUID()).xml").path
        try ConformanceReport.junit([report, other]).write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = """
            import sys
            from junitparser import JUnitXml, Failure, Skipped
            xml = JUnitXml.fromfile(sys.argv[1])
            for suite in xml:
                for case in suite:
                    kinds = [type(r).__name__ for r in case.result]
                    messages = [r.message for r in case.result]
                    print(suite.name, suite.tests, suite.failures, suite.skipped, case.classname, case.name, kinds, messages)
            """
        let result = try runProgram(["/usr/bin/env", "python3", "-c", script, path])
        let output = result.output
        #expect(result.status == 0, "junitparser could not read the report (is it installed? Scripts/setup.sh)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines == [
            "linux.model 3 1 1 conformance.linux.model lifecycle.init-twice [] []",
            #"linux.model 3 1 1 conformance.linux.model collect.reenable ['Failure'] ['expected <busy> & got "invalidState"\nsecond line']"#,
            "linux.model 3 1 1 conformance.linux.model mode.unsupported ['Skipped'] ['supportedModes lists every mode']",
            "netbsd.model 1 0 0 conformance.netbsd.model a.b [] []",
        ])
    }
}
