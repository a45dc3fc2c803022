import Foundation
import TestSupport
import Testing

/// kcovctl on the host: exit statuses scripts rely on, one-line errors, and `--vm` plumbing.
@Suite struct KCovCtlHostTests {
    static let hostHasKcov = FileManager.default.fileExists(atPath: "/sys/kernel/debug/kcov")

    @Test(arguments: [
        ["trace", "--buffer-words", "0", "--", "true"],
        ["trace", "--backend", "nosuch", "--", "true"],
        ["trace", "--mode", "edges", "--", "true"],
        ["trace"],
        ["trace", "--kvm", "--", "true"],
        ["vm", "run"],
    ])
    func usageErrorsExit64(arguments: [String]) throws {
        let result = try runKcovctl(arguments)
        #expect(result.status == 64)
        #expect(result.errors.contains("Error:"))
    }

    @Test func bufferTheBackendCannotMapIsAUsageError() throws {
        let result = try runKcovctl(["trace", "--backend", "linux", "--buffer-words", "1000", "--", "true"])
        #expect(result.status == 64)
        #expect(result.errors == "kcovctl: error: a buffer of 1000 words cannot be used: use 512…268434944 words, a multiple of 512 (4096-byte pages)\n")
    }

    @Test func missingCommandIsOneLineAndExit1() throws {
        let result = try runKcovctl(["trace", "--", "/nonexistent/tool"])
        #expect(result.status == 1)
        #expect(result.errors == "kcovctl: error: /nonexistent/tool does not exist: give the program's path (absolute, or relative to the current directory) or a name on PATH (access(/nonexistent/tool, X_OK): errno 2)\n")
        let onPath = try runKcovctl(["trace", "--", "no-such-command-anywhere"])
        #expect(onPath.status == 1)
        #expect(onPath.errors.hasPrefix("kcovctl: error: command not found: no-such-command-anywhere"))
    }

    @Test func traceWithoutDeviceIsUnavailable() throws {
        let result = try runKcovctl(["trace", "--", "true"])
        if Self.hostHasKcov {
            #expect(result.status == 0)
        } else {
            #expect(result.status == 2)
            #expect(result.errors.split(separator: "\n").count == 1, "one line")
            #expect(result.errors.contains("debugfs is not mounted") || result.errors.contains("CONFIG_KCOV"))
        }
    }

    @Test func backendsJSONDescribesHostAndLinux() throws {
        let result = try runKcovctl(["backends", "--format", "json"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        let environment = try #require(json["environment"] as? [String: Any])
        #expect(environment["os"] as? String == "Linux")
        #expect((environment["kernelRelease"] as? String)?.isEmpty == false)
        #expect(environment["insideGVisor"] as? Bool == false)
        let backends = try #require(json["backends"] as? [[String: Any]])
        let linux = try #require(backends.first { $0["name"] as? String == "linux" })
        #expect(linux["available"] as? Bool == Self.hostHasKcov)
        #expect((linux["reason"] as? String)?.isEmpty == false)
        let capabilities = try #require(linux["capabilities"] as? [String: Any])
        #expect(capabilities["supportedModes"] as? [String] == ["cmp", "pc"])
        #expect(capabilities["pcKind"] as? String == "kernelAddress")
    }

    @Test(.timeLimit(.minutes(20)))
    func vmRunPassesTheGuestExitStatusThrough() throws {
        let result = try runKcovctl(["vm", "run", "--", "sh", "-c", "echo in-guest; uname -r; exit 3"])
        #expect(result.status == 3)
        #expect(result.output.hasPrefix("in-guest\n6.12."))
    }

    @Test(.timeLimit(.minutes(20)))
    func traceInTheVMWritesRawcoverToAFile() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("kcovctl-\(UUID()).rawcover").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try runKcovctl(["trace", "--vm", "--format", "rawcover", "--output", output, "--", "/bin/true"])
        #expect(result.status == 0, "\(result.errors)")
        let text = try String(contentsOfFile: output, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count > 1000, "exec of /bin/true runs thousands of kernel blocks")
        #expect(malformedRawcoverLines(text).isEmpty)
        #expect(lines.allSatisfy { $0.hasPrefix("0xffffffff8") }, "kernel text addresses")
    }
}

/// Lines of rawcover output that are not one `0x%016x` PC.
func malformedRawcoverLines(_ text: String) -> [Substring] {
    text.split(separator: "\n").filter { line in
        line.count != 18 || !line.hasPrefix("0x") || !line.dropFirst(2).allSatisfy(\.isHexDigit) || line.contains(where: \.isUppercase)
    }
}
