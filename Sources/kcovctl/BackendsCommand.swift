import ArgumentParser
import CoverageAPI
import Foundation
import BackendSelection
import GVisorBackend
import LinuxBackend

/// `kcovctl backends`: what each backend needs, whether it is usable here and why not.
struct BackendsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backends", abstract: "List every backend, whether it is available here and why not, and its capabilities.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(help: "Output format: text or json.")
    var format: Format = .text

    struct Entry: Encodable {
        var name: String
        /// uname's system name of the kernels the backend drives.
        var system: String
        var available: Bool
        var reason: String
        var capabilities: BackendCapabilities
    }

    struct Report: Encodable {
        var environment: HostEnvironment
        /// Which of the five kernels this is ("Linux", "gVisor", "NetBSD", "FreeBSD", "OpenBSD"), and why.
        var kernel: String
        var kernelEvidence: String
        var backends: [Entry]
    }

    func run() throws {
        let selection = BackendSelection.system
        let kernel = selection.identify()
        let entries = selection.list().map { status in
            Entry(
                name: status.name, system: status.systemName, available: status.availability.available, reason: status.availability.reason,
                capabilities: status.capabilities)
        }
        let report = Report(environment: HostEnvironment.current(), kernel: kernel.name, kernelEvidence: kernel.explanation, backends: entries)
        var text = ""
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            text = String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
        case .text:
            let environment = report.environment
            text += "host: \(environment.os) \(environment.kernelRelease) (\(environment.machine))\(environment.insideGVisor ? ", inside gVisor" : "")\n"
            text += "gVisor: \(environment.insideGVisor ? "inside" : "not inside") — \(environment.gVisorEvidence)\n"
            text += "kernel: \(report.kernel) — \(report.kernelEvidence)\n"
            for entry in entries {
                text += "\(entry.name): \(entry.available ? "available" : "unavailable") — \(entry.reason)\n"
                let capabilities = entry.capabilities
                text += "  for: \(entry.system) kernels\n"
                text += "  modes: \(capabilities.supportedModes.map(\.rawValue).sorted().joined(separator: ", ")); PCs: \(capabilities.pcKind.rawValue); granularity: \(capabilities.granularity.rawValue)\n"
                text += "  per thread: \(capabilities.perThread); ordered trace: \(capabilities.orderedTrace); remote: \(capabilities.remote.isEmpty ? "none" : capabilities.remote.map(\.rawValue).sorted().joined(separator: ", "))\n"
                if let buffer = capabilities.buffer {
                    text += "  buffer: \(buffer.words.lowerBound)…\(buffer.words.upperBound) words, multiple of \(buffer.wordMultiple); map before enable: \(capabilities.requiresMapBeforeEnable); remap after disable: \(capabilities.remapAfterDisable)\n"
                } else {
                    text += "  no shared buffer: the kernel counts hits per probed function\n"
                }
            }
        }
        do { try StandardStream.writeOutput(Array(text.utf8)) } catch { throw fail(error) }
    }
}

/// What `backends` reports about the machine it runs on.
struct HostEnvironment: Encodable {
    var os: String
    var kernelRelease: String
    var kernelVersion: String
    var machine: String
    var insideGVisor: Bool
    /// What the gVisor detection found (or found instead).
    var gVisorEvidence: String
    var debugfsMounted: Bool

    static func current() -> HostEnvironment {
        var name = utsname()
        uname(&name)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let verdict = GVisorDetection.current()
        return HostEnvironment(
            os: field(name.sysname), kernelRelease: field(name.release), kernelVersion: field(name.version), machine: field(name.machine),
            insideGVisor: verdict.insideGVisor, gVisorEvidence: verdict.explanation,
            debugfsMounted: LinuxKcovBackend().debugfsMounted)
    }
}
