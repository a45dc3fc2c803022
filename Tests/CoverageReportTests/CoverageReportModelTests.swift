import CoverageAPI
@testable import CoverageReport
import Foundation
import Testing

/// A symbolizer from a table: the report's counting, checked on numbers small enough to do by hand.
struct TableSymbolizer: CoverageSymbolizer {
    var coverable: [(pc: UInt64, source: SourceRange)]

    init(_ rows: [(UInt64, String, String, Int)]) {
        coverable = rows.map { pc, file, function, line in
            (pc, SourceRange(file: file, function: function, startLine: line, startColumn: 0, endLine: line, endColumn: 0))
        }
    }

    func sourceRange(of pc: UInt64) -> SourceRange? { coverable.first { $0.pc == pc }?.source }
}

/// fs/read.c: ksys_read (lines 10, 11, 11, 12), vfs_read (20); include/list.h: list_add (5, line 0 too).
let table = TableSymbolizer([
    (0x100, "fs/read.c", "ksys_read", 10), (0x105, "fs/read.c", "ksys_read", 11), (0x10a, "fs/read.c", "ksys_read", 11),
    (0x110, "fs/read.c", "ksys_read", 12), (0x200, "fs/read.c", "vfs_read", 20),
    (0x300, "include/list.h", "list_add", 5), (0x305, "include/list.h", "list_add", 0),
])

func input(_ pcs: [UInt64], mode: CoverageMode = .pc, truncated: Bool = false, path: String = "run.cover") -> CoverageInput {
    CoverageInput(path: path, mode: mode, pcs: pcs, truncated: truncated)
}

@Suite("CoverageReport counting")
struct CoverageReportModelTests {
    @Test("Two inputs merge: per file, function and line, covered / coverable and hits")
    func mergesAndCounts() throws {
        let report = try CoverageReport(
            inputs: [input([0x100, 0x105, 0x100]), input([0x100, 0x300], path: "second.cover")], symbolizer: table, imageName: "vmlinux")
        #expect(report.totals.covered == 3 && report.totals.coverable == 7 && report.totals.hits == 5)
        #expect(report.files.map(\.path) == ["fs/read.c", "include/list.h"])
        let read = report.files[0]
        #expect(read.counts.covered == 2 && read.counts.coverable == 5)
        #expect(read.functions.map(\.name) == ["ksys_read", "vfs_read"])
        #expect(read.functions[0].counts == CoverageReport.Counts(covered: 2, coverable: 4, hits: 4))
        #expect(read.functions[1].counts.covered == 0 && read.functions[1].line == 20)
        #expect(read.lines.map(\.number) == [10, 11, 12, 20])
        #expect(read.lines[1].counts == CoverageReport.Counts(covered: 1, coverable: 2, hits: 1))
        let list = report.files[1]
        #expect(list.counts.coverable == 2, "a line-0 PC still counts in its file")
        #expect(list.lines.map(\.number) == [5], "line 0 is not a line")
        #expect(report.inputs.map(\.uniquePCs) == [2, 2])
        #expect(report.warnings.isEmpty)
        #expect(abs(report.totals.percent - 300.0 / 7) < 1e-9)
    }

    @Test("Unknown PCs among known ones are left out and counted in a warning")
    func unknownPCsWarn() throws {
        let report = try CoverageReport(inputs: [input([0x100, 0x999, 0x998])], symbolizer: table, imageName: "vmlinux")
        #expect(report.totals.covered == 1)
        #expect(report.unknownPCs == [0x998, 0x999])
        #expect(report.warnings.contains { $0.contains("2 of 3 unique PCs are not coverable PCs of vmlinux") })
    }

