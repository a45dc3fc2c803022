import ArgumentParser
import Conformance
import CoverageAPI
import Foundation
import FreeBSDBackend
import FreeBSDConformance
import GVisorBackend
import KprobeBackend
import KprobeConformance
import LinuxBackend
import NetBSDBackend
import NetBSDConformance
import OpenBSDBackend
import OpenBSDConformance
import ReferenceModels

/// `kcovctl conformance`: the shared checks against a backend's real device or its reference model.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run the conformance checks on a backend's real device (default) or on its reference model.",
        discussion: "Exits 0 only if every check passes or does not apply; 1 if one fails; 2 if the device is unavailable.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, junit
    }

    @Option(help: "Backend to check: \(Self.backendNames.joined(separator: ", ")).")
    var backend: String?

    @Flag(help: "Check every backend.")
    var all = false

    @Flag(help: "Run against the reference model instead of the real device.")
    var model = false

    @Option(help: "Output: text, json or junit (JUnit XML).")
    var format: Format = .text

    @Flag(help: "Run on the real device inside the test kernel under QEMU.")
    var vm = false

    @OptionGroup(title: "With --vm")
    var guest: GuestOptions

    /// Backends with a conformance target: the real device, a model of it, and the checks (the
    /// shared ones, and the backend's own where it has them; for the function-granularity kprobe
    /// backend, which has no kcov buffer, the `function.*` checks).
    static let targets: [(
        name: String, real: @Sendable () -> any CoverageBackend, model: @Sendable () -> any CoverageBackend,
        checks: [ConformanceCheck]
    )] = [
        ("linux", { LinuxKcovBackend() }, { LinuxKcovBackend(kernel: LinuxKcovModel()) }, ConformanceSuite.checks),
        ("netbsd", { NetBSDKcovBackend() }, { NetBSDKcovBackend(kernel: NetBSDKcovModel()) }, ConformanceSuite.checks + NetBSDChecks.all),
        ("freebsd", { FreeBSDKcovBackend() }, { FreeBSDKcovBackend(kernel: FreeBSDKcovModel()) }, ConformanceSuite.checks + FreeBSDChecks.all),
        ("openbsd", { OpenBSDKcovBackend() }, { OpenBSDKcovBackend(kernel: OpenBSDKcovModel()) }, ConformanceSuite.checks + OpenBSDChecks.all),
        ("gvisor", { GVisorKcovBackend() }, { GVisorKcovBackend(kernel: GVisorKcovModel()) }, ConformanceSuite.checks + GVisorChecks.all),
        ("kprobe", { KprobeBackend() }, { KprobeBackend(kernel: KprobePMUModel()) }, FunctionChecks.all),
    ]
    static var backendNames: [String] { targets.map(\.name) }

    func validate() throws {
        guard all != (backend != nil) else { throw ValidationError("name one --backend or pass --all") }
        if let backend, !Self.backendNames.contains(backend) {
            throw ValidationError("unknown backend '\(backend)': use one of \(Self.backendNames.joined(separator: ", "))")
        }
        if vm && model { throw ValidationError("--vm runs the real device; --model needs no VM") }
        if guest.given && !vm { throw ValidationError(GuestOptions.onlyWithVM) }
    }

    func run() throws {
        if vm { return try runInGuest() }
        let chosen = Self.targets.filter { all || $0.name == backend }
        var reports: [ConformanceReport] = []
        for target in chosen {
            let subject = model ? target.model() : target.real()
            if !model {
                let availability = subject.availability()
                if !availability.available && all {
                    // --all checks what this machine has; the others are named, not fatal.
                    note("skipping \(target.name): \(availability.reason)")
                    continue
                }
                guard availability.available else {
                    throw fail(CoverageError(.deviceMissing, "\(target.name): \(availability.reason) (use --model to check the reference model, or --vm for the test kernel)"))
                }
            }
            reports.append(ConformanceReport(
                backend: target.name, device: model ? .model : .real, checks: ConformanceSuite.run(on: subject, checks: target.checks)))
        }
        if reports.isEmpty {
            throw fail(CoverageError(.deviceMissing, "no backend's device is available here (use --model to check the reference models, or --vm for the test kernel)"))
        }
        do { try StandardStream.writeOutput(Array(render(reports).utf8)) } catch { throw fail(error) }
        if reports.contains(where: { !$0.passed }) { throw ExitStatus.failure }
    }

    func render(_ reports: [ConformanceReport]) -> String {
        switch format {
        case .text:
            return reports.map { $0.text() }.joined(separator: "\n")
        case .junit:
            return ConformanceReport.junit(reports)
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = reports.count == 1 && !all ? try! encoder.encode(reports[0]) : try! encoder.encode(reports)
            return String(decoding: data, as: UTF8.self) + "\n"
        }
    }

    /// Re-runs this subcommand, minus `--vm`, in the test kernel.
    private func runInGuest() throws {
        var arguments = ["conformance", "--format", format.rawValue]
        arguments += all ? ["--all"] : ["--backend", backend!]
        do {
            let result = try GuestLauncher(guest, needs: GuestLauncher.needs(backend: all ? nil : backend)).run([try GuestLauncher.selfPath()] + arguments)
            StandardStream.writeError(result.standardError)
            try StandardStream.writeOutput(result.standardOutput)
            if result.exitStatus != 0 { throw ExitCode(result.exitStatus) }
        } catch {
            throw fail(error)
        }
    }
}
