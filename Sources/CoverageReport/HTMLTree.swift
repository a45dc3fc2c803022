/// One file of the HTML report: where it goes under the output directory, and its text.
public struct HTMLPage: Sendable, Hashable {
    /// A relative path with `/` separators, such as `fs/index.html` or `fs/read_write.c.html`.
    public var path: String
    public var contents: String
}

extension CoverageReport {
    /// The most source lines one file page shows; longer files continue on further pages.
    public static let htmlLinesPerPage = 4_000
    /// The most bytes of source one file page shows; a file page ends at whichever bound comes first.
    public static let htmlSourceBytesPerPage = 256 * 1024
    /// The most inputs and warnings the top page lists (the JSON report has them all).
    public static let htmlListedInputs = 100

    /// The report as a directory tree of pages, one at a time through `emit`, so no page
    /// (nor the whole tree) has to be held at once.
    ///
    /// - `index.html` at the top: image, unit, inputs, warnings, totals, and the top-level entries;
    /// - one `index.html` per source directory: its subdirectories and files, each with its
    ///   coverage rolled up (PCs, lines and functions covered out of coverable);
    /// - one page per source file (`name.html`, continued on `name.part2.html`, … past
    ///   ``htmlLinesPerPage`` lines or ``htmlSourceBytesPerPage`` bytes of source): its functions,
    ///   then its source with each line's state: covered (every PC), partly covered, not covered,
    ///   or not instrumented (no coverable PC). Without the source (`source` gives `nil`), the
    ///   coverable lines are listed with their state;
    /// - `kcov.css` and `kcov.js` (tables sorted by a click on a column: name or coverage).
    ///
    /// Sizes: a file page holds at most ``htmlLinesPerPage`` lines and ``htmlSourceBytesPerPage``
    /// bytes of source plus its function table; a directory page holds one row per entry of that
    /// directory (about 400 bytes each); the top page lists at most ``htmlListedInputs`` inputs and
    /// warnings. Paths outside the build tree are under `_abs/`; a name that would clash with
    /// another page gets `~2`, `~3`, … before its `.html`.
    public func htmlTree(imageName: String, source: (String) -> String?, emit: (HTMLPage) throws -> Void) rethrows {
        var tree = DirectoryTree(files)
        try emit(HTMLPage(path: "kcov.css", contents: htmlStyle))
        try emit(HTMLPage(path: "kcov.js", contents: htmlScript))
        for index in tree.nodes.indices {
            try emit(HTMLPage(path: tree.nodes[index].pagePath + "index.html", contents: directoryPage(tree, index, imageName: imageName)))
        }
        for index in files.indices {
            for page in filePages(index, tree: &tree, text: source(files[index].path)) { try emit(page) }
        }
    }

    // MARK: Pages

