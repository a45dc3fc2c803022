import ArgumentParser
import CoverageAPI
import Foundation
import GVisorBackend
import KprobeBackend

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
    /// Function-level backends (kprobe): the functions entered, with hits, and those skipped.
    var functions: FunctionReport? = nil

    /// PCs in trace order: the recorded PCs, or the comparison sites in CMP mode.
    var pcs: [UInt64] { trace.mode == .pc ? trace.pcs : trace.comparisons.map(\.pc) }

    /// For synthetic PCs (gVisor), which encoding they use: `current`, `legacy`, or `unknown`
    /// (empty or mixed); `nil` for kernel addresses.
    var syntheticFormat: String? {
        guard trace.pcKind == .synthetic else { return nil }
        return SyntheticPC.format(ofTrace: pcs)?.rawValue ?? "unknown"
    }

    func render(_ format: TraceFormat) -> String {
        switch format {
        case .rawcover: rawcover()
        case .json: json()
        case .summary: summary()
        }
    }

    /// One `0x%016x` PC a line. Written byte by byte: traces of whole programs hold millions of PCs.
    func rawcover() -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(pcs.count * 19)
        for pc in pcs {
            appendHex(pc, to: &bytes)
            bytes.append(UInt8(ascii: "\n"))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    var exitDescription: String {
        switch exit {
        case .exited(let status): "exited with status \(status)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }

    func summary() -> String {
        if let functions {
            var lines = [
                "backend: \(backend) (function granularity: one counting kprobe per function)",
                "command: \(command.joined(separator: " ")) — \(exitDescription)",
                "functions entered: \(functions.hits.count) of \(functions.probed.count) probed (\(functions.skipped.count) skipped)",
            ]
            for hit in functions.hits.sorted(by: { $0.hits > $1.hits }) {
                lines.append("  \(hit.name) \(String(format: "0x%016llx", hit.pc)): \(hit.hits)")
            }
            for skipped in functions.skipped { lines.append("  skipped \(skipped.name): \(skipped.reason)") }
            return lines.joined(separator: "\n") + "\n"
        }
        var lines = [
            "backend: \(backend) (\(trace.mode.rawValue) mode, \(bufferWords)-word buffer)",
            "command: \(command.joined(separator: " ")) — \(exitDescription)",
            "entries: \(trace.count)",
            "unique PCs: \(Set(pcs).count)" + (syntheticFormat.map { " (synthetic, \($0) format)" } ?? ""),
            "truncated: \(trace.truncated ? "yes — the buffer filled up and later entries were dropped; rerun with a larger --buffer-words" : "no")",
        ]
        if trace.mode == .comparisons {
            lines.append("constant comparisons: \(trace.comparisons.filter(\.isConstant).count)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `{"backend", "mode", "truncated", "count", "pcs", "comparisons"?, "command", "exitStatus" | "signal"}`,
    /// PCs and operands as hex strings (kernel addresses do not fit a JSON double).
    func json() -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(pcs.count * 24 + 256)
        func append(_ text: String) { bytes.append(contentsOf: text.utf8) }
        func appendQuotedHex(_ value: UInt64) {
            bytes.append(UInt8(ascii: "\""))
            appendHex(value, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
        append("{\n  \"backend\": \(jsonString(backend)),\n  \"mode\": \(jsonString(trace.mode.rawValue)),\n")
        append("  \"truncated\": \(trace.truncated),\n  \"count\": \(trace.count),\n")
        append("  \"command\": [\(command.map(jsonString).joined(separator: ", "))],\n")
        if let syntheticFormat { append("  \"pcFormat\": \(jsonString(syntheticFormat)),\n") }
        switch exit {
        case .exited(let status): append("  \"exitStatus\": \(status),\n")
        case .signaled(let signal): append("  \"signal\": \(signal),\n")
        }
        if trace.mode == .comparisons {
            append("  \"comparisons\": [")
            for (index, record) in trace.comparisons.enumerated() {
                append(index == 0 ? "\n    {\"pc\": " : ",\n    {\"pc\": ")
                appendQuotedHex(record.pc)
                append(", \"type\": \(record.type), \"size\": \(record.operandSize), \"const\": \(record.isConstant), \"arg1\": ")
                appendQuotedHex(record.first)
                append(", \"arg2\": ")
                appendQuotedHex(record.second)
                append("}")
            }
            append(trace.comparisons.isEmpty ? "],\n" : "\n  ],\n")
        }
        if let functions {
            /// `"key": [{"name": …, "pc": …, extra}, …],` for functions the kernel knows.
            func appendList<Function>(_ key: String, _ list: [Function], name: (Function) -> String, pc: (Function) -> UInt64, extra: (Function) -> String) {
                append("  \"\(key)\": [")
                for (index, function) in list.enumerated() {
                    append(index == 0 ? "\n    {\"name\": " : ",\n    {\"name\": ")
                    append(jsonString(name(function)))
                    append(", \"pc\": ")
                    appendQuotedHex(pc(function))
                    append(extra(function) + "}")
                }
                append(list.isEmpty ? "],\n" : "\n  ],\n")
            }
            append("  \"granularity\": \"function\",\n  \"probed\": \(functions.probed.count),\n")
            appendList("probedFunctions", functions.probed, name: \.name, pc: \.pc) { _ in "" }
            appendList("functions", functions.hits, name: \.name, pc: \.pc) { ", \"hits\": \($0.hits)" }
            append("  \"skipped\": [")
            for (index, skipped) in functions.skipped.enumerated() {
                append(index == 0 ? "\n    {\"name\": " : ",\n    {\"name\": ")
                append("\(jsonString(skipped.name)), \"reason\": \(jsonString(skipped.reason))}")
            }
            append(functions.skipped.isEmpty ? "],\n" : "\n  ],\n")
        }
        append("  \"pcs\": [")
        for (index, pc) in pcs.enumerated() {
            append(index == 0 ? "\n    " : ",\n    ")
            appendQuotedHex(pc)
        }
        append(pcs.isEmpty ? "]\n}\n" : "\n  ]\n}\n")
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What a function-level trace adds: the functions probed (a report's denominator), those entered, those skipped.
struct FunctionReport {
    var probed: [ProbedFunction]
    var hits: [FunctionHit]
    var skipped: [SkippedFunction]
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case "\r": result += "\\r"
        case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

private let hexDigits = Array("0123456789abcdef".utf8)

/// Appends `0x%016x` of `value`.
func appendHex(_ value: UInt64, to bytes: inout [UInt8]) {
    bytes.append(UInt8(ascii: "0"))
    bytes.append(UInt8(ascii: "x"))
    var shift = 60
    while shift >= 0 {
        bytes.append(hexDigits[Int((value >> UInt64(shift)) & 0xf)])
        shift -= 4
    }
}
