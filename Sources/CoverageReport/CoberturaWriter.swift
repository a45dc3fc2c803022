extension CoverageReport {
    /// Cobertura XML (coverage-04.dtd, what GitLab, Jenkins and Azure DevOps read): one
    /// `<package>` per source directory (`.` for the top), one `<class>` per source file (its
    /// `filename` relative to `sourceDirectory`, the one `<source>`), one `<method>` per function
    /// with the lines of its span, and one `<line>` per source line with coverable PCs, `hits`
    /// being how many times its PCs were recorded. kcov has no branch data: every `branch-rate`
    /// is 0 and every line `branch="false"`; `complexity` is 0. `timestamp` is in milliseconds
    /// since 1970, as Cobertura writes it. Rates are fractions with four decimals.
    public func cobertura(sourceDirectory: String, timestamp: Int) -> String {
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">

            """
        let all = Rollup(files)
        out += "<coverage line-rate=\"\(rate(all.lines))\" branch-rate=\"0\" lines-covered=\"\(all.lines.covered)\" lines-valid=\"\(all.lines.coverable)\" "
        out += "branches-covered=\"0\" branches-valid=\"0\" complexity=\"0\" version=\"kcovctl\" timestamp=\"\(timestamp)\">\n"
        out += "<sources><source>\(escape(sourceDirectory))</source></sources>\n<packages>\n"
        var byDirectory: [String: [File]] = [:]
        for file in files {
            let directory = file.path.lastIndex(of: "/").map { String(file.path[..<$0]) } ?? "."
            byDirectory[directory.isEmpty ? "/" : directory, default: []].append(file)
        }
        for (directory, members) in byDirectory.sorted(by: { $0.key < $1.key }) {
            out += "<package name=\"\(escape(directory))\" line-rate=\"\(rate(Rollup(members).lines))\" branch-rate=\"0\" complexity=\"0\">\n<classes>\n"
            for file in members {
                let name = file.path.split(separator: "/").last.map(String.init) ?? file.path
                out += "<class name=\"\(escape(name))\" filename=\"\(escape(file.path))\" line-rate=\"\(rate(Rollup([file]).lines))\" branch-rate=\"0\" complexity=\"0\">\n<methods>\n"
                for function in file.functions {
                    let lines = file.lines.filter { $0.number >= function.line && $0.number <= function.endLine }
                    let covered = Fraction(covered: lines.count { $0.counts.covered > 0 }, coverable: lines.count)
                    out += "<method name=\"\(escape(function.name))\" signature=\"\" line-rate=\"\(rate(covered))\" branch-rate=\"0\" complexity=\"0\">\n<lines>\n"
                    for line in lines { out += lineElement(line) }
                    out += "</lines>\n</method>\n"
                }
                out += "</methods>\n<lines>\n"
                for line in file.lines { out += lineElement(line) }
                out += "</lines>\n</class>\n"
            }
            out += "</classes>\n</package>\n"
        }
        return out + "</packages>\n</coverage>\n"
    }

    private func lineElement(_ line: Line) -> String {
        "<line number=\"\(line.number)\" hits=\"\(line.counts.hits)\" branch=\"false\"/>\n"
    }

    /// Covered / coverable with four decimals (1 when nothing is coverable, as Cobertura writes it).
    private func rate(_ fraction: Fraction) -> String {
        guard fraction.coverable > 0 else { return "1" }
        let tenThousandths = (fraction.covered * 10_000 + fraction.coverable / 2) / fraction.coverable
        let digits = String(tenThousandths % 10_000)
        return "\(tenThousandths / 10_000).\(String(repeating: "0", count: 4 - digits.count))\(digits)"
    }
}
