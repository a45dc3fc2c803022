import Foundation
import KernelImage
import TestSupport
import Testing
import TraceFile

/// `trace --vm` on the test kernel, then `report` in every format, then Debian's genhtml.
@Suite("trace --vm → report → genhtml, on the test kernel", .serialized)
final class ReportPipelineTests {
    let directory = temporaryDirectory("report-pipeline")

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Parses rawcover text into PCs.
    func pcs(_ rawcover: String) -> [UInt64] {
        rawcover.split(separator: "\n").compactMap { UInt64($0.dropFirst(2), radix: 16) }
    }

    @Test("Every PC a real trace records is a coverable PC of the vmlinux (PC and CMP mode)")
    func tracedPCsAreCoverable() throws {
        let vmlinux = try testKernelImage()
        let image = try KernelImage(path: vmlinux)
        let coverable = try image.coverablePCs()
        let cover = directory + "/cat.cover"
        let traced = try runKcovctl(["trace", "--vm", "--format", "rawcover", "--output", cover, "--", "/bin/cat", "/proc/version"])
        try #require(traced.status == 0, "trace --vm failed: \(traced.errors)")
        let rawcover = try String(contentsOfFile: cover, encoding: .utf8)
        #expect(!rawcover.contains("Linux version"), "the command's output went into the trace")
        #expect(traced.errors.contains("Linux version"), "the command's output goes to standard error")
        let recorded = Set(pcs(rawcover))
        #expect(recorded.count > 1000, "only \(recorded.count) unique PCs")
        // A recorded PC follows a call to the callback, a call into a function that tail-calls it,
        // or an indirect call (into such a function). Anything else is a scanner bug.
        let afterIndirect = recorded.filter { !coverable.pc.contains($0) && image.followsIndirectCall($0) }
        let stray = recorded.filter { !coverable.pc.contains($0) && !image.followsIndirectCall($0) }.sorted()
        #expect(stray.isEmpty, "\(stray.count) recorded PCs follow no trace_pc call: first \(stray.prefix(3).map { String($0, radix: 16) })")
        #expect(recorded.count { coverable.pc.tailCallReturns.contains($0) } > 0, "gcc's tail calls to the callback show in every trace")
        #expect(afterIndirect.count < recorded.count / 100)

        let comparisons = directory + "/cat-cmp.json"
        let cmp = try runKcovctl(["trace", "--vm", "--mode", "cmp", "--format", "json", "--output", comparisons, "--", "/bin/cat", "/proc/version"])
        try #require(cmp.status == 0, "trace --vm --mode cmp failed: \(cmp.errors)")
        let sites = Set(try TraceFile.read(path: comparisons).comparisons.map(\.pc))
        #expect(sites.count > 100)
        let strayComparisons = sites.filter { !coverable.comparisons.contains($0) }
        #expect(strayComparisons.isEmpty, "\(strayComparisons.count) CMP records follow no comparison callback call")

        let cmpReport = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", comparisons])
        try #require(cmpReport.status == 0, "report of the CMP trace failed: \(cmpReport.errors)")
        let cmpTotals = try #require((try JSONSerialization.jsonObject(with: Data(cmpReport.output.utf8)) as? [String: Any])?["totals"] as? [String: Any])
        #expect(cmpTotals["covered"] as? Int == sites.count && cmpTotals["coverable"] as? Int == coverable.comparisons.all.count)

        // The report over that trace: every PC counted, none unknown, and genhtml takes the LCOV.
        let json = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", cover])
        try #require(json.status == 0, "report failed: \(json.errors)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let totals = try #require(document["totals"] as? [String: Any])
        #expect(totals["covered"] as? Int == recorded.count - afterIndirect.count)
        #expect(totals["coverable"] as? Int == coverable.pc.all.count)
        #expect((document["unknownPCs"] as? [String])?.isEmpty == true)
        #expect(document["uncountedPCs"] as? Int == afterIndirect.count)
        let files = try #require(document["files"] as? [[String: Any]])
        let readWrite = try #require(files.first { $0["path"] as? String == "fs/read_write.c" }, "paths are relative to the build tree")
        let functions = try #require(readWrite["functions"] as? [[String: Any]])
        let ksysRead = try #require(functions.first { $0["name"] as? String == "ksys_read" })
        #expect((ksysRead["counts"] as? [String: Any])?["covered"] as? Int ?? 0 > 0, "cat's read() ran ksys_read")

        let lcov = directory + "/cat.info"
        let written = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--test-name", "cat", "--output", lcov, cover])
        try #require(written.status == 0, "report --format lcov failed: \(written.errors)")
        // lcov 2.x's rules hold for a real trace (the one issue 15 saw refused); Debian's genhtml 1.16 reads lcov 1's form.
        let violations = LCOVTracefileChecker.check(try String(contentsOfFile: lcov, encoding: .utf8))
        #expect(violations.isEmpty, "\(violations.count) violations: \(violations.prefix(10).map(\.description))")
        let lcovOne = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--lcov-version", "1", "--test-name", "cat", "--output", lcov, cover])
        try #require(lcovOne.status == 0, "report --format lcov --lcov-version 1 failed: \(lcovOne.errors)")
        let genhtml = try runProgram(["/usr/bin/genhtml", "--output-directory", directory + "/html", "--quiet", lcov])
        #expect(genhtml.status == 0, "genhtml failed: \(genhtml.errors)")
        #expect(!(genhtml.output + genhtml.errors).localizedCaseInsensitiveContains("warning"), "genhtml warned: \(genhtml.errors)")
        #expect(FileManager.default.fileExists(atPath: directory + "/html/index.html"))
        let index = try String(contentsOfFile: directory + "/html/index.html", encoding: .utf8)
        #expect(index.contains("cat"), "genhtml's index names the test")

        // --source-dir moves every SF: path under the given tree, relative paths kept.
        let moved = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--source-dir", "/elsewhere/linux", cover])
        let sourceFiles = moved.output.split(separator: "\n").filter { $0.hasPrefix("SF:") }
        #expect(!sourceFiles.isEmpty && sourceFiles.allSatisfy { $0.hasPrefix("SF:/elsewhere/linux/") })
        #expect(sourceFiles.contains("SF:/elsewhere/linux/fs/read_write.c"))

        try checkHTMLTree(vmlinux: vmlinux, cover: cover)

        // Subsystems from the tree's own MAINTAINERS: THE REST holds every file, VFS has coverage.
        let bySubsystem = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", "--group-by", "maintainers", cover])
        try #require(bySubsystem.status == 0, "\(bySubsystem.errors)")
        let grouped = try #require(try JSONSerialization.jsonObject(with: Data(bySubsystem.output.utf8)) as? [String: Any])
        let groups = try #require(grouped["groups"] as? [[String: Any]])
        let rest = try #require(groups.first { $0["name"] as? String == "THE REST" })
        #expect((rest["paths"] as? [String])?.count == files.count)
        let vfs = try #require(groups.first { $0["name"] as? String == "FILESYSTEMS (VFS and infrastructure)" })
        #expect(((vfs["coverage"] as? [String: Any])?["pcs"] as? [String: Any])?["covered"] as? Int ?? 0 > 100)
        #expect((vfs["paths"] as? [String])?.contains("fs/read_write.c") == true)

        try checkExports(vmlinux: vmlinux, cover: cover, files: files, totals: totals, coverable: coverable.pc.all)
    }

