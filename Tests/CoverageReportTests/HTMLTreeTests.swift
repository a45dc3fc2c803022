import CoverageAPI
@testable import CoverageReport
import Foundation
import Testing

/// Every page of a tree, by path.
func pages(of report: CoverageReport, source: (String) -> String? = { _ in nil }) -> [String: String] {
    var pages: [String: String] = [:]
    report.htmlTree(imageName: "vmlinux", source: source) { page in
        #expect(pages[page.path] == nil, "\(page.path) written twice")
        pages[page.path] = page.contents
    }
    return pages
}

/// The links of a page set that lead nowhere: an `href`/`src` naming no page, or a `#L…` no line of
/// that page carries.
func brokenLinks(_ pages: [String: String]) -> [String] {
    var broken: [String] = []
    for (path, contents) in pages where path.hasSuffix(".html") {
        let directory = (path as NSString).deletingLastPathComponent
        for match in contents.matches(of: /(?:href|src)="([^"]*)"/) {
            let link = String(match.1)
            let parts = link.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let target = (directory.isEmpty ? "" : directory + "/") + (parts[0].removingPercentEncoding ?? "")
            var resolvedParts: [Substring] = []
            for part in target.split(separator: "/") {
                if part == ".." { _ = resolvedParts.popLast() } else if part != "." { resolvedParts.append(part) }
            }
            let resolved = resolvedParts.joined(separator: "/")
            guard let page = pages[resolved] else {
                broken.append("\(path): \(link)")
                continue
            }
            if parts.count == 2, !page.contains("id=\(parts[1]) ") {
                broken.append("\(path): \(link) (no such line)")
            }
        }
    }
    return broken.sorted()
}

/// The rows of a page's sortable table: each row's first cell's `data-v` (the entry's name).
func rowNames(_ page: String) -> [String] {
    page.matches(of: /<tr><td data-v="([^"]*)">/).map { String($0.1) }
}

@Suite("HTML report: a tree of pages")
struct HTMLTreeTests {
    /// fs/read.c and fs/ext4/inode.c (under fs/), include/list.h, a file outside the build tree, a
    /// file named `index` (its page must not replace the directory's index) and code without a file.
    let report: CoverageReport

    init() throws {
        let symbolizer = TableSymbolizer([
            (0x100, "fs/read.c", "ksys_read", 2), (0x105, "fs/read.c", "ksys_read", 3), (0x10a, "fs/read.c", "ksys_read", 3),
            (0x110, "fs/read.c", "ksys_read", 4),
            (0x200, "fs/ext4/inode.c", "ext4_read", 10), (0x205, "fs/ext4/inode.c", "ext4_write", 20),
            (0x300, "include/list.h", "list_add", 5),
            (0x400, "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h", "offset", 7),
            (0x500, "index", "oddly_named", 1),
            (0x600, "??", "mystery", 0),
        ])
        report = try CoverageReport(inputs: [input([0x100, 0x105, 0x105, 0x200, 0x300])], symbolizer: symbolizer, imageName: "vmlinux")
    }

