import CoverageAPI
@testable import CoverageReport
import Foundation
import TestSupport
import Testing

/// Cobertura's DTD (coverage-04.dtd, from the Cobertura repository), kept as a fixture.
let coberturaDTD = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/coverage-04.dtd").path

/// Runs a Python program with `arguments` as `sys.argv[1:]`; its standard output.
func python(_ program: String, _ arguments: [String]) throws -> ProgramResult {
    try runProgram(["/usr/bin/env", "python3", "-c", program] + arguments)
}

/// lxml's validation of the XML at `path` against Cobertura's DTD: `valid`, or the first error.
func validateCobertura(_ path: String) throws -> String {
    let run = try python(
        """
        import sys
        from lxml import etree
        dtd = etree.DTD(sys.argv[1])
        print("valid" if dtd.validate(etree.parse(sys.argv[2])) else dtd.error_log.filter_from_errors()[0])
        """, [coberturaDTD, path])
    #expect(run.status == 0, "lxml failed (installed by Scripts/setup.sh?): \(run.errors)")
    return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// What pycobertura, a real Cobertura consumer, reads from the XML at `path`: line rate,
/// statements, hits, files, and per file its statements and hits.
func pycoberturaTotals(_ path: String) throws -> (rate: Double, statements: Int, hits: Int, files: Int, perFile: [String: [Int]]) {
    let run = try python(
        """
        import sys, json
        from pycobertura import Cobertura
        report = Cobertura(sys.argv[1])
        print(json.dumps({"rate": report.line_rate(), "statements": report.total_statements(), "hits": report.total_hits(), "files": len(report.files()),
            "perFile": {f: [report.total_statements(f), report.total_hits(f)] for f in report.files()}}))
        """, [path])
    guard run.status == 0, let object = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any] else {
        Issue.record("pycobertura could not read \(path) (installed by Scripts/setup.sh?): \(run.errors)")
        throw CancellationError()
    }
    return (
        object["rate"] as? Double ?? -1, object["statements"] as? Int ?? -1, object["hits"] as? Int ?? -1, object["files"] as? Int ?? -1,
        object["perFile"] as? [String: [Int]] ?? [:]
    )
}

@Suite("Exports: Cobertura XML, syzkaller's JSONL and CSVs", .serialized)
final class ExportTests {
    let directory = temporaryDirectory("exports")
    let report: CoverageReport

