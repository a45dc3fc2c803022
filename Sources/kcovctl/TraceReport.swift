import ArgumentParser
import CoverageAPI
import Foundation
import GVisorBackend
import TraceFile

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
    /// Where the kernel's text and modules were when the command ended (kcov backends on a real kernel).
    var kernel: KernelLayout? = nil

    /// PCs in trace order: the recorded PCs, or the comparison sites in CMP mode.
    var pcs: [UInt64] { trace.mode == .pc ? trace.pcs : trace.comparisons.map(\.pc) }

    /// For synthetic PCs (gVisor), which encoding they use: `current`, `legacy`, or `unknown`
    /// (empty or mixed); `nil` for kernel addresses.
    var syntheticFormat: String? {
        guard trace.pcKind == .synthetic else { return nil }
        return SyntheticPC.format(ofTrace: pcs)?.rawValue ?? "unknown"
    }

    func render(_ format: TraceFormat) throws(TraceFileError) -> String {
        switch format {
        case .rawcover: rawcover()
        case .json: try json()
        case .summary: summary()
        }
    }

    /// One `0x%016x` PC a line.
    func rawcover() -> String { Self.rawcover(pcs) }

    /// One `0x%016x` PC a line. Written byte by byte: traces of whole programs hold millions of PCs.
    static func rawcover(_ pcs: [UInt64]) -> String {
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
        case .timedOut: "killed with SIGKILL when its timeout expired"
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

    /// The trace as a trace file (`TraceFile`): one task, the command and its exit, and the kernel's layout when known.
    var traceFile: TraceFile {
        if let functions {
            return TraceFile(
                backend: backend, functions: functions.hits, probedFunctions: functions.probed, skippedFunctions: functions.skipped,
                command: command, exit: exit, truncated: trace.truncated)
        }
        var file = TraceFile(
            backend: backend, trace: trace, pcFormat: syntheticFormat.flatMap(TraceFile.PCFormat.init(rawValue:)), command: command,
            exit: exit, bufferWords: bufferWords)
        file.kernel = kernel
        return file
    }

    /// The JSON of ``traceFile``.
    func json() throws(TraceFileError) -> String {
        String(decoding: try traceFile.jsonData(), as: UTF8.self)
    }
}

/// What a function-level trace adds: the functions probed (a report's denominator), those entered, those skipped.
struct FunctionReport {
    var probed: [ProbedFunction]
    var hits: [FunctionHit]
    var skipped: [SkippedFunction]
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
