/// The kernel's `MAINTAINERS` file as far as reports need it: its sections (subsystems) and the
/// files each covers, by its `F:` (files) and `X:` (excluded) patterns.
///
/// The rules are those of the file's own header and of `scripts/get_maintainer.pl`
/// (Docs/reports.md, "Subsystems"): a pattern matches a path when it matches the path's beginning,
/// `*` any run of characters (`/` included), `?` one character, `[…]` one of a set; a pattern
/// ending in `/` (or naming a directory of the source tree) takes everything below it, any other
/// only paths with as many `/` as itself. A path is in a section when an `F:` pattern matches it
/// and no `X:` pattern does; it may be in several.
public struct Maintainers: Sendable {
    /// One section: its title line and where it starts (1-based), and its file patterns.
    public struct Section: Sendable {
        public var name: String
        public var line: Int
        var files: [FilePattern] = []
        var excluded: [FilePattern] = []
    }

    public private(set) var sections: [Section]
    /// Indices of sections with an `F:` pattern whose literal start holds a `/`, by the first path
    /// component of that start; the others are in ``general``.
    private var byComponent: [Substring: [Int]] = [:]
    private var general: [Int] = []

    /// Parses `text`; `source` names the file in errors. `isDirectory(path)` says whether the
    /// source tree has a directory at a pattern written without a trailing `/` (get_maintainer.pl
    /// then adds one); without a source tree, pass a test on the report's own paths.
    ///
    /// - Throws: an entry (`F: …`) before any section title, an empty or absolute pattern, an
    ///   unterminated `[`, or a file with no `F:` entry at all (not a MAINTAINERS file); each
    ///   error names the line.
    public init(text: String, source: String, isDirectory: (String) -> Bool) throws(CoverageInputError) {
        sections = []
        var title: (name: String, line: Int)?
        var inSection = false
        for (offset, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let number = offset + 1
            guard let type = Self.entryType(line) else {
                if line.allSatisfy(\.isWhitespace) {
                    title = nil
                    inSection = false
                } else {
                    title = (String(line), number)
                    inSection = false
                }
                continue
            }
            guard type == "F" || type == "X" else {
                if title == nil && !inSection { throw CoverageInputError(path: source, "line \(number): a \(type): entry outside a section (no section name above it): is this the kernel's MAINTAINERS?") }
                continue
            }
            if !inSection {
                guard let title else {
                    throw CoverageInputError(path: source, "line \(number): a \(type): entry outside a section (no section name above it): is this the kernel's MAINTAINERS?")
                }
                sections.append(Section(name: title.name, line: title.line))
                inSection = true
            }
            let value = line.dropFirst(2).drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
            let pattern = try FilePattern(String(value), isDirectory: isDirectory) { message throws(CoverageInputError) in
                throw CoverageInputError(path: source, "line \(number): \(type): \(String(value)): \(message)")
            }
            if type == "F" { sections[sections.count - 1].files.append(pattern) } else { sections[sections.count - 1].excluded.append(pattern) }
        }
        sections.removeAll { $0.files.isEmpty }
        guard !sections.isEmpty else {
            throw CoverageInputError(path: source, "holds no section with an F: (files) entry: not the kernel's MAINTAINERS? pass it with --maintainers FILE")
        }
        for (index, section) in sections.enumerated() {
            let keys = Set(section.files.map(\.firstComponent))
            if keys.contains(nil) {
                general.append(index)
            } else {
                for key in keys { if let key { byComponent[key, default: []].append(index) } }
            }
        }
    }

    /// The names of the sections `path` (relative to the source tree's top) is in, in file order.
    public func subsystems(of path: String) -> [String] {
        let first = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let candidates = (byComponent[first] ?? []) + general
        let bytes = Array(path.utf8)
        let slashes = bytes.count { $0 == UInt8(ascii: "/") }
        return candidates.sorted().filter { index in
            let section = sections[index]
            return !section.excluded.contains { $0.matches(bytes, slashes: slashes) } && section.files.contains { $0.matches(bytes, slashes: slashes) }
        }.map { sections[$0].name }
    }

    /// `F`, `X`, … for a line `<capital letter>:`, else nil.
    private static func entryType(_ line: Substring) -> Character? {
        guard let first = line.first, first.isASCII, first.isUppercase, line.dropFirst().first == ":" else { return nil }
        return first
    }
}