    @Test("All PCs unknown is an error naming another build, not a 0% report")
    func allUnknownFails() {
        #expect {
            _ = try CoverageReport(inputs: [input([0x101, 0x106])], symbolizer: table, imageName: "vmlinux")
        } throws: { error in
            (error as? CoverageInputError)?.message.contains("another kernel build") == true
        }
    }

    @Test("Mixed modes, no inputs: errors; truncated and empty inputs: warnings")
    func inputProblems() throws {
        #expect(throws: CoverageInputError.self) {
            try CoverageReport(inputs: [input([0x100]), input([0x100], mode: .comparisons)], symbolizer: table, imageName: "vmlinux")
        }
        #expect(throws: CoverageInputError.self) { try CoverageReport(inputs: [], symbolizer: table, imageName: "vmlinux") }
        let report = try CoverageReport(
            inputs: [input([0x100], truncated: true), input([], path: "empty.cover")], symbolizer: table, imageName: "vmlinux")
        #expect(report.warnings.count == 2)
        #expect(report.warnings[0].contains("truncated") && report.warnings[1].contains("empty.cover: holds no PCs"))
    }

    @Test("LCOV: one record per file with FN (start, end), FNDA, FNF/FNH, DA with hits, LF/LH; lcov 1.x's FN without end")
    func lcovText() throws {
        let report = try CoverageReport(inputs: [input([0x100, 0x100, 0x300])], symbolizer: table, imageName: "vmlinux")
        let text = report.lcov(testName: "boot") { "/src/" + $0 }
        #expect(text == """
            TN:boot
            SF:/src/fs/read.c
            FN:10,12,ksys_read
            FN:20,20,vfs_read
            FNDA:2,ksys_read
            FNDA:0,vfs_read
            FNF:2
            FNH:1
            DA:10,2
            DA:11,0
            DA:12,0
            DA:20,0
            LF:4
            LH:1
            end_of_record
            TN:boot
            SF:/src/include/list.h
            FN:5,5,list_add
            FNDA:1,list_add
            FNF:1
            FNH:1
            DA:5,1
            LF:1
            LH:1
            end_of_record

            """)
        #expect(LCOVTracefileChecker.check(text).map(\.description) == [])
        let old = report.lcov(testName: "boot", version: .v1)
        #expect(old.contains("FN:10,ksys_read\nFN:20,vfs_read\n") && !old.contains("FN:10,12,"))
        #expect(report.lcov(testName: "a\nSF:/etc/passwd").hasPrefix("TN:a_SF__etc_passwd\nSF:fs/read.c\n"), "a test name cannot forge records")
    }

    @Test("JSON carries totals with percentages, unknown PCs as hex, files, functions and lines")
    func jsonDocument() throws {
        let report = try CoverageReport(inputs: [input([0x100, 0xdead])], symbolizer: table, imageName: "vm<linux>")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json(imageName: "vm<linux>").utf8)) as? [String: Any])
        #expect(object["image"] as? String == "vm<linux>")
        let totals = try #require(object["totals"] as? [String: Any])
        #expect(totals["covered"] as? Int == 1 && totals["coverable"] as? Int == 7)
        #expect(totals["percent"] as? Double == 14.29)
        #expect(object["unknownPCs"] as? [String] == ["0x000000000000dead"])
        let files = try #require(object["files"] as? [[String: Any]])
        let functions = try #require(files.first?["functions"] as? [[String: Any]])
        #expect(functions.first?["name"] as? String == "ksys_read")
    }
}

@Suite("Coverage files")
final class CoverageInputTests {
    let directory = temporaryDirectory("coverage-input")

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func file(_ text: String) throws -> String {
        let path = directory + "/\(UInt32.random(in: 0...UInt32.max))"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("rawcover: hex with or without 0x, blank lines skipped, repeats kept")
    func rawcover() throws {
        let parsed = try CoverageInput.read(path: try file("0xffffffff81000005\nffffffff8100000a\n\n0xFFFFFFFF81000005\r\n"))
        #expect(parsed.mode == .pc && !parsed.truncated)
        #expect(parsed.pcs == [0xffff_ffff_8100_0005, 0xffff_ffff_8100_000a, 0xffff_ffff_8100_0005])
    }

    @Test("A malformed rawcover line is an error naming the line")
    func malformedLine() throws {
        let path = try file("0xffffffff81000005\nnot a pc\n")
        #expect {
            try CoverageInput.read(path: path)
        } throws: { error in
            (error as? CoverageInputError)?.message.contains("line 2: \"not a pc\" is not a hex PC") == true
        }
        #expect(throws: CoverageInputError.self) { try CoverageInput.read(path: try file("0x1ffffffffffffffff\n")) }
    }

    @Test("trace JSON: pcs in PC mode, comparison PCs in CMP mode, truncated carried")
    func traceJSON() throws {
        let pc = try CoverageInput.read(path: try file(#"{"backend": "linux", "mode": "pc", "truncated": true, "pcs": ["0x0000000000000010", "0x20"]}"#))
        #expect(pc.mode == .pc && pc.truncated && pc.pcs == [0x10, 0x20])
        let cmp = try CoverageInput.read(path: try file(
            #"{"mode": "cmp", "truncated": false, "comparisons": [{"pc": "0x30", "type": 1}], "pcs": ["0x30"]}"#))
        #expect(cmp.mode == .comparisons && cmp.pcs == [0x30])
    }

    @Test("kprobe JSON: the probed functions are the denominator, the entered ones carry their hit counts")
    func functionJSON() throws {
        let parsed = try CoverageInput.read(path: try file("""
            {"backend": "kprobe", "mode": "pc", "granularity": "function",
             "probedFunctions": [{"name": "ksys_read", "pc": "0x100"}, {"name": "vfs_read", "pc": "0x200"}],
             "functions": [{"name": "ksys_read", "pc": "0x100", "hits": 7}], "skipped": [], "pcs": ["0x100"]}
            """))
        #expect(parsed.probedFunctions == [0x100: "ksys_read", 0x200: "vfs_read"])
        #expect(parsed.pcs == [0x100] && parsed.hits == [0x100: 7])
        let symbolizer = TableSymbolizer([(0x100, "fs/read_write.c", "ksys_read", 700), (0x200, "fs/read_write.c", "vfs_read", 450)])
        let report = try CoverageReport(inputs: [parsed], symbolizer: symbolizer, imageName: "vmlinux")
        #expect(report.granularity == .function)
        #expect(report.totals == CoverageReport.Counts(covered: 1, coverable: 2, hits: 7))
        #expect(report.summary(imageName: "vmlinux").contains("total: 1 of 2 probed functions (50.0%)"))
        #expect(throws: CoverageInputError.self) {
            try CoverageReport(inputs: [parsed, input([0x100])], symbolizer: symbolizer, imageName: "vmlinux")
        }
    }

    @Test("JSON that is not a kcov trace is refused with the reason")
    func otherJSON() throws {
        let cases = [
            (#"{"mode": "pc", "granularity": "function", "functions": []}"#, "without \"probedFunctions\""),
            (#"{"mode": "pc", "pcFormat": "current", "pcs": []}"#, "runsc symbolize"),
            (#"{"pcs": []}"#, "\"mode\""),
            (#"{"mode": "pc", "pcs": [12]}"#, "not a hex string"),
            (#"{"mode": "pc""#, "not valid JSON"),
        ]
        for (text, expected) in cases {
            let path = try file(text)
            #expect {
                try CoverageInput.read(path: path)
            } throws: { error in
                (error as? CoverageInputError)?.message.contains(expected) == true
            }
        }
    }

    @Test("An unreadable file is an error naming it")
    func unreadable() {
        #expect {
            try CoverageInput.read(path: directory + "/absent.cover")
        } throws: { error in
            (error as? CoverageInputError)?.description.hasPrefix(directory + "/absent.cover: cannot read") == true
        }
    }
}

@Suite("Source paths")
struct SourcePathTests {
    @Test("DWARF spellings of one file normalize to one path; the build directory is what all share")
    func normalizing() {
        #expect(normalizedPath("/src/./arch/x86/events/amd/../perf_event.h") == "/src/arch/x86/events/perf_event.h")
        #expect(normalizedPath("/src/arch/x86/include/asm//msr-trace.h") == "/src/arch/x86/include/asm/msr-trace.h")
        #expect(normalizedPath("/src/asm/trace//fpu.h") == "/src/asm/trace/fpu.h")
        #expect(normalizedPath("/src/fs/read_write.c") == "/src/fs/read_write.c")
        #expect(normalizedPath("../x.h") == "../x.h")
        #expect(normalizedPath("./a//b/../c.h") == "a/c.h")
        #expect(normalizedPath("/../a/./b/.") == "/a/b")
        #expect(commonDirectory(["/b/src/fs/a.c", "/b/src/include/linux/x.h", "relative.c"]) == "/b/src/")
        #expect(commonDirectory(["/b/src/fs/a.c", "/c/d.c"]) == "/")
        #expect(commonDirectory(["rel.c"]) == "")
        let locator = SourceLocator(sourceDirectory: "/checkout", buildDirectory: "/b/src/")
        #expect(locator.path(of: "fs/a.c") == "/checkout/fs/a.c")
        #expect(SourceLocator(sourceDirectory: nil, buildDirectory: "/b/src/").path(of: "fs/a.c") == "/b/src/fs/a.c")
    }
}
