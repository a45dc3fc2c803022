import ArgumentParser
import CoverageAPI
import Foundation

/// The output formats of `trace`.
enum TraceFormat: String, ExpressibleByArgument, CaseIterable {
    case summary, rawcover, json
}

/// One traced command's coverage, rendered for people or tools.
struct TraceReport {
    var backend: String
    var command: [String]
    var exit: CommandExit
    var trace: Trace
    var bufferWords: Int

    /// PCs in trace order: the recorded PCs, or the comparison sites in CMP mode.
    var pcs: [UInt64] { trace.mode == .pc ? trace.pcs : trace.comparisons.map(\.pc) }

    func render(_ format: TraceFormat) -> String {
        switch format {
        case .rawcover: pcs.map { hex($0) + "\n" }.joined()
        case .json: json()
        case .summary: summary()
        }
    }

    var exitDescription: String {
        switch exit {
        case .exited(let status): "exited with status \(status)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }

    func summary() -> String {
        var lines = [
            "backend: \(backend) (\(trace.mode.rawValue) mode, \(bufferWords)-word buffer)",
            "command: \(command.joined(separator: " ")) — \(exitDescription)",
            "entries: \(trace.count)",
            "unique PCs: \(Set(pcs).count)",
            "truncated: \(trace.truncated ? "yes — the buffer filled up and later entries were dropped; rerun with a larger --buffer-words" : "no")",
        ]
        if trace.mode == .comparisons {
            lines.append("constant comparisons: \(trace.comparisons.filter(\.isConstant).count)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    struct JSONComparison: Encodable {
        var pc: String
        var type: UInt64
        var size: Int
        var const: Bool
        var arg1: String
        var arg2: String
    }

    struct JSONTrace: Encodable {
        var backend: String
        var mode: String
        var truncated: Bool
        var count: Int
        var pcs: [String]
        var comparisons: [JSONComparison]?
        var command: [String]
        var exitStatus: Int32?
        var signal: Int32?
    }

    func json() -> String {
        var value = JSONTrace(
            backend: backend, mode: trace.mode.rawValue, truncated: trace.truncated, count: trace.count,
            pcs: pcs.map(hex), command: command)
        if trace.mode == .comparisons {
            value.comparisons = trace.comparisons.map {
                JSONComparison(pc: hex($0.pc), type: $0.type, size: $0.operandSize, const: $0.isConstant, arg1: hex($0.first), arg2: hex($0.second))
            }
        }
        switch exit {
        case .exited(let status): value.exitStatus = status
        case .signaled(let signal): value.signal = signal
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(value), as: UTF8.self) + "\n"
    }
}

/// `0x%016x`.
func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}
