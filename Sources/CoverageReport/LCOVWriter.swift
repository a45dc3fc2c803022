extension CoverageReport {
    /// An LCOV tracefile (the format `genhtml` reads): per file its functions (`FN`/`FNDA`), lines
    /// (`DA`, with how many times the line's PCs were recorded) and totals.
    ///
    /// `sourcePath` maps each report path to the path written in `SF:`, where genhtml will look
    /// for the source.
    public func lcov(testName: String = "", sourcePath: (String) -> String = { $0 }) -> String {
        var out = ""
        out.reserveCapacity(files.count * 256 + totals.coverable * 12)
        for file in files {
            out += "TN:\(testName)\nSF:\(sourcePath(file.path))\n"
            for function in file.functions { out += "FN:\(function.line),\(function.name)\n" }
            for function in file.functions { out += "FNDA:\(function.counts.hits),\(function.name)\n" }
            out += "FNF:\(file.functions.count)\nFNH:\(file.functions.count { $0.counts.covered > 0 })\n"
            for line in file.lines { out += "DA:\(line.number),\(line.counts.hits)\n" }
            out += "LF:\(file.lines.count)\nLH:\(file.lines.count { $0.counts.covered > 0 })\nend_of_record\n"
        }
        return out
    }
}
