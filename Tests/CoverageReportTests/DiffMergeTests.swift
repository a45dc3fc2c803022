import CoverageAPI
@testable import CoverageReport
import Foundation
import KernelImage
import KernelSymbolizer
import TestSupport
import Testing
import TraceFile

@Suite("CoverageDiff on a table")
struct CoverageDiffModelTests {
    @Test("PCs only one side covers, per file and function; newly and no longer entered functions; hit counts make no difference")
    func diffCounts() throws {
        let base = [input([0x100, 0x100, 0x100, 0x200, 0x300])]
        let new = [input([0x100, 0x105, 0x10a, 0x300, 0x305], path: "new.cover")]
        let diff = try CoverageDiff(base: base, new: new, symbolizer: table, imageName: "vmlinux")
        #expect(diff.onlyNew == 3 && diff.onlyBase == 1)
        #expect(diff.base.totals.covered == 3 && diff.new.totals.covered == 5)
        #expect(diff.files.map(\.name) == ["fs/read.c", "include/list.h"])
        let read = diff.files[0]
        #expect(read.onlyNew == 2 && read.onlyBase == 1)
        #expect(read.functions.map(\.name) == ["ksys_read", "vfs_read"])
        #expect(read.functions[0].onlyNew == 2 && read.functions[0].onlyBase == 0 && !read.functions[0].isNewlyEntered)
        #expect(read.functions[1].onlyBase == 1 && read.functions[1].isNoLongerEntered)
        #expect(diff.files[1].onlyNew == 1 && diff.files[1].functions.isEmpty, "a line-0 PC counts in its file, in no function")

        let same = try CoverageDiff(base: base, new: [input([0x300, 0x200, 0x100])], symbolizer: table, imageName: "vmlinux")
        #expect(same.onlyNew == 0 && same.onlyBase == 0 && same.files.isEmpty)

        let text = diff.summary(baseName: "run.cover", newName: "new.cover")
        #expect(text.contains("new covers 3 PCs base does not (2 files, 1 functions, 0 newly entered); base covers 1 PCs new does not (1 files, 1 functions, 1 no longer entered)"))
        #expect(text.contains("       +2      -1  fs/read.c\n         +2      -0  ksys_read:10\n         +0      -1  vfs_read:20  (no longer entered)\n"), "\(text)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(diff.json(imageName: "vmlinux").utf8)) as? [String: Any])
        #expect(json["onlyNew"] as? Int == 3 && (json["new"] as? [String: Any])?["paths"] as? [String] == ["new.cover"])
        let page = diff.html(imageName: "vm<linux>", baseName: "run.cover", newName: "new.cover")
        #expect(page.contains("vm&lt;linux&gt;") && page.contains("<code>vfs_read</code> <b class=u>gone</b>") && page.contains("table.sortable"))
    }

    @Test("Modes and kprobe traces that cannot be compared are refused")
    func refusals() {
        #expect(throws: CoverageInputError.self) {
            try CoverageDiff(base: [input([0x100])], new: [input([0x100], mode: .comparisons)], symbolizer: table, imageName: "vmlinux")
        }
        let kprobe = CoverageInput(path: "k.json", mode: .pc, pcs: [0x100], truncated: false, probedFunctions: [0x100: "ksys_read"], hits: [0x100: 1])
        #expect {
            try CoverageDiff(base: [input([0x100])], new: [kprobe], symbolizer: table, imageName: "vmlinux")
        } throws: { error in
            (error as? CoverageInputError)?.message.contains("function-level (kprobe)") == true
        }
    }
}

/// `kcovctl merge` and `kcovctl diff` on a small instrumented program.
@Suite("merge and diff through kcovctl", .serialized)
final class MergeDiffCommandTests {
    let directory = temporaryDirectory("merge-diff")
    let program: String
    let sites: [UInt64]

