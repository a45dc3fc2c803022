import Conformance
import Foundation
import GVisorBackend
import TestSupport
import Testing

/// The project's own `kcovctl` inside a real gVisor sandbox: Debian's `runsc` (a release build,
/// so no kcov file), started with `runsc --network=none do`.
///
/// What works in this container (as root, Debian's runsc 0.0~20221219): `runsc --network=none do
/// <program>`. Plain `runsc do` fails ("Error setting up network … iptables … not found"), so
/// `--network=none` is required; `--ignore-cgroups` and `--rootless` are not needed as root (as
/// non-root the sandbox needs `--rootless`, added below). `runsc do` shares the host's root
/// (overlaid), so the built binaries and the Swift runtime are visible inside. Each run takes
/// about a quarter of a second.
///
/// Never skipped: the test command installs runsc, so a missing runsc is a failure that says to
/// run Scripts/setup.sh.
@Suite(.serialized)
struct GVisorSandboxTests {
    @Test func backendsReportsInsideGVisorAndTheMissingKcovFile() throws {
        let result = try GVisorSandbox.runKcovctl(["backends", "--format", "json"])
        try #require(result.status == 0, "kcovctl backends exited \(result.status): \(result.errors)")
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        let environment = try #require(json["environment"] as? [String: Any])
        #expect(environment["insideGVisor"] as? Bool == true, "\(environment)")
        #expect(environment["kernelVersion"] as? String == GVisorDetection.versionString)
        let evidence = try #require(environment["gVisorEvidence"] as? String)
        #expect(evidence.contains("Starting gVisor..."), "the boot banner is readable in the sandbox: \(evidence)")
        let backends = try #require(json["backends"] as? [[String: Any]])
        let gvisor = try #require(backends.first { $0["name"] as? String == "gvisor" }, "no gvisor entry: \(backends)")
        #expect(gvisor["available"] as? Bool == false)
        let reason = try #require(gvisor["reason"] as? String)
        for phrase in ["does not exist in this gVisor sandbox", "release build", "//runsc:runsc_coverage", "-cover", "`kcov`", "coverage report"] {
            #expect(reason.contains(phrase), "\(phrase) missing from: \(reason)")
        }
        let capabilities = try #require(gvisor["capabilities"] as? [String: Any])
        #expect(capabilities["pcKind"] as? String == "synthetic")
        #expect(capabilities["orderedTrace"] as? Bool == false)
        #expect(capabilities["perThread"] as? Bool == false)
        #expect(capabilities["supportedModes"] as? [String] == ["pc"])
    }

    @Test func backendsTextExplainsTheDetection() throws {
        let result = try GVisorSandbox.runKcovctl(["backends"])
        #expect(result.status == 0)
        #expect(result.output.contains("inside gVisor"), "\(result.output)")
        #expect(result.output.contains("gvisor: unavailable"), "\(result.output)")
    }

    @Test func traceFailsWithStatus2AndSaysWhichBuildHasKcov() throws {
        let result = try GVisorSandbox.runKcovctl(["trace", "--", "/bin/true"])
        #expect(result.status == 2, "stdout: \(result.output) stderr: \(result.errors)")
        for phrase in ["inside gVisor", "release build", "//runsc:runsc_coverage", "coverage report"] {
            #expect(result.errors.contains(phrase), "\(phrase) missing from: \(result.errors)")
        }
    }

    @Test func explicitGVisorBackendFailsTheSameWay() throws {
        let result = try GVisorSandbox.runKcovctl(["trace", "--backend", "gvisor", "--", "/bin/true"])
        #expect(result.status == 2, "\(result.errors)")
        #expect(result.errors.contains("//runsc:runsc_coverage"), "\(result.errors)")
    }

    /// The library's selection and the linux backend itself both refuse the linux backend in a
    /// real sandbox, before touching the device, and say which backend to use.
    @Test func theLinuxBackendIsRefusedInsideGVisor() throws {
        let result = try GVisorSandbox.runKcovctl(["trace", "--backend", "linux", "--", "/bin/true"])
        #expect(result.status == 2, "stdout: \(result.output) stderr: \(result.errors)")
        #expect(result.errors.contains("use the gvisor backend"), "\(result.errors)")
        let listed = try GVisorSandbox.runKcovctl(["backends"])
        #expect(listed.output.contains("linux: unavailable — this is a gVisor sandbox"), "\(listed.output)")
    }

    @Test func conformanceOnTheRealSandboxSaysUnavailable() throws {
        let result = try GVisorSandbox.runKcovctl(["conformance", "--backend", "gvisor"])
        #expect(result.status == 2, "\(result.errors)")
        #expect(result.errors.contains("//runsc:runsc_coverage"), "\(result.errors)")
    }
}

/// Finding runsc and running the built kcovctl in it.
enum GVisorSandbox {

    /// Debian installs runsc in /usr/bin.
    static let runsc: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        return directories.map { "\($0)/runsc" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// The flags that start a sandbox here: no network (this container has no iptables), and
    /// rootless when not root.
    static var flags: [String] {
        getuid() == 0 ? ["--network=none"] : ["--rootless", "--network=none"]
    }

    /// Why the sandbox tests cannot run; a failure, never a skip.
    struct Unavailable: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs `kcovctl arguments` inside `runsc do`, with a two-minute limit.
    static func runKcovctl(_ arguments: [String]) throws -> ProgramResult {
        guard let runsc else {
            throw Unavailable("runsc is not installed: run Scripts/setup.sh (it installs Debian's runsc package)")
        }
        return try runProgram([runsc] + flags + ["do", try builtKcovctl()] + arguments, timeLimit: 120)
    }
}

/// The built kcovctl on the host (no sandbox needed): the model conformance run and the listing.
@Suite struct GVisorHostCLITests {
    @Test func conformanceOnTheModelRunsTheGVisorChecks() throws {
        let result = try runKcovctl(["conformance", "--backend", "gvisor", "--model", "--format", "json"], timeLimit: 120)
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect(json["backend"] as? String == "gvisor" && json["device"] as? String == "model")
        let checks = try #require(json["checks"] as? [[String: Any]])
        let ids = checks.compactMap { $0["id"] as? String }
        #expect(ids.filter { $0.hasPrefix("gvisor.") }.count == Conformance.GVisorChecks.all.count)
        #expect(checks.allSatisfy { $0["status"] as? String != "fail" })
    }

    @Test func backendsListsGVisorAsNotHere() throws {
        let result = try runKcovctl(["backends", "--format", "json"], timeLimit: 120)
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect((json["environment"] as? [String: Any])?["insideGVisor"] as? Bool == false)
        let backends = try #require(json["backends"] as? [[String: Any]])
        let gvisor = try #require(backends.first { $0["name"] as? String == "gvisor" })
        #expect(gvisor["available"] as? Bool == false)
        #expect((gvisor["reason"] as? String)?.contains("not running inside gVisor") == true)
    }
}