    /// Cobertura through lxml's DTD check and pycobertura, syzkaller's JSONL and CSVs through
    /// Python's readers, all against the JSON report of the same trace.
    func checkExports(vmlinux: String, cover: String, files: [[String: Any]], totals: [String: Any], coverable: [UInt64]) throws {
        let lines = files.map { $0["lines"] as? [[String: Any]] ?? [] }
        let coveredLines = lines.joined().count { (($0["counts"] as? [String: Any])?["covered"] as? Int ?? 0) > 0 }
        let xml = directory + "/cat.cobertura.xml"
        let cobertura = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "cobertura", "--output", xml, cover])
        try #require(cobertura.status == 0, "\(cobertura.errors)")
        #expect(try validateCobertura(xml) == "valid")
        let consumer = try pycoberturaTotals(xml)
        #expect(consumer.statements == lines.joined().count && consumer.hits == coveredLines && consumer.files == files.count)
        let readWrite = try #require(files.first { $0["path"] as? String == "fs/read_write.c" }?["lines"] as? [[String: Any]])
        #expect(consumer.perFile["fs/read_write.c"]?.first == readWrite.count)

        let jsonl = directory + "/cat.jsonl"
        let syz = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "syz-jsonl", "--output", jsonl, cover])
        try #require(syz.status == 0, "\(syz.errors)")
        let expected = directory + "/coverable.txt"
        try coverable.map { String($0) }.joined(separator: "\n").write(toFile: expected, atomically: true, encoding: .utf8)
        let check = try python(
            """
            import sys, json
            keys = ['ec', 'el', 'file_path', 'func_name', 'hit_count', 'inline', 'pc', 'sc', 'sl']
            pcs, outer, hit, bad = set(), {}, set(), 0
            for line in open(sys.argv[1]):
                o = json.loads(line)
                bad += sorted(o) != keys or o['sc'] != 0 or o['ec'] != -1 or o['sl'] != o['el']
                pcs.add(o['pc'])
                if not o['inline']: outer[o['pc']] = outer.get(o['pc'], 0) + 1
                if o['hit_count'] > 0: hit.add(o['pc'])
            coverable = set(int(l) for l in open(sys.argv[2]))
            print(json.dumps({"bad": bad, "pcs": len(pcs), "oneOuter": all(v == 1 for v in outer.values()) and len(outer) == len(pcs),
                "callSites": pcs == set(pc - 5 for pc in coverable), "hit": len(hit)}))
            """, [jsonl, expected])
        let result = try #require(try JSONSerialization.jsonObject(with: Data(check.output.utf8)) as? [String: Any], "\(check.errors)")
        #expect(result["bad"] as? Int == 0 && result["oneOuter"] as? Bool == true)
        #expect(result["pcs"] as? Int == coverable.count && result["callSites"] as? Bool == true, "pc is each coverable PC's call site")
        #expect(result["hit"] as? Int == totals["covered"] as? Int)

        for (format, column, total) in [("syz-func-csv", "Covered PCs", -1), ("syz-file-csv", "CoveredPCs", totals["covered"] as? Int ?? 0)] {
            let csv = directory + "/cat." + format
            let run = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", format, "--output", csv, cover])
            try #require(run.status == 0, "\(run.errors)")
            let sum = try python("import sys, csv\nprint(sum(int(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1]))))", [csv, column])
            let functionsCovered = files.flatMap { $0["functions"] as? [[String: Any]] ?? [] }.reduce(0) { $0 + (($1["counts"] as? [String: Any])?["covered"] as? Int ?? 0) }
            #expect(Int(sum.output.trimmingCharacters(in: .whitespacesAndNewlines)) == (total >= 0 ? total : functionsCovered), "\(format): \(sum.errors)")
        }
    }

    /// The HTML tree of a real trace: bounded pages whose links resolve, the source shown, and
    /// headless Chromium renders the top page and a source page, and sorts a directory's table.
    func checkHTMLTree(vmlinux: String, cover: String) throws {
        let tree = directory + "/html-tree"
        let html = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "html", "--output", tree, cover])
        try #require(html.status == 0, "\(html.errors)")
        let files = try #require(FileManager.default.enumerator(atPath: tree)?.allObjects as? [String]).filter { $0.hasSuffix(".html") }
        var sizes: [String: Int] = [:]
        for file in files { sizes[file] = (try FileManager.default.attributesOfItem(atPath: tree + "/" + file)[.size] as? Int) ?? 0 }
        let largest = try #require(sizes.max { $0.value < $1.value })
        #expect(largest.value < 1_500_000, "the largest page, \(largest.key), is \(largest.value) bytes")
        #expect(files.count > 1_000, "one page per file with coverable PCs")
        // Every directory index and one source page: their links resolve (regexes over all 100 MB would take minutes).
        var checked: [String: String] = [:]
        for file in files where file.hasSuffix("index.html") || file == "fs/read_write.c.html" {
            checked[file] = try String(contentsOfFile: tree + "/" + file, encoding: .utf8)
        }
        var present = checked
        for file in files where present[file] == nil { present[file] = "" }
        present["kcov.css"] = ""
        present["kcov.js"] = ""
        #expect(brokenLinks(present) == [])
        let readWrite = checked["fs/read_write.c.html"] ?? ""
        #expect(readWrite.contains("<code>ksys_read</code>") && readWrite.contains("SYSCALL_DEFINE3(read"), "the source of a covered file is shown")
        #expect(readWrite.contains("class=\"l c\"") && readWrite.contains("class=\"l u\"") && readWrite.contains("class=l>"))
        let top = checked["index.html"] ?? ""
        #expect(rowNames(top).contains("fs/") && rowNames(top).contains("kernel/"))

        try renderInChromium(tree + "/index.html", screenshot: directory + "/top.png")
        let frame = directory + "/frame.html"
        try """
            <!DOCTYPE html><html><body style="margin:0"><iframe src="html-tree/fs/read_write.c.html#L700" style="border:0;width:1280px;height:1000px"></iframe></body></html>
            """.write(toFile: frame, atomically: true, encoding: .utf8)
        try renderInChromium(frame, screenshot: directory + "/read_write.png")
        try sortInChromium(tree: "html-tree")
    }

    let chromiumFlags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--allow-file-access-from-files"]

    /// Headless Chromium renders `page` to a screenshot that is not blank.
    func renderInChromium(_ page: String, screenshot: String) throws {
        let browser = "/usr/bin/chromium"
        try #require(FileManager.default.isExecutableFile(atPath: browser), "chromium is missing: run Scripts/setup.sh")
        let shot = try runProgram([browser] + chromiumFlags + ["--screenshot=" + screenshot, "file://" + page])
        #expect(shot.status == 0, "\(shot.errors)")
        let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
        #expect(png.starts(with: [0x89, 0x50, 0x4e, 0x47]), "not a PNG")
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }
        let height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(width == 1280 && height == 1000)
        #expect(png.count > 20_000, "a \(png.count)-byte screenshot of \(page) is a blank page")
    }

    /// Clicks the column headers of fs/index.html in Chromium (through a page that loads it in a
    /// frame) and reads the rows back: by coverage ascending, then descending, then by name.
    func sortInChromium(tree: String) throws {
        let harness = directory + "/sort.html"
        try """
            <!DOCTYPE html><html><body><pre id=out>waiting</pre>
            <iframe id=f src="\(tree)/fs/index.html"></iframe>
            <script>
            document.getElementById("f").onload = function () {
              var d = this.contentDocument, th = d.querySelectorAll("table.sortable th");
              function keys(column) { return Array.prototype.map.call(d.querySelectorAll("table.sortable tbody tr"), function (r) { return r.cells[column].dataset.v; }); }
              var result = {before: keys(0)};
              th[1].click(); result.ascending = keys(1); result.ascendingNames = keys(0);
              th[1].click(); result.descending = keys(1);
              th[0].click(); result.byName = keys(0);
              document.getElementById("out").textContent = JSON.stringify(result);
            };
            </script></body></html>
            """.write(toFile: harness, atomically: true, encoding: .utf8)
        let dom = try runProgram(["/usr/bin/chromium"] + chromiumFlags + ["--virtual-time-budget=5000", "--dump-dom", "file://" + harness])
        #expect(dom.status == 0, "\(dom.errors)")
        let json = try #require(dom.output.firstMatch(of: /<pre id="out">(.*)<\/pre>/).map { String($0.1).replacingOccurrences(of: "&quot;", with: "\"") })
        let result = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [String]], "\(json.prefix(200))")
        let ascending = (result["ascending"] ?? []).compactMap { Int($0) }
        let descending = (result["descending"] ?? []).compactMap { Int($0) }
        #expect(ascending.count > 10 && ascending == ascending.sorted(), "\(ascending)")
        #expect(descending == ascending.sorted(by: >))
        #expect(Set(result["ascendingNames"] ?? []) == Set(result["before"] ?? []) && result["ascendingNames"] != result["before"], "sorting moved the rows")
        #expect(Set(result["byName"] ?? []) == Set(result["before"] ?? []))
        #expect((result["byName"] ?? []).first == (result["before"] ?? []).sorted { $0.lowercased() < $1.lowercased() }.first)
    }

    @Test("A kprobe trace in the VM reports per function: probed functions are the denominator, and genhtml takes it")
    func functionLevelReport() throws {
        let vmlinux = try testKernelImage()
        let trace = directory + "/kprobe.json"
        let traced = try runKcovctl([
            "trace", "--vm", "--backend", "kprobe", "--functions", "ksys_read,ksys_write,vfs_*", "--format", "json", "--output", trace,
            "--", "/bin/cat", "/proc/version",
        ])
        try #require(traced.status == 0, "trace --vm --backend kprobe failed: \(traced.errors)")
        let probed = try #require(try TraceFile.read(path: trace).probedFunctions?.count)
        let json = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", trace])
        try #require(json.status == 0, "\(json.errors)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let totals = try #require(document["totals"] as? [String: Any])
        #expect(totals["coverable"] as? Int == probed)
        #expect((totals["covered"] as? Int ?? 0) >= 2, "cat reads and writes")
        let files = try #require(document["files"] as? [[String: Any]])
        let functions = files.filter { $0["path"] as? String == "fs/read_write.c" }.flatMap { $0["functions"] as? [[String: Any]] ?? [] }
        let ksysRead = try #require(functions.first { $0["name"] as? String == "ksys_read" }, "ksys_read is symbolized to fs/read_write.c")
        #expect((ksysRead["counts"] as? [String: Any])?["covered"] as? Int == 1)
        #expect(ksysRead["line"] as? Int ?? 0 > 0)

        let lcov = directory + "/kprobe.info"
        let written = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--output", lcov, trace])
        try #require(written.status == 0)
        #expect(LCOVTracefileChecker.check(try String(contentsOfFile: lcov, encoding: .utf8)).map(\.description) == [])
        _ = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--lcov-version", "1", "--output", lcov, trace])
        let genhtml = try runProgram(["/usr/bin/genhtml", "--output-directory", directory + "/kprobe-html", "--quiet", lcov])
        #expect(genhtml.status == 0 && !genhtml.errors.localizedCaseInsensitiveContains("warning"), "genhtml: \(genhtml.errors)")
    }

    @Test("PCs of another build: an error when none is coverable, a counted warning when some are")
    func otherBuild() throws {
        let vmlinux = try testKernelImage()
        let coverable = try KernelImage(path: vmlinux).coverablePCs()
        let shifted = directory + "/shifted.cover"
        try coverable.pc.callSites.prefix(500).map { "0x" + String($0 + 1, radix: 16) }.joined(separator: "\n").write(toFile: shifted, atomically: true, encoding: .utf8)
        let refused = try runKcovctl(["report", "--vmlinux", vmlinux, shifted])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("another kernel build"), "\(refused.errors)")

        let mixed = directory + "/mixed.cover"
        try (coverable.pc.callSites.prefix(300).map { "0x" + String($0, radix: 16) } + ["0x1", "0x2"]).joined(separator: "\n")
            .write(toFile: mixed, atomically: true, encoding: .utf8)
        let warned = try runKcovctl(["report", "--vmlinux", vmlinux, mixed])
        #expect(warned.status == 0)
        #expect(warned.errors.contains("warning: 2 of 302 unique PCs are not coverable PCs"), "\(warned.errors)")
        #expect(warned.output.contains("total: 300 of \(coverable.pc.all.count) PCs"), "\(warned.output.prefix(400))")
    }

    @Test("A stripped vmlinux, a bzImage and a missing coverage file get errors saying what to pass")
    func badImages() throws {
        let vmlinux = try testKernelImage()
        let cover = directory + "/one.cover"
        let first = try KernelImage(path: vmlinux).coverablePCs().pc.callSites[0]
        try "0x\(String(first, radix: 16))\n".write(toFile: cover, atomically: true, encoding: .utf8)
        let noDebug = directory + "/vmlinux.nodebug"
        _ = try runTool("/usr/bin/objcopy", ["--strip-debug", vmlinux, noDebug])
        let withoutDWARF = try runKcovctl(["report", "--vmlinux", noDebug, cover])
        #expect(withoutDWARF.status == 1)
        #expect(withoutDWARF.errors.contains("DWARF") || withoutDWARF.errors.contains("debug"), "\(withoutDWARF.errors)")

        let bzImage = vmlinux.replacingOccurrences(of: "/vmlinux", with: "/bzImage")
        let notELF = try runKcovctl(["report", "--vmlinux", bzImage, cover])
        #expect(notELF.status == 1 && notELF.errors.contains("not an ELF"), "\(notELF.errors)")

        let missing = try runKcovctl(["report", "--vmlinux", vmlinux, directory + "/absent.cover"])
        #expect(missing.status == 1 && missing.errors.contains("absent.cover: cannot read"), "\(missing.errors)")

        let usage = try runKcovctl(["report", "--vmlinux", vmlinux])
        #expect(usage.status == 64)
    }
}
