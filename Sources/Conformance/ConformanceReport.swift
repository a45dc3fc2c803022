/// One backend's conformance results, with the device they were measured on.
public struct ConformanceReport: Sendable, Hashable, Codable {
    /// Where the checks ran.
    public enum Device: String, Sendable, Hashable, Codable {
        /// The kernel's own coverage device.
        case real
        /// A reference model of that kernel's driver.
        case model
    }

    public var backend: String
    public var device: Device
    public var checks: [CheckResult]

    public init(backend: String, device: Device, checks: [CheckResult]) {
        self.backend = backend
        self.device = device
        self.checks = checks
    }

    /// Every check passed or did not apply.
    public var passed: Bool { !checks.contains { $0.status == .fail } }

    /// `PASS id`, `FAIL id: detail`, `N/A  id: reason`, then a count.
    public func text() -> String {
        var lines = ["\(backend) (\(device.rawValue) device):"]
        for check in checks {
            switch check.status {
            case .pass: lines.append("  PASS \(check.id)")
            case .fail: lines.append("  FAIL \(check.id): \(check.detail)")
            case .notApplicable: lines.append("  N/A  \(check.id): \(check.detail)")
            }
        }
        let count = { (status: CheckResult.Status) in checks.count { $0.status == status } }
        lines.append("  \(count(.pass)) passed, \(count(.fail)) failed, \(count(.notApplicable)) not applicable")
        return lines.joined(separator: "\n") + "\n"
    }

    /// JUnit XML for CI systems: one `<testsuite>` per report, a `<testcase>` per check, failures
    /// as `<failure>`, not-applicable checks as `<skipped>`.
    public static func junit(_ reports: [ConformanceReport]) -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        let total = reports.reduce(0) { $0 + $1.checks.count }
        let failures = reports.reduce(0) { $0 + $1.checks.count { $0.status == .fail } }
        xml += #"<testsuites name="kcovctl conformance" tests="\#(total)" failures="\#(failures)" errors="0">"# + "\n"
        for report in reports {
            let name = "\(report.backend).\(report.device.rawValue)"
            let suiteFailures = report.checks.count { $0.status == .fail }
            let skipped = report.checks.count { $0.status == .notApplicable }
            xml += #"  <testsuite name="\#(escape(name))" tests="\#(report.checks.count)" failures="\#(suiteFailures)" errors="0" skipped="\#(skipped)">"# + "\n"
            for check in report.checks {
                let open = #"    <testcase classname="conformance.\#(escape(name))" name="\#(escape(check.id))""#
                switch check.status {
                case .pass:
                    xml += open + "/>\n"
                case .fail:
                    xml += open + ">\n" + #"      <failure message="\#(escape(check.detail))"/>"# + "\n    </testcase>\n"
                case .notApplicable:
                    xml += open + ">\n" + #"      <skipped message="\#(escape(check.detail))"/>"# + "\n    </testcase>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }

    /// Text safe inside an XML attribute.
    static func escape(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            case "\n": result += "&#10;"
            case _ where scalar.value < 0x20 && scalar != "\t": result += "?"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
