extension CoverageReport {
    /// A self-contained HTML page (no scripts, no external files): totals, then a table of files,
    /// then per file its functions and (for files with coverage) its lines, with percentages.
    /// `source` gives a file's text when it can be found: the file is then shown line by line,
    /// coverable lines colored.
    public func html(imageName: String, source: (String) -> String? = { _ in nil }) -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>Kernel coverage: \(escape(imageName))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
            table{border-collapse:collapse;margin:.5em 0}
            th,td{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}
            td.n{text-align:right;font-variant-numeric:tabular-nums}
            .bar{display:inline-block;width:100px;height:10px;background:#e66;vertical-align:middle}
            .bar span{display:block;height:10px;background:#3a3}
            details{margin:.3em 0}
            summary{cursor:pointer;font-family:monospace}
            pre{margin:0;font:12px/1.35 monospace}
            .hit{background:#cfc}.miss{background:#fcc}.part{background:#ffc}
            .ln{color:#888;display:inline-block;width:5em;text-align:right;margin-right:1em}
            .cnt{color:#555;display:inline-block;width:6em;text-align:right;margin-right:1em}
            .warn{color:#a50}
            </style></head><body>
            <h1>Kernel coverage</h1>

            """
        let allFunctions = files.flatMap(\.functions)
        page += "<p>Image <code>\(escape(imageName))</code>, \(mode.rawValue) mode. "
        page += "Unit: \(escape(unitDescription)).</p>\n"
        page += "<table><tr><th></th><th>covered</th><th>coverable</th><th>%</th></tr>\n"
        page += countsRow("PCs", totals)
        page += countsRow("functions", Counts(covered: allFunctions.count { $0.counts.covered > 0 }, coverable: allFunctions.count))
        page += countsRow("files", Counts(covered: files.count { $0.counts.covered > 0 }, coverable: files.count))
        page += "</table>\n<h2>Inputs</h2>\n<ul>\n"
        for input in inputs {
            page += "<li><code>\(escape(input.path))</code>: \(input.entries) entries, \(input.uniquePCs) unique PCs\(input.truncated ? " <b class=warn>(truncated)</b>" : "")</li>\n"
        }
        page += "</ul>\n"
        if uncountedPCs > 0 { page += "<p>\(escape(uncountedNote))</p>\n" }
        for warning in warnings { page += "<p class=warn>Warning: \(escape(warning))</p>\n" }

        page += "<h2>Files</h2>\n<table><tr><th>file</th><th>PCs</th><th></th><th class=n>%</th><th class=n>functions</th><th class=n>lines</th></tr>\n"
        for (index, file) in files.enumerated() {
            let entered = file.functions.count { $0.counts.covered > 0 }
            let linesHit = file.lines.count { $0.counts.covered > 0 }
            page += "<tr><td><a href=\"#f\(index)\">\(escape(file.path))</a></td><td class=n>\(file.counts.covered)/\(file.counts.coverable)</td>"
            page += "<td>\(bar(file.counts))</td><td class=n>\(percentText(file.counts))</td>"
            page += "<td class=n>\(entered)/\(file.functions.count)</td><td class=n>\(linesHit)/\(file.lines.count)</td></tr>\n"
        }
        page += "</table>\n<h2>Per file</h2>\n"
        for (index, file) in files.enumerated() {
            page += "<details id=\"f\(index)\"><summary>\(escape(file.path)) — \(percentText(file.counts)) of \(file.counts.coverable) PCs</summary>\n"
            page += "<table><tr><th>function</th><th class=n>line</th><th class=n>PCs</th><th></th><th class=n>%</th><th class=n>hits</th></tr>\n"
            for function in file.functions {
                page += "<tr><td><code>\(escape(function.name))</code></td><td class=n>\(function.line)</td>"
                page += "<td class=n>\(function.counts.covered)/\(function.counts.coverable)</td><td>\(bar(function.counts))</td>"
                page += "<td class=n>\(percentText(function.counts))</td><td class=n>\(function.counts.hits)</td></tr>\n"
            }
            page += "</table>\n"
            // Lines of a file nothing covered would all be red: its functions say as much, in a
            // page a tenth of the size.
            if file.counts.covered > 0 { page += lineListing(file, text: source(file.path)) }
            page += "</details>\n"
        }
        return page + "</body></html>\n"
    }

    /// With the source: every line, coverable ones colored by how many of their PCs were covered.
    /// Without it: the coverable lines only.
    private func lineListing(_ file: File, text: String?) -> String {
        let byNumber = Dictionary(file.lines.map { ($0.number, $0.counts) }, uniquingKeysWith: { first, _ in first })
        func row(_ number: Int, _ code: String) -> String {
            guard let counts = byNumber[number] else {
                return "<span class=ln>\(number)</span><span class=cnt></span>\(escape(code))\n"
            }
            let style = counts.covered == counts.coverable ? "hit" : counts.covered == 0 ? "miss" : "part"
            return "<span class=\(style)><span class=ln>\(number)</span><span class=cnt>\(counts.covered)/\(counts.coverable) ×\(counts.hits)</span>\(escape(code))</span>\n"
        }
        var listing = "<pre>"
        if let text {
            for (offset, code) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                listing += row(offset + 1, String(code))
            }
        } else {
            for line in file.lines { listing += row(line.number, "") }
        }
        return listing + "</pre>\n"
    }

    private func countsRow(_ label: String, _ counts: Counts) -> String {
        "<tr><td>\(label)</td><td class=n>\(counts.covered)</td><td class=n>\(counts.coverable)</td><td class=n>\(percentText(counts))</td></tr>\n"
    }

    private func bar(_ counts: Counts) -> String {
        "<span class=bar><span style=\"width:\(Int(counts.percent.rounded()))px\"></span></span>"
    }
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