    private func directoryPage(_ tree: DirectoryTree, _ index: Int, imageName: String) -> String {
        let node = tree.nodes[index]
        let up = String(repeating: "../", count: node.depth)
        let title = index == 0 ? "Kernel coverage" : node.displayPath
        var page = pageHead(title: title, imageName: imageName, up: up)
        page += breadcrumb(tree, index, up: up, current: nil)
        if index == 0 {
            page += "<p>Image <code>\(escape(imageName))</code>, \(mode.rawValue) mode. Unit: \(escape(unitDescription)).</p>\n"
        }
        page += rollupTable(node.rollup)
        if index == 0 {
            page += "<h2>Inputs</h2>\n<ul>\n"
            for input in inputs.prefix(Self.htmlListedInputs) {
                page += "<li><code>\(escape(input.path))</code>: \(input.entries) entries, \(input.uniquePCs) unique PCs\(input.truncated ? " <b class=warn>(truncated)</b>" : "")</li>\n"
            }
            if inputs.count > Self.htmlListedInputs { page += "<li>and \(inputs.count - Self.htmlListedInputs) more (the JSON report lists them all)</li>\n" }
            page += "</ul>\n"
            if uncountedPCs > 0 { page += "<p>\(escape(uncountedNote))</p>\n" }
            for warning in warnings.prefix(Self.htmlListedInputs) { page += "<p class=warn>Warning: \(escape(warning))</p>\n" }
            if warnings.count > Self.htmlListedInputs { page += "<p class=warn>and \(warnings.count - Self.htmlListedInputs) more warnings</p>\n" }
        }
        page += "<h2>\(index == 0 ? "Top level" : "Entries")</h2>\n"
        page += "<table class=sortable><thead><tr><th data-type=s>name</th><th data-type=n>PCs covered</th><th></th><th data-type=n>lines</th><th data-type=n>functions</th></tr></thead><tbody>\n"
        for child in node.directories {
            let sub = tree.nodes[child]
            page += entryRow(name: sub.name == "/" ? "/" : sub.name + "/", href: percentEncoded(sub.diskName) + "/index.html", sub.rollup)
        }
        for file in node.files {
            page += entryRow(name: tree.fileNames[file], href: percentEncoded(tree.filePages[file]), Rollup([files[file]]))
        }
        return page + "</tbody></table>\n" + pageFoot(up: up)
    }

    private func filePages(_ index: Int, tree: inout DirectoryTree, text: String?) -> [HTMLPage] {
        let file = files[index]
        let node = tree.fileDirectory[index]
        let up = String(repeating: "../", count: tree.nodes[node].depth)
        let directory = tree.nodes[node].pagePath
        let parts = listingParts(file, text: text)
        let pageNames = [tree.filePages[index]] + (1..<parts.count).map { tree.allocate(in: node, tree.fileNames[index] + ".part\($0 + 1)", ".html") }
        // The page a line is on, for the function table's links.
        func pageOf(_ line: Int) -> String {
            let part = parts.lastIndex { $0.first <= line } ?? 0
            return percentEncoded(pageNames[min(part, pageNames.count - 1)])
        }
        var pages: [HTMLPage] = []
        for (number, part) in parts.enumerated() {
            var page = pageHead(title: file.path, imageName: nil, up: up)
            page += breadcrumb(tree, node, up: up, current: tree.fileNames[index])
            if number == 0 {
                page += rollupTable(Rollup([file]))
                page += "<h2>Functions</h2>\n<table class=sortable><thead><tr><th data-type=s>function</th><th data-type=n>line</th>"
                page += "<th data-type=n>PCs covered</th><th></th><th data-type=n>hits</th></tr></thead><tbody>\n"
                for function in file.functions {
                    page += "<tr><td data-v=\"\(escape(function.name))\"><a href=\"\(pageOf(function.line))#L\(function.line)\"><code>\(escape(function.name))</code></a></td>"
                    page += "<td class=n data-v=\(function.line)>\(function.line)</td>\(countsCells(function.counts))<td class=n data-v=\(function.counts.hits)>\(function.counts.hits)</td></tr>\n"
                }
                page += "</tbody></table>\n"
                page += "<h2>Source</h2>\n"
                if text == nil {
                    page += "<p class=warn>The source of <code>\(escape(file.path))</code> was not found (pass --source-dir): its coverable lines only.</p>\n"
                }
                page += "<p class=legend><span class=\"l c\">covered</span> <span class=\"l p\">partly covered</span> <span class=\"l u\">not covered</span> <span class=l>not instrumented</span> — PCs covered/coverable, ×times recorded</p>\n"
            }
            page += partNavigation(parts, pageNames, current: number)
            page += "<pre class=src>" + part.html + "</pre>\n"
            page += partNavigation(parts, pageNames, current: number)
            pages.append(HTMLPage(path: directory + pageNames[number], contents: page + pageFoot(up: up)))
        }
        return pages
    }