    @Test("One index per directory, one page per file; names that clash get ~2; absolute paths under _abs/; every link resolves")
    func layout() {
        let tree = pages(of: report)
        #expect(Set(tree.keys) == [
            "kcov.css", "kcov.js", "index.html", "index~2.html", "??.html",
            "fs/index.html", "fs/read.c.html", "fs/ext4/index.html", "fs/ext4/inode.c.html",
            "include/index.html", "include/list.h.html",
            "_abs/index.html", "_abs/usr/index.html", "_abs/usr/lib/index.html", "_abs/usr/lib/gcc/index.html",
            "_abs/usr/lib/gcc/x86_64-linux-gnu/index.html", "_abs/usr/lib/gcc/x86_64-linux-gnu/12/index.html",
            "_abs/usr/lib/gcc/x86_64-linux-gnu/12/include/index.html", "_abs/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h.html",
        ])
        #expect(brokenLinks(tree) == [])
        let top = tree["index.html"] ?? ""
        #expect(rowNames(top) == ["/", "fs/", "include/", "??", "index"])
        #expect(top.contains("href=\"index~2.html\">index</a>") && top.contains("href=\"%3F%3F.html\">??</a>"))
        #expect(tree["index~2.html"]?.contains("<h1>index</h1>") == true, "the file named index has its own page")
        #expect(tree["_abs/usr/index.html"]?.contains("<h1>/usr</h1>") == true)
    }

    @Test("The link checker finds a link to a missing page and to a missing line")
    func linkCheckerCatchesDefects() {
        var tree = pages(of: report)
        tree["fs/index.html"]? += "<a href=\"ext4/gone.c.html\">x</a><a href=\"read.c.html#L999\">y</a>"
        #expect(brokenLinks(tree) == ["fs/index.html: ext4/gone.c.html", "fs/index.html: read.c.html#L999 (no such line)"])
    }

    @Test("Directories roll up PCs, lines and functions of everything below them")
    func rollups() {
        let tree = pages(of: report)
        // fs: read.c 2/4 PCs (lines 2, 3 of 2, 3, 4; ksys_read), ext4/inode.c 1/2 (ext4_read of two functions).
        let fs = tree["fs/index.html"] ?? ""
        #expect(fs.contains("<tr><td>PCs</td><td class=n>3</td><td class=n>6</td><td class=n>50.0%</td></tr>"))
        #expect(fs.contains("<tr><td>lines</td><td class=n>3</td><td class=n>5</td><td class=n>60.0%</td></tr>"))
        #expect(fs.contains("<tr><td>functions</td><td class=n>2</td><td class=n>3</td><td class=n>66.7%</td></tr>"))
        #expect(fs.contains("<tr><td>files</td><td class=n>2</td><td class=n>2</td><td class=n>100.0%</td></tr>"))
        #expect(rowNames(fs) == ["ext4/", "read.c"])
        let ext4Row = fs.firstMatch(of: /<tr><td data-v="ext4\/">.*<\/tr>/).map { String($0.0) } ?? ""
        #expect(ext4Row.contains(">1/2</td>") && ext4Row.contains("50.0%"), "\(ext4Row)")
        let top = tree["index.html"] ?? ""
        #expect(top.contains("<tr><td>PCs</td><td class=n>4</td><td class=n>10</td><td class=n>40.0%</td></tr>"))
        #expect(top.contains("<tr><td>files</td><td class=n>3</td><td class=n>6</td>"))
    }

    @Test("A file page: functions linked to their lines, each source line's state, escaped text")
    func filePage() {
        let source = "int x;\nint read(void) { if (a < b)\n  return 1;\n  return 2;\n}\n"
        let tree = pages(of: report) { $0 == "fs/read.c" ? source : nil }
        let page = tree["fs/read.c.html"] ?? ""
        #expect(page.contains("<span id=L1 class=l><i>1</i><b></b>int x;\n</span>"), "not instrumented")
        #expect(page.contains("<span id=L2 class=\"l c\"><i>2</i><b>1/1 ×1</b>int read(void) { if (a &lt; b)\n</span>"), "covered")
        #expect(page.contains("<span id=L3 class=\"l p\"><i>3</i><b>1/2 ×2</b>  return 1;\n</span>"), "partly covered")
        #expect(page.contains("<span id=L4 class=\"l u\"><i>4</i><b>0/1 ×0</b>  return 2;\n</span>"), "not covered")
        #expect(page.contains("<span id=L5 class=l><i>5</i><b></b>}\n</span>") && !page.contains("id=L6 "), "no line after the last newline")
        #expect(page.contains("<a href=\"read.c.html#L2\"><code>ksys_read</code></a>"))
        #expect(page.contains("<p class=crumbs><a href=\"../index.html\">top</a> / <a href=\"index.html\">fs</a> / <b>read.c</b></p>"))
        #expect(page.contains("<link rel=\"stylesheet\" href=\"../kcov.css\">") && page.contains("<script src=\"../kcov.js\">"))
        #expect(brokenLinks(tree) == [])
        // CRLF ends a line as LF does; a form feed (old kernel sources have them) does not.
        let crlf = pages(of: report) { _ in "int x;\r\nint y;\u{0C}\r\n  return 1;\r\n" }["fs/read.c.html"] ?? ""
        #expect(crlf.contains("<i>3</i><b>1/2 ×2</b>  return 1;\n</span>") && crlf.contains("int y;\u{0C}\n</span>"))
    }

    @Test("Without the source a file page lists its coverable lines, and says the source was not found")
    func withoutSource() {
        let page = pages(of: report)["fs/read.c.html"] ?? ""
        #expect(page.contains("was not found"))
        #expect(page.matches(of: #/<span id=L(\d+) /#).map { Int($0.1) ?? 0 } == [2, 3, 4])
    }

    @Test("A long file continues on further pages within the bounds; function links go to the page with their line")
    func pagesAreBounded() throws {
        let lines = 9_500
        let symbolizer = TableSymbolizer([(0x100, "big.c", "early", 10), (0x200, "big.c", "late", 9_000)])
        let report = try CoverageReport(inputs: [input([0x200])], symbolizer: symbolizer, imageName: "vmlinux")
        let source = (1...lines).map { "line \($0)" }.joined(separator: "\n")
        let tree = pages(of: report) { _ in source }
        #expect(Set(tree.keys).isSuperset(of: ["big.c.html", "big.c.part2.html", "big.c.part3.html"]) && tree["big.c.part4.html"] == nil)
        let counts = ["big.c.html", "big.c.part2.html", "big.c.part3.html"].map { tree[$0]?.matches(of: /<span id=L/).count ?? 0 }
        #expect(counts == [4_000, 4_000, 1_500])
        #expect(tree["big.c.html"]?.contains("<a href=\"big.c.part3.html#L9000\"><code>late</code></a>") == true)
        #expect(tree["big.c.part2.html"]?.contains("<a href=\"big.c.part3.html\">lines 8001–9500</a>") == true)
        #expect(brokenLinks(tree) == [])

        // Long lines: the byte bound ends a page first.
        let wide = (1...600).map { _ in String(repeating: "x", count: 1_000) }.joined(separator: "\n")
        let wideTree = pages(of: report) { _ in wide }
        let wideCounts = wideTree.filter { $0.key.hasPrefix("big.c") }.values.map { $0.matches(of: /<span id=L/).count }.sorted()
        #expect(wideCounts == [76, 262, 262], "\(wideCounts)")
        #expect(wideTree.values.allSatisfy { $0.utf8.count < CoverageReport.htmlSourceBytesPerPage + 64 * 1024 })
    }

    @Test("The top page lists at most 100 inputs and warnings")
    func boundedInputs() throws {
        let many = (0..<150).map { input([0x100], truncated: true, path: "run\($0).cover") }
        let report = try CoverageReport(inputs: many, symbolizer: table, imageName: "vmlinux")
        let top = pages(of: report)["index.html"] ?? ""
        #expect(top.matches(of: /<li><code>run/).count == 100 && top.contains("and 50 more"))
        #expect(top.matches(of: /<p class=warn>Warning:/).count == 100 && top.contains("and 50 more warnings"))
    }
}
