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

        let page = directory + "/cat.html"
        let html = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "html", "--output", page, cover])
        try #require(html.status == 0)
        let text = try String(contentsOfFile: page, encoding: .utf8)
        #expect(text.contains("fs/read_write.c") && text.contains("<code>ksys_read</code>"))
        #expect(text.contains("SYSCALL_DEFINE3(read"), "the source of covered files is shown")
        try renderInChromium(page)
    }

    /// Headless Chromium parses the page (its DOM has the files table) and renders a screenshot.
    func renderInChromium(_ page: String) throws {
        let browser = "/usr/bin/chromium"
        try #require(FileManager.default.isExecutableFile(atPath: browser), "chromium is missing: run Scripts/setup.sh")
        let flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"]
        let dom = try runProgram([browser] + flags + ["--dump-dom", "file://" + page])
        #expect(dom.status == 0)
        #expect(dom.output.contains("<h2>Files</h2>") && dom.output.contains("<tbody>"), "Chromium did not build the page's tables")
        let screenshot = directory + "/cat.png"
        let shot = try runProgram([browser] + flags + ["--screenshot=" + screenshot, "file://" + page])
        #expect(shot.status == 0, "\(shot.errors)")
        let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
        #expect(png.starts(with: [0x89, 0x50, 0x4e, 0x47]), "not a PNG")
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }
        let height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(width == 1280 && height == 1000)
        #expect(png.count > 20_000, "a \(png.count)-byte screenshot is a blank page")
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