    /// The file's listing cut into pages: each holds its first line number and its rendered lines.
    private func listingParts(_ file: File, text: String?) -> [(first: Int, last: Int, html: String)] {
        let byNumber = Dictionary(file.lines.map { ($0.number, $0.counts) }, uniquingKeysWith: { first, _ in first })
        func row(_ number: Int, _ code: Substring) -> String {
            guard let counts = byNumber[number] else {
                return "<span id=L\(number) class=l><i>\(number)</i><b></b>\(escape(String(code)))\n</span>"
            }
            let state = counts.covered == counts.coverable ? "c" : counts.covered == 0 ? "u" : "p"
            return "<span id=L\(number) class=\"l \(state)\"><i>\(number)</i><b>\(counts.covered)/\(counts.coverable) ×\(counts.hits)</b>\(escape(String(code)))\n</span>"
        }
        var parts: [(first: Int, last: Int, html: String)] = []
        var current = (first: 1, last: 0, html: "")
        var lines = 0
        var bytes = 0
        func add(_ number: Int, _ code: Substring) {
            if lines > 0, lines >= Self.htmlLinesPerPage || bytes + code.utf8.count > Self.htmlSourceBytesPerPage {
                parts.append(current)
                current = (number, number, "")
                lines = 0
                bytes = 0
            }
            if lines == 0 { current.first = number }
            current.html += row(number, code)
            current.last = number
            lines += 1
            bytes += code.utf8.count
        }
        if let text {
            var body = text[...]
            if body.last == "\n" || body.last == "\r\n" { body = body.dropLast() }
            for (offset, code) in body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() { add(offset + 1, code) }
        } else {
            for line in file.lines { add(line.number, "") }
        }
        parts.append(current)
        return parts
    }

    private func partNavigation(_ parts: [(first: Int, last: Int, html: String)], _ names: [String], current: Int) -> String {
        guard parts.count > 1 else { return "" }
        var links: [String] = []
        for (number, part) in parts.enumerated() {
            let label = "lines \(part.first)–\(part.last)"
            links.append(number == current ? "<b>\(label)</b>" : "<a href=\"\(percentEncoded(names[number]))\">\(label)</a>")
        }
        return "<p class=parts>" + links.joined(separator: " · ") + "</p>\n"
    }

    // MARK: Pieces

