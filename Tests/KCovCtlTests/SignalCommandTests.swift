import Foundation
import TestSupport
import Testing

/// `kcovctl signal` on small trace files: syzkaller's vectors, new signal against a set file,
/// set files that do not match, truncated and scribbled traces.
@Suite struct SignalCommandTests {
    let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kcovctl-signal-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func file(_ name: String, _ text: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func edgeSignalOfARawcoverMatchesSyzkallersVectors() throws {
        let trace = try file("v.cover", "0xffffffff81000010\n0xffffffff81000123\n0xffffffff81000abc\n")
        let result = try runKcovctl(["signal", "--edges", trace])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == "0xffffffff81000208\n0xffffffff810007e5\n0xffffffff8100097a\n")
        let blocks = try runKcovctl(["signal", trace, trace])
        #expect(blocks.output == "0xffffffff81000010\n0xffffffff81000123\n0xffffffff81000abc\n", "a set: sorted, each once")
    }

    @Test func newSignalAgainstASetFileAndScribbledEntriesDropped() throws {
        let base = try file("base.cover", "0xffffffff81000010\n0xffffffff81000123\n")
        let set = directory + "/base.set"
        #expect(try runKcovctl(["signal", base, "--output", set]).status == 0)
        let next = try file("next.cover", "0xffffffff81000010\n0xffffffff81000999\n0x80007000c0008\n")
        let result = try runKcovctl(["signal", "--new-against", set, next])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == "0xffffffff81000999\n")
        #expect(result.errors.contains("1 entries were not kernel PCs and were dropped"))
        // Edges are not comparable with a set of block PCs.
        let mismatch = try runKcovctl(["signal", "--edges", "--new-against", set, next])
        #expect(mismatch.status != 0)
        #expect(mismatch.errors.contains("base.set: holds block PCs, but the set it meets holds edge signals"), "\(mismatch.errors)")
    }

    @Test func aTruncatedTraceStillCountsAndIsReported() throws {
        let trace = try file("t.json", """
            {"format": "kcovctl-trace", "version": 1, "backend": "linux", "unit": "pc", "mode": "pc",
             "tasks": [{"truncated": true, "pcs": ["0xffffffff81000010"]}]}
            """)
        let result = try runKcovctl(["signal", trace])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == "0xffffffff81000010\n")
        #expect(result.errors.contains("1 of 1 traces filled their buffer"))
    }

    @Test func edgesOfAnUnorderedTraceAreRefused() throws {
        let trace = try file("g.json", """
            {"format": "kcovctl-trace", "version": 1, "backend": "gvisor", "unit": "synthetic-block", "mode": "pc", "pcFormat": "current",
             "tasks": [{"truncated": false, "pcs": ["0xffffffff00010001"]}]}
            """)
        let result = try runKcovctl(["signal", "--edges", trace])
        #expect(result.status == 64)
        #expect(result.errors.contains("edges need a trace in execution order"), "\(result.errors)")
    }

    @Test func aCorruptSetFileIsAClearError() throws {
        let set = try file("bad.set", "not a set")
        let trace = try file("x.cover", "0xffffffff81000010\n")
        let result = try runKcovctl(["signal", "--new-against", set, trace])
        #expect(result.status == 1)
        #expect(result.errors.contains("bad.set: not a signal set file"), "\(result.errors)")
    }
}

/// A closed or full standard stream is an error with a message, never a trap (exit 132).
@Suite struct StandardStreamTests {
    @Test(arguments: [
        ("signal FILE >&-", "cannot write to standard output: Bad file descriptor"),
        ("signal FILE >/dev/full", "cannot write to standard output: No space left on device"),
    ])
    func aClosedOrFullStandardOutputIsReported(redirection: String, message: String) throws {
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("streams-\(getpid())-\(UUID().uuidString).cover").path
        try "0xffffffff81000010\n".write(toFile: trace, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let command = "\"$0\" " + redirection.replacingOccurrences(of: "FILE", with: "'\(trace)'")
        let result = try runProgram(["/bin/sh", "-c", command, try builtKcovctl()])
        #expect(result.status == 1, "\(result.errors)")
        #expect(result.errors.contains(message), "\(result.errors)")
    }

    @Test func aClosedStandardErrorDoesNotTrap() throws {
        let result = try runProgram(["/bin/sh", "-c", "\"$0\" signal /nonexistent/trace 2>&-; echo \"status $?\"", try builtKcovctl()])
        #expect(result.output == "status 1\n")
    }
}
