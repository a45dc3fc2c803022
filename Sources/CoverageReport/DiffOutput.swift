import Foundation

extension CoverageDiff {
    /// Both sides' totals, then each file with a difference (most PCs gained first) and under it
    /// each function with one: `+N` PCs only NEW covers, `-N` PCs only BASE covers.
    public func summary(baseName: String, newName: String) -> String {
        var lines = [
            "base: \(baseName): \(base.totals.covered) of \(base.totals.coverable) \(base.unitNoun) (\(percentText(base.totals)))",
            "new:  \(newName): \(new.totals.covered) of \(new.totals.coverable) \(new.unitNoun) (\(percentText(new.totals)))",
        ]
        for warning in base.warnings { lines.append("warning: base: \(warning)") }
        for warning in new.warnings { lines.append("warning: new: \(warning)") }
        let functions = files.flatMap(\.functions)
        lines.append(
            "new covers \(onlyNew) PCs base does not (\(files.count { $0.onlyNew > 0 }) files, \(functions.count { $0.onlyNew > 0 }) functions, \(functions.count(where: \.isNewlyEntered)) newly entered); "
                + "base covers \(onlyBase) PCs new does not (\(files.count { $0.onlyBase > 0 }) files, \(functions.count { $0.onlyBase > 0 }) functions, \(functions.count(where: \.isNoLongerEntered)) no longer entered)")
        for file in files.sorted(by: { ($1.onlyNew, $0.onlyBase, $0.name) < ($0.onlyNew, $1.onlyBase, $1.name) }) {
            lines.append("  \(("+" + String(file.onlyNew)).leftPadded(7)) \(("-" + String(file.onlyBase)).leftPadded(7))  \(file.name)")
            for function in file.functions {
                let tag = function.isNewlyEntered ? "  (newly entered)" : function.isNoLongerEntered ? "  (no longer entered)" : ""
                lines.append("    \(("+" + String(function.onlyNew)).leftPadded(7)) \(("-" + String(function.onlyBase)).leftPadded(7))  \(function.name):\(function.line)\(tag)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private struct Side: Encodable {
        var paths: [String]
        var totals: CoverageReport.Counts
        var warnings: [String]
    }

    private struct Document: Encodable {
        var image: String
        var base: Side
        var new: Side
        var onlyNew: Int
        var onlyBase: Int
        var files: [Change]
    }

    /// `{"image", "base": {"paths", "totals", "warnings"}, "new": {…}, "onlyNew", "onlyBase",
    /// "files": [{"name", "line": 0, "base", "new", "onlyNew", "onlyBase", "functions": [{"name",
    /// "line", "base", "new", "onlyNew", "onlyBase", "functions": []}]}]}`, files by path.
    public func json(imageName: String) -> String {
        let document = Document(
            image: imageName, base: Side(paths: base.inputs.map(\.path), totals: base.totals, warnings: base.warnings),
            new: Side(paths: new.inputs.map(\.path), totals: new.totals, warnings: new.warnings), onlyNew: onlyNew, onlyBase: onlyBase, files: files)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Plain structs of strings and integers: encoding cannot fail.
        let data = try! encoder.encode(document)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// One self-contained page (style and sorting script inline): both sides' totals, then one
    /// table of every function with a difference (file, function, line, +PCs, -PCs, BASE and NEW
    /// coverage), sortable by each column. Its size is one row (about 300 bytes) per function
    /// with a difference.
    public func html(imageName: String, baseName: String, newName: String) -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>Coverage diff — \(escape(imageName))</title>
            <style>
            \(htmlStyle)</style>
            </head><body>
            <h1>Coverage diff</h1>
            <p>Image <code>\(escape(imageName))</code>. +PCs: covered by NEW only; −PCs: covered by BASE only.</p>
            <table class=totals><thead><tr><th></th><th>files</th><th>covered</th><th>coverable</th><th>%</th><th>only here</th></tr></thead><tbody>
            <tr><td>BASE</td><td><code>\(escape(baseName))</code></td><td class=n>\(base.totals.covered)</td><td class=n>\(base.totals.coverable)</td><td class=n>\(percentText(base.totals))</td><td class=n>\(onlyBase)</td></tr>
            <tr><td>NEW</td><td><code>\(escape(newName))</code></td><td class=n>\(new.totals.covered)</td><td class=n>\(new.totals.coverable)</td><td class=n>\(percentText(new.totals))</td><td class=n>\(onlyNew)</td></tr>
            </tbody></table>

            """
        for warning in base.warnings { page += "<p class=warn>Warning (BASE): \(escape(warning))</p>\n" }
        for warning in new.warnings { page += "<p class=warn>Warning (NEW): \(escape(warning))</p>\n" }
        page += "<h2>Functions that differ</h2>\n<table class=sortable><thead><tr><th data-type=s>file</th><th data-type=s>function</th><th data-type=n>line</th>"
        page += "<th data-type=n>+PCs</th><th data-type=n>−PCs</th><th data-type=n>BASE</th><th data-type=n>NEW</th></tr></thead><tbody>\n"
        for file in files {
            for function in file.functions {
                let tag = function.isNewlyEntered ? " <b class=c>new</b>" : function.isNoLongerEntered ? " <b class=u>gone</b>" : ""
                page += "<tr><td data-v=\"\(escape(file.name))\"><code>\(escape(file.name))</code></td><td data-v=\"\(escape(function.name))\"><code>\(escape(function.name))</code>\(tag)</td>"
                page += "<td class=n data-v=\(function.line)>\(function.line)</td><td class=n data-v=\(function.onlyNew)>+\(function.onlyNew)</td><td class=n data-v=\(function.onlyBase)>−\(function.onlyBase)</td>"
                page += "<td class=n data-v=\(function.base.covered)>\(function.base.covered)/\(function.base.coverable)</td><td class=n data-v=\(function.new.covered)>\(function.new.covered)/\(function.new.coverable)</td></tr>\n"
            }
        }
        return page + "</tbody></table>\n<script>\n\(htmlScript)</script>\n</body></html>\n"
    }
}