    private func pageHead(title: String, imageName: String?, up: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>\(escape(title))\(imageName.map { " — " + escape($0) } ?? "")</title>
        <link rel="stylesheet" href="\(up)kcov.css">
        </head><body>
        <h1>\(escape(title))</h1>

        """
    }

    private func pageFoot(up: String) -> String {
        "<script src=\"\(up)kcov.js\"></script>\n</body></html>\n"
    }

    /// `top / fs / ext4 / file`: each directory a link to its index.
    private func breadcrumb(_ tree: DirectoryTree, _ index: Int, up: String, current: String?) -> String {
        var chain: [Int] = []
        var node: Int? = index
        while let at = node {
            chain.append(at)
            node = tree.nodes[at].parent
        }
        var links: [String] = []
        for at in chain.reversed() {
            let label = at == 0 ? "top" : escape(tree.nodes[at].name)
            let href = String(repeating: "../", count: tree.nodes[index].depth - tree.nodes[at].depth) + "index.html"
            links.append(at == index && current == nil ? "<b>\(label)</b>" : "<a href=\"\(href)\">\(label)</a>")
        }
        if let current { links.append("<b>\(escape(current))</b>") }
        return "<p class=crumbs>" + links.joined(separator: " / ") + "</p>\n"
    }

    private func rollupTable(_ rollup: Rollup) -> String {
        var table = "<table class=totals><thead><tr><th></th><th>covered</th><th>coverable</th><th>%</th></tr></thead><tbody>\n"
        for (label, covered, coverable, percent) in [
            (unitNoun, rollup.pcs.covered, rollup.pcs.coverable, rollup.pcs.percent),
            ("lines", rollup.lines.covered, rollup.lines.coverable, rollup.lines.percent),
            ("functions", rollup.functions.covered, rollup.functions.coverable, rollup.functions.percent),
            ("files", rollup.files.covered, rollup.files.coverable, rollup.files.percent),
        ] {
            table += "<tr><td>\(label)</td><td class=n>\(covered)</td><td class=n>\(coverable)</td><td class=n>\(percentText(percent))</td></tr>\n"
        }
        return table + "</tbody></table>\n"
    }

    private func entryRow(name: String, href: String, _ rollup: Rollup) -> String {
        "<tr><td data-v=\"\(escape(name))\"><a href=\"\(href)\">\(escape(name))</a></td>\(countsCells(rollup.pcs))"
            + "<td class=n data-v=\(sortKey(rollup.lines.percent, rollup.lines.coverable))>\(rollup.lines.covered)/\(rollup.lines.coverable)</td>"
            + "<td class=n data-v=\(sortKey(rollup.functions.percent, rollup.functions.coverable))>\(rollup.functions.covered)/\(rollup.functions.coverable)</td></tr>\n"
    }

    /// Covered/coverable sorted by percentage, and a bar with the percentage.
    private func countsCells(_ counts: Counts) -> String {
        "<td class=n data-v=\(sortKey(counts.percent, counts.coverable))>\(counts.covered)/\(counts.coverable)</td>"
            + "<td><span class=bar><span style=\"width:\(Int(counts.percent.rounded()))px\"></span></span> \(percentText(counts))</td>"
    }

    /// Sorts by percentage, then by size: 0% of 500 PCs before 0% of 5.
    private func sortKey(_ percent: Double, _ coverable: Int) -> String {
        String(Int((percent * 100).rounded()) * 1_000_000_000 + min(coverable, 999_999_999))
    }
}

/// The report's files arranged by directory, each directory rolled up, and the page names
/// allocated so that none clashes.
struct DirectoryTree {
    struct Node {
        var name: String
        /// The directory's name on disk (`_abs` for `/`, `~N` added on a clash).
        var diskName: String
        var parent: Int?
        var depth: Int
        /// Where its pages go: `""` for the top, else `a/b/`.
        var pagePath: String
        var displayPath: String
        var directories: [Int] = []
        var files: [Int] = []
        var rollup = CoverageReport.Rollup()
    }

    var nodes: [Node]
    /// Per report file: its first page's name, its own name, its directory.
    var filePages: [String]
    var fileNames: [String]
    var fileDirectory: [Int]
    /// Per directory, the names taken on disk.
    private var used: [Set<String>]

    init(_ files: [CoverageReport.File]) {
        nodes = [Node(name: "", diskName: "", parent: nil, depth: 0, pagePath: "", displayPath: "")]
        var children: [[String: Int]] = [[:]]
        fileNames = []
        fileDirectory = []
        for (index, file) in files.enumerated() {
            var components = file.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            if file.path.hasPrefix("/") { components.insert("/", at: 0) }
            let name = components.popLast() ?? file.path
            var node = 0
            for component in components {
                if let child = children[node][component] {
                    node = child
                    continue
                }
                let parent = nodes[node]
                let display = parent.displayPath.isEmpty ? component : parent.displayPath == "/" ? "/" + component : parent.displayPath + "/" + component
                nodes.append(Node(name: component, diskName: "", parent: node, depth: parent.depth + 1, pagePath: "", displayPath: display))
                children.append([:])
                children[node][component] = nodes.count - 1
                nodes[node].directories.append(nodes.count - 1)
                node = nodes.count - 1
            }
            nodes[node].files.append(index)
            fileNames.append(name)
            fileDirectory.append(node)
        }
        // Names on disk, directory by directory: index.html first, then subdirectories, then files'
        // first pages; further pages of a file are allocated when its source has been read.
        used = Array(repeating: ["index.html", "kcov.css", "kcov.js"], count: nodes.count)
        filePages = Array(repeating: "", count: files.count)
        for index in nodes.indices {
            let names = nodes.map(\.name)
            nodes[index].directories.sort { names[$0] < names[$1] }
            for child in nodes[index].directories {
                nodes[child].diskName = allocate(in: index, nodes[child].name == "/" ? "_abs" : nodes[child].name)
            }
            for file in nodes[index].files { filePages[file] = allocate(in: index, fileNames[file], ".html") }
        }
        // Page paths top-down (a parent is always created before its children).
        for index in nodes.indices.dropFirst() {
            let parent = nodes[index].parent ?? 0
            nodes[index].pagePath = nodes[parent].pagePath + nodes[index].diskName + "/"
        }
        // Rollups bottom-up: children come after their parents.
        for (index, file) in files.enumerated() { nodes[fileDirectory[index]].rollup.add(file) }
        for index in nodes.indices.dropFirst().reversed() {
            let parent = nodes[index].parent ?? 0
            nodes[parent].rollup.add(nodes[index].rollup)
        }
    }

    /// `stem + suffix`, or `stem~2 + suffix`, `stem~3 + suffix`, … whichever is free in directory `node`.
    mutating func allocate(in node: Int, _ stem: String, _ suffix: String = "") -> String {
        var name = stem + suffix
        var counter = 2
        while used[node].contains(name) {
            name = stem + "~\(counter)" + suffix
            counter += 1
        }
        used[node].insert(name)
        return name
    }
}

/// A path component for an `href`: every byte outside `A–Z a–z 0–9 - . _ ~` as `%XX`.
func percentEncoded(_ text: String) -> String {
    var result = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
            result.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let digits = String(byte, radix: 16, uppercase: true)
            result += "%" + (digits.count == 1 ? "0" + digits : digits)
        }
    }
    return result
}

/// Text made safe for HTML content and attribute values.
func escape(_ text: String) -> String {
    var result = ""
    result.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": result += "&amp;"
        case "<": result += "&lt;"
        case ">": result += "&gt;"
        case "\"": result += "&quot;"
        default: result.append(character)
        }
    }
    return result
}

let htmlStyle = """
    body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
    h1{font-size:1.4em;word-break:break-all}
    table{border-collapse:collapse;margin:.5em 0}
    th,td{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}
    table.sortable th[data-type]{cursor:pointer;user-select:none}
    table.sortable th[data-type]::after{content:" \\2195";color:#aaa}
    table.sortable th[aria-sort=ascending]::after{content:" \\2191";color:#222}
    table.sortable th[aria-sort=descending]::after{content:" \\2193";color:#222}
    td.n{text-align:right;font-variant-numeric:tabular-nums}
    .bar{display:inline-block;width:100px;height:10px;background:#e66;vertical-align:middle}
    .bar span{display:block;height:10px;background:#3a3}
    pre.src{font:12px/1.35 monospace;margin:0}
    .l{display:block}.l i{font-style:normal;color:#888;display:inline-block;width:5em;text-align:right;margin-right:1em}
    .l b{font-weight:normal;color:#555;display:inline-block;width:7em;text-align:right;margin-right:1em}
    .c{background:#cfc}.u{background:#fcc}.p{background:#ffc}
    .legend .l{display:inline-block;padding:0 .5em;border:1px solid #ccc}
    .warn{color:#a50}.crumbs{font-family:monospace}
    :target{outline:2px solid #36c}

    """

/// Sorts a table by the clicked column's `data-v` values (numbers when the header says `n`).
let htmlScript = """
    document.querySelectorAll("table.sortable th[data-type]").forEach(function (th) {
      th.addEventListener("click", function () {
        var body = th.closest("table").tBodies[0], column = th.cellIndex, numeric = th.dataset.type === "n";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        th.parentNode.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
          var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });

    """