    init() throws {
        let symbolizer = TableSymbolizer([
            (0x100, "fs/read.c", "ksys_read", 10), (0x105, "fs/read.c", "ksys_read", 11), (0x10a, "fs/read.c", "ksys_read", 11),
            (0x110, "fs/read.c", "ksys_read", 12), (0x200, "fs/read.c", "vfs_read", 20),
            (0x300, "include/list&\"x\".h", "list_add", 5), (0x400, "init.c", "start", 1),
        ])
        report = try CoverageReport(
            inputs: [input([0x100, 0x105, 0x105]), input([0x105, 0x300], path: "second.cover")], symbolizer: symbolizer, imageName: "vmlinux")
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    @Test("Cobertura: packages by directory, classes by file, methods with their lines; valid by the DTD; pycobertura reads the same totals")
    func cobertura() throws {
        let xml = report.cobertura(sourceDirectory: "/src/linux", timestamp: 1_700_000_000_000)
        #expect(xml.contains("<coverage line-rate=\"0.5000\" branch-rate=\"0\" lines-covered=\"3\" lines-valid=\"6\" branches-covered=\"0\" branches-valid=\"0\" complexity=\"0\" version=\"kcovctl\" timestamp=\"1700000000000\">"))
        #expect(xml.contains("<sources><source>/src/linux</source></sources>"))
        #expect(xml.contains("<package name=\".\" line-rate=\"0.0000\"") && xml.contains("<package name=\"fs\" line-rate=\"0.5000\""))
        #expect(xml.contains("<class name=\"list&amp;&quot;x&quot;.h\" filename=\"include/list&amp;&quot;x&quot;.h\" line-rate=\"1.0000\""))
        #expect(xml.contains("<method name=\"ksys_read\" signature=\"\" line-rate=\"0.6667\" branch-rate=\"0\" complexity=\"0\">\n<lines>\n<line number=\"10\" hits=\"1\" branch=\"false\"/>\n<line number=\"11\" hits=\"3\" branch=\"false\"/>\n<line number=\"12\" hits=\"0\" branch=\"false\"/>\n</lines>"))
        let path = directory + "/small.xml"
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try validateCobertura(path) == "valid")
        let consumers = try pycoberturaTotals(path)
        #expect(consumers.rate == 0.5 && consumers.statements == 6 && consumers.hits == 3 && consumers.files == 3)
        #expect(consumers.perFile["fs/read.c"] == [4, 2])

        // The validation is real: a class without its methods, and a coverage without its rate, are refused.
        let broken = directory + "/broken.xml"
        try xml.replacingOccurrences(of: "<methods>\n<method name=\"start\"", with: "<method name=\"start\"")
            .replacingOccurrences(of: "</method>\n</methods>\n<lines>\n<line number=\"1\"", with: "</method>\n<lines>\n<line number=\"1\"")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try validateCobertura(broken).contains("methods"))
        try xml.replacingOccurrences(of: "<coverage line-rate=\"0.5000\" ", with: "<coverage ").write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try validateCobertura(broken).contains("line-rate"))
    }

    @Test("syzkaller JSONL: one object a frame, innermost first, the call site as pc, hit_count as the number of inputs")
    func syzkallerJSONL() throws {
        let points = [
            CoverageReport.SyzkallerPoint(
                pc: 0x105, callSite: 0x100,
                frames: [SourceFrame(function: "inner\"q", file: "include/x.h", line: 7), SourceFrame(function: "ksys_read", file: "fs/read.c", line: 11)]),
            CoverageReport.SyzkallerPoint(pc: 0x200, callSite: 0x1fb, frames: [SourceFrame(function: "vfs_read", file: "fs/read.c", line: 20)]),
            CoverageReport.SyzkallerPoint(
                pc: 0xffff_ffff_8100_0005, callSite: 0xffff_ffff_8100_0000, frames: [SourceFrame(function: nil, file: "??", line: 0)]),
        ]
        let text = report.syzkallerJSONL(points: points)
        #expect(text == """
            {"file_path":"include/x.h","func_name":"inner\\"q","sl":7,"sc":0,"el":7,"ec":-1,"hit_count":2,"inline":true,"pc":256}
            {"file_path":"fs/read.c","func_name":"ksys_read","sl":11,"sc":0,"el":11,"ec":-1,"hit_count":2,"inline":false,"pc":256}
            {"file_path":"fs/read.c","func_name":"vfs_read","sl":20,"sc":0,"el":20,"ec":-1,"hit_count":0,"inline":false,"pc":507}
            {"file_path":"??","func_name":"","sl":0,"sc":0,"el":0,"ec":-1,"hit_count":0,"inline":false,"pc":18446744071578845184}

            """)
        // Python's json keeps integers exact: the kernel address survives, as Go's decoder reads it.
        let parsed = try python("import sys, json\nfor l in open(sys.argv[1]): o = json.loads(l); print(sorted(o), o['pc'])", [try write(text, "cover.jsonl")])
        #expect(parsed.output.contains("['ec', 'el', 'file_path', 'func_name', 'hit_count', 'inline', 'pc', 'sc', 'sl'] 18446744071578845184"))
    }

    @Test("syzkaller CSVs: function and file rows with syzkaller's headers, TotalLines from the source, quoted fields read back by a CSV reader")
    func syzkallerCSV() throws {
        let functions = report.syzkallerFunctionCSV()
        #expect(functions == """
            Module,Filename,Function,Covered PCs,Total PCs
            ,fs/read.c,ksys_read,2,4
            ,fs/read.c,vfs_read,0,1
            ,"include/list&""x"".h",list_add,1,1
            ,init.c,start,0,1

            """)
        let (files, warnings) = report.syzkallerFileCSV { $0 == "fs/read.c" ? 30 : nil }
        #expect(files.split(separator: "\n")[1] == ",fs/read.c,2,30,2,5,2,2,5,4")
        #expect(warnings == ["the source of 2 files was not found (first: include/list&\"x\".h): their TotalLines counts only lines with coverable PCs; pass --source-dir"])
        let read = try python("import sys, csv\nprint([r[1] for r in csv.reader(open(sys.argv[1]))])", [try write(functions, "functions.csv")])
        #expect(read.output.contains("['Filename', 'fs/read.c', 'fs/read.c', 'include/list&\"x\".h', 'init.c']"), "\(read.output)")
    }

    func write(_ text: String, _ name: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
