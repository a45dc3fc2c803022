/// Which lcov reads the tracefile: they disagree on the function record.
public enum LCOVVersion: String, Sendable, CaseIterable {
    /// lcov 2.0 and later (current distributions): `FN:<start>,<end>,<name>`, the form every 2.x
    /// reads (2.2 and later also write `FNL`/`FNA`, which 2.0 and 2.1 do not read); `FNF`/`FNH`
    /// count function groups (functions that start on one line are one group, as 2.2 counts them).
    case v2 = "2"
    /// lcov 1.x (Debian 12's 1.16): `FN:<start>,<name>`; 1.x reads `FN:<start>,<end>,<name>` as a
    /// function named after its end line. `FNF`/`FNH` count functions.
    case v1 = "1"
}

extension CoverageReport {
    /// An LCOV tracefile (geninfo(1) "TRACEFILE FORMAT", what `genhtml` reads): per file its
    /// functions (`FN`/`FNDA`, start and, for lcov 2, end line), lines (`DA`, with how many times
    /// the line's PCs were recorded) and totals.
    ///
    /// Every record keeps lcov 2's rules: one record per file; no line 0; a function hit exactly
    /// when a line of its span is (see ``CoverageReport``); functions on one start line share the
    /// end line; a function's first line has a `DA` (see ``withFunctionStartLines(_:)``). `testName` keeps only letters, digits and `_` (what lcov allows in `TN:`; any
    /// other character becomes `_`, as lcov itself does). `sourcePath` maps each report path to
    /// the path written in `SF:`, where genhtml will look for the source.
    public func lcov(testName: String = "", version: LCOVVersion = .v2, sourcePath: (String) -> String = { $0 }) -> String {
        var out = ""
        out.reserveCapacity(files.count * 256 + totals.coverable * 12)
        let name = Self.lcovTestName(testName)
        for file in files {
            out += "TN:\(name)\nSF:\(sourcePath(file.path))\n"
            for function in file.functions {
                switch version {
                case .v2: out += "FN:\(function.line),\(function.endLine),\(function.name)\n"
                case .v1: out += "FN:\(function.line),\(function.name)\n"
                }
            }
            for function in file.functions { out += "FNDA:\(function.counts.hits),\(function.name)\n" }
            switch version {
            case .v2:
                var groups: [Int: Bool] = [:]
                for function in file.functions { groups[function.line, default: false] = groups[function.line, default: false] || function.counts.covered > 0 }
                out += "FNF:\(groups.count)\nFNH:\(groups.values.count { $0 })\n"
            case .v1:
                out += "FNF:\(file.functions.count)\nFNH:\(file.functions.count { $0.counts.covered > 0 })\n"
            }
            let lines = Self.withFunctionStartLines(file)
            for line in lines { out += "DA:\(line.number),\(line.hits)\n" }
            out += "LF:\(lines.count)\nLH:\(lines.count { $0.hits > 0 })\nend_of_record\n"
        }
        return out
    }

    /// The file's `DA` lines, plus one on each function's first line that has none: lcov 2.x's
    /// genhtml takes a function's first line for an executable line (as gcov's always is) and
    /// refuses a tracefile without one ("unexpected category UNK"). Such a definition line gets
    /// the count of the function's first line with PCs, so a function is hit exactly when a line
    /// of its span is, as before.
    static func withFunctionStartLines(_ file: File) -> [(number: Int, hits: Int)] {
        var lines = file.lines.map { (number: $0.number, hits: $0.counts.hits) }
        let numbers = Set(lines.map(\.number))
        var added = Set<Int>()
        for function in file.functions where !numbers.contains(function.line) && !added.contains(function.line) {
            added.insert(function.line)
            let first = file.lines.first { $0.number > function.line && $0.number <= function.endLine }
            lines.append((function.line, first?.counts.hits ?? 0))
        }
        return added.isEmpty ? lines : lines.sorted { $0.number < $1.number }
    }

    /// Whether `name` is a test name lcov takes as it is: letters, digits and `_` only (lcov(1) `--test-name`).
    public static func isValidLCOVTestName(_ name: String) -> Bool {
        name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }

    /// `name` with every character lcov does not allow in a test name replaced by `_`.
    static func lcovTestName(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map {
            isValidLCOVTestName(String($0)) ? $0 : "_"
        }))
    }
}