    init() throws {
        let source = directory + "/small.c"
        try """
            __attribute__((noinline)) int pick(int x) { if (x > 3) return x * 2; if (x > 1) return x - 1; return x + 1; }
            __attribute__((noinline)) int other(int x) { if (x & 1) return x; return -x; }
            int main(int argc, char **argv) { (void)argv; return pick(argc) + other(argc); }
            """.write(toFile: source, atomically: true, encoding: .utf8)
        try "void __sanitizer_cov_trace_pc(void) {}\n".write(toFile: directory + "/stub.c", atomically: true, encoding: .utf8)
        program = directory + "/small"
        _ = try runTool("/usr/bin/gcc", ["-O1", "-g", "-c", "-fsanitize-coverage=trace-pc", "-o", program + ".o", source])
        _ = try runTool("/usr/bin/gcc", ["-O1", "-g", "-o", program, directory + "/stub.c", program + ".o"])
        sites = try KernelImage(path: program).coverablePCs().pc.callSites
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func rawcover(_ pcs: [UInt64], _ name: String) throws -> String {
        let path = directory + "/" + name
        try pcs.map { "0x" + String($0, radix: 16) }.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("merge: traces and set files in every order give the same bytes, the union of their PCs")
    func mergeIsOrderIndependent() throws {
        try #require(sites.count >= 6, "\(sites)")
        let first = try rawcover([sites[0], sites[1], sites[1]], "a.cover")
        let trace = directory + "/b.json"
        try TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [.init(truncated: false, pcs: [sites[1], sites[2]]), .init(truncated: false, pcs: [sites[3]])])
            .jsonData().write(to: URL(fileURLWithPath: trace))
        let setC = directory + "/c.set"
        let signal = try runKcovctl(["merge", "--output", setC, try rawcover([sites[4], sites[0]], "c.cover")])
        try #require(signal.status == 0, "\(signal.errors)")
        let setD = directory + "/d.set"
        let named = try runKcovctl(["merge", "--output", setD, "--kernel-build", "6.12.117 #1", try rawcover([sites[5]], "d.cover")])
        try #require(named.status == 0, "\(named.errors)")

        let inputs = [first, trace, setC, setD]
        var outputs = Set<Data>()
        for (index, order) in permutations(inputs).enumerated() {
            let merged = directory + "/merged-\(index).set"
            let run = try runKcovctl(["merge", "--output", merged] + order)
            try #require(run.status == 0, "\(order): \(run.errors)")
            outputs.insert(try Data(contentsOf: URL(fileURLWithPath: merged)))
        }
        #expect(outputs.count == 1, "24 orders gave \(outputs.count) different files")
        let printed = try runKcovctl(["merge", directory + "/merged-0.set"])
        #expect(printed.output.split(separator: "\n").map { UInt64($0.dropFirst(2), radix: 16) ?? 0 } == Array(sites.prefix(6)).sorted())
        // The merged set reads as a report input: six PCs covered.
        let report = try runKcovctl(["report", "--vmlinux", program, directory + "/merged-0.set"])
        #expect(report.status == 0 && report.output.contains("total: 6 of \(sites.count) PCs"), "\(report.output)\(report.errors)")
        // The set remembers the one kernel build named.
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/merged-0.set")).range(of: Data("6.12.117 #1".utf8)) != nil)
    }

    @Test("report --covered-by: the whole-run records that hold a PC, or a PC of a source line, and nothing else")
    func coveredByNamesTheRecords() throws {
        try #require(sites.count >= 3, "\(sites)")
        let run = directory + "/run.json"
        try TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [
            .init(pid: 10, tid: 10, executable: "/bin/sh", order: 1, pcs: [sites[0], sites[1]]),
            .init(pid: 11, tid: 11, executable: "/usr/bin/a", order: 2, pcs: [sites[1], sites[1]]),
            .init(pid: 12, tid: 13, executable: "/usr/bin/b", order: 3, pcs: [sites[2]]),
        ]).jsonData().write(to: URL(fileURLWithPath: run))
        let byPC = try runKcovctl(["report", "--vmlinux", program, "--covered-by", "0x" + String(sites[1], radix: 16), run])
        #expect(byPC.status == 0, "\(byPC.errors)")
        let lines = byPC.output.split(separator: "\n")
        #expect(lines.count == 3 && lines[0].hasSuffix("task 1 pid 10 tid 10 /bin/sh: 1 of 1 PCs") && lines[1].hasSuffix("task 2 pid 11 tid 11 /usr/bin/a: 1 of 1 PCs"), "\(byPC.output)")
        #expect(lines.last == "2 records covered 0x\(String(sites[1], radix: 16)) (1 coverable PCs there)")

        // By source line: every record holding a PC whose call site is on that line of small.c.
        let map = try KernelCoverageMap(image: KernelImage(path: program), symbolizer: KernelSymbolizer(vmlinux: program), mode: .pc)
        let source = try #require(map.sourceRange(of: sites[2]))
        let atLine = Set(map.coverable.filter { $0.source.file == source.file && $0.source.lines.contains(source.startLine) }.map(\.pc))
        let byLine = try runKcovctl(["report", "--vmlinux", program, "--covered-by", "small.c:\(source.startLine)", run])
        #expect(byLine.status == 0, "\(byLine.errors)")
        let expected = [(1, [sites[0], sites[1]]), (2, [sites[1]]), (3, [sites[2]])].filter { !atLine.isDisjoint(with: $0.1) }.map(\.0)
        let listed = byLine.output.split(separator: "\n").dropLast().compactMap { $0.split(separator: " ").dropFirst(2).first.flatMap { Int($0) } }
        #expect(listed == expected && listed.contains(3), "\(byLine.output)")

        // A place with no code, a file that is not a whole run, and options that do not apply.
        let nowhere = try runKcovctl(["report", "--vmlinux", program, "--covered-by", "small.c:9999", run])
        #expect(nowhere.status == 1 && nowhere.errors.contains("has no coverable PC at small.c:9999"), "\(nowhere.errors)")
        let plain = try runKcovctl(["report", "--vmlinux", program, "--covered-by", "small.c:1", try rawcover([sites[0]], "plain.cover")])
        #expect(plain.status == 1 && plain.errors.contains("is not a whole-run trace"), "\(plain.errors)")
        for extra in [["--format", "lcov"], ["--task", "1"], ["--covered-by", "small.c"]] {
            let usage = try runKcovctl(["report", "--vmlinux", program, "--covered-by", "small.c:1"] + extra + [run])
            #expect(usage.status == 64, "\(extra): \(usage.errors)")
        }
    }