/// One `F:`/`X:` pattern, compiled.
struct FilePattern: Sendable {
    enum Token: Sendable, Hashable {
        case byte(UInt8)
        case anyByte
        case anyRun
        case set([ClosedRange<UInt8>], negated: Bool)
    }

    var tokens: [Token]
    /// Ends in `/`, written so or added because the source tree has that directory: everything below.
    var isDirectory: Bool
    var slashes: Int
    /// The first path component of the literal start, when the literal start holds a `/`.
    var firstComponent: Substring?

    init(_ text: String, isDirectory: (String) -> Bool, fail: (String) throws(CoverageInputError) -> Never) throws(CoverageInputError) {
        guard !text.isEmpty else { try fail("an empty pattern") }
        guard !text.hasPrefix("/") else { try fail("patterns are relative to the top of the source tree; remove the leading /") }
        var bytes = Array(text.utf8)
        // get_maintainer.pl asks the tree whether the pattern names a directory after turning
        // `.`, `*` and `?` into regex syntax, so only a pattern without them can be found to be one.
        let plain = !bytes.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }
        if bytes.last != UInt8(ascii: "/"), plain, isDirectory(text) { bytes.append(UInt8(ascii: "/")) }
        self.isDirectory = bytes.last == UInt8(ascii: "/")
        slashes = bytes.count { $0 == UInt8(ascii: "/") }
        var tokens: [Token] = []
        var index = 0
        var literalEnd: Int?
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "*"):
                literalEnd = literalEnd ?? index
                if tokens.last != .anyRun { tokens.append(.anyRun) }
            case UInt8(ascii: "?"):
                literalEnd = literalEnd ?? index
                tokens.append(.anyByte)
            case UInt8(ascii: "["):
                literalEnd = literalEnd ?? index
                var at = index + 1
                let negated = at < bytes.count && bytes[at] == UInt8(ascii: "^")
                if negated { at += 1 }
                var ranges: [ClosedRange<UInt8>] = []
                var first = true
                while at < bytes.count, bytes[at] != UInt8(ascii: "]") || first {
                    first = false
                    if at + 2 < bytes.count, bytes[at + 1] == UInt8(ascii: "-"), bytes[at + 2] != UInt8(ascii: "]") {
                        guard bytes[at] <= bytes[at + 2] else { try fail("the range \(Unicode.Scalar(bytes[at]))-\(Unicode.Scalar(bytes[at + 2])) runs backwards") }
                        ranges.append(bytes[at]...bytes[at + 2])
                        at += 3
                    } else {
                        ranges.append(bytes[at]...bytes[at])
                        at += 1
                    }
                }
                guard at < bytes.count else { try fail("a [ without its ]") }
                tokens.append(.set(ranges, negated: negated))
                index = at
            default:
                tokens.append(.byte(byte))
            }
            index += 1
        }
        self.tokens = tokens
        let literal = bytes[..<(literalEnd ?? bytes.count)]
        if let slash = literal.firstIndex(of: UInt8(ascii: "/")) {
            firstComponent = Substring(String(decoding: literal[..<slash], as: UTF8.self))
        }
    }

    /// Whether the pattern matches the start of `path` (which holds `slashes` slashes), and, for a
    /// pattern that is not a directory, `path` is as deep as the pattern.
    func matches(_ path: [UInt8], slashes pathSlashes: Int) -> Bool {
        guard isDirectory || pathSlashes == slashes else { return false }
        // Wildcard matching with one backtrack point (the last `*`); the pattern need only match a
        // prefix, so running out of pattern is a match.
        var p = 0
        var i = 0
        var star: (p: Int, i: Int)?
        while true {
            if p == tokens.count { return true }
            if tokens[p] == .anyRun {
                star = (p, i)
                p += 1
                continue
            }
            if i < path.count, accepts(tokens[p], path[i]) {
                p += 1
                i += 1
                continue
            }
            guard let last = star, last.i < path.count else { return false }
            star = (last.p, last.i + 1)
            p = last.p + 1
            i = last.i + 1
        }
    }

    private func accepts(_ token: Token, _ byte: UInt8) -> Bool {
        switch token {
        case .byte(let expected): byte == expected
        case .anyByte: true
        case .anyRun: true
        case .set(let ranges, let negated): ranges.contains { $0.contains(byte) } != negated
        }
    }
}