    @Test("merge refuses what cannot be merged: other builds, edges with PCs, a truncated set, no files")
    func mergeRefusals() throws {
        let pcs = try rawcover([sites[0]], "one.cover")
        let buildA = directory + "/a.set"
        let buildB = directory + "/b.set"
        _ = try runKcovctl(["merge", "--output", buildA, "--kernel-build", "A", pcs])
        _ = try runKcovctl(["merge", "--output", buildB, "--kernel-build", "B", pcs])
        let builds = try runKcovctl(["merge", buildA, buildB])
        #expect(builds.status == 1 && builds.errors.contains("comes from kernel build \"B\""), "\(builds.errors)")
        let edges = directory + "/edges.set"
        let trace = directory + "/ordered.json"
        try TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [.init(truncated: false, pcs: [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0020])])
            .jsonData().write(to: URL(fileURLWithPath: trace))
        let edgeRun = try runKcovctl(["signal", "--edges", "--output", edges, trace])
        try #require(edgeRun.status == 0, "\(edgeRun.errors)")
        let mixed = try runKcovctl(["merge", pcs, edges])
        #expect(mixed.status == 1 && mixed.errors.contains("holds edge signals, but the set it meets holds block PCs"), "\(mixed.errors)")
        let whole = try Data(contentsOf: URL(fileURLWithPath: buildA))
        let cut = directory + "/cut.set"
        try whole.prefix(whole.count - 1).write(to: URL(fileURLWithPath: cut))
        let truncated = try runKcovctl(["merge", cut])
        #expect(truncated.status == 1 && truncated.errors.contains("cut.set") && truncated.errors.contains("truncated"), "\(truncated.errors)")
        let none = try runKcovctl(["merge"])
        #expect(none.status == 64)
        // A set of edges is no report input: it names no PC.
        let report = try runKcovctl(["report", "--vmlinux", program, edges])
        #expect(report.status == 1 && report.errors.contains("is a set of edge signals, not block PCs"), "\(report.errors)")
    }

    @Test("diff: +PCs only NEW covers and -PCs only BASE covers, per file and function, in text, JSON and HTML")
    func diffCommand() throws {
        let base = try rawcover(Array(sites.prefix(3)), "base.cover")
        let new = try rawcover(Array(sites[1..<5]), "new.cover")
        let text = try runKcovctl(["diff", "--vmlinux", program, base, new])
        #expect(text.status == 0, "\(text.errors)")
        #expect(text.output.contains("new covers 2 PCs base does not") && text.output.contains("base covers 1 PCs new does not"), "\(text.output)")
        #expect(text.output.contains("small.c"))
        let json = try runKcovctl(["diff", "--vmlinux", program, "--format", "json", base, new])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let files = try #require(document["files"] as? [[String: Any]])
        let functions = files.flatMap { $0["functions"] as? [[String: Any]] ?? [] }
        #expect(functions.reduce(0) { $0 + ($1["onlyNew"] as? Int ?? 0) } == 2 && functions.reduce(0) { $0 + ($1["onlyBase"] as? Int ?? 0) } == 1)
        let page = directory + "/diff.html"
        let html = try runKcovctl(["diff", "--vmlinux", program, "--format", "html", "--output", page, base, new])
        let diffPage = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.status == 0 && diffPage.contains("<h2>Functions that differ</h2>"))
        let missing = try runKcovctl(["diff", "--vmlinux", program, base, directory + "/absent.cover"])
        #expect(missing.status == 1 && missing.errors.contains("absent.cover: cannot read"), "\(missing.errors)")
        let oneArgument = try runKcovctl(["diff", "--vmlinux", program, base])
        #expect(oneArgument.status == 64)
    }
}

/// Every order of `items`.
func permutations<T>(_ items: [T]) -> [[T]] {
    guard items.count > 1 else { return [items] }
    return items.indices.flatMap { index in
        var rest = items
        let head = rest.remove(at: index)
        return permutations(rest).map { [head] + $0 }
    }
}
