/// Strings already made from the mapped sections, by where their bytes are: function names by
/// their string, file names by (directory, name, compilation directory). Linkers merge equal
/// strings in `.debug_str` and `.debug_line_str`, so the headers' names shared by many units are
/// made once. One per thread.
final class StringCache {
    struct FileKey: Hashable {
        var directory: UnsafePointer<CChar>?
        var name: UnsafePointer<CChar>
        var compilationDirectory: UnsafePointer<CChar>?
    }

    // One per thread: no access can overlap another. The map holds indexes into `made`, so
    // that growing it moves no strings.
    @exclusivity(unchecked) private var strings = IntegerMap<Int32>(capacity: 16384)
    @exclusivity(unchecked) private var made: [String] = []
    @exclusivity(unchecked) private var files: [FileKey: String] = [:]

    func string(_ text: UnsafePointer<CChar>) -> String {
        let key = Int(bitPattern: UInt(bitPattern: text))
        if let known = strings[key] { return made[Int(known)] }
        let string = String(cString: text)
        strings[key] = Int32(made.count)
        made.append(string)
        return string
    }

    /// `directory/name` (the name alone when absolute or its directory unknown), joined with the
    /// compilation directory when still relative: binutils' and libdw's spelling, trailing
    /// slashes kept.
    func fileName(directory: UnsafePointer<CChar>?, name: UnsafePointer<CChar>, compilationDirectory: UnsafePointer<CChar>?) -> String {
        let key = FileKey(directory: directory, name: name, compilationDirectory: compilationDirectory)
        if let known = files[key] { return known }
        var made = string(name)
        if name.pointee != 0x2f, let directory {
            made = string(directory) + "/" + made
        }
        if !made.hasPrefix("/"), let compilationDirectory { made = string(compilationDirectory) + "/" + made }
        files[key] = made
        return made
    }
}

/// One compilation unit read once for symbolization: its functions and inlined subroutines with
/// their address ranges and nesting (one walk over its DIEs), and its line table: for a batch, the
/// program run once for the batch's sorted PCs; for single lookups, its rows sorted and
/// binary-searched. A value type, so that lookups in a batch pay no exclusivity checks.
///
/// Names and declarations are read when a frame first needs them, following
/// `DW_AT_abstract_origin` and `DW_AT_specification` (into another unit for `DW_FORM_ref_addr`).
struct UnitSymbols {
    /// A function or inlined subroutine with code.
    private struct Scope {
        /// Its DIE's offset in `.debug_info`.
        var offset: Int
        /// The function this one is inlined into (lexical blocks skipped); -1 for a function.
        var parent: Int32
        var firstChild: Int32 = -1
        var nextSibling: Int32 = -1
        /// Its ranges in `rangeStarts`/`rangeEnds`.
        var ranges: Range<Int>
        /// For an inlined subroutine, `DW_AT_call_file`, `DW_AT_call_line` and `DW_AT_call_column`.
        var callFile: UInt64?
        var callLine: Int = 0
        var callColumn: Int = 0
        /// When `DW_AT_abstract_origin` is the only attribute naming it: where that value is in
        /// `.debug_info` (-1 otherwise) and its form, read when the scope is described.
        var originValue = -1
        var originForm: UInt64 = 0
    }

    private let directory: UnitDirectory
    private let strings: StringCache
    private let unit: CompileUnit
    private let abbreviations: AbbreviationTable
    private var lines: LineTable?
    /// File names as printed, by line-table file index, filled on first use.
    private var fileNames: [String?]
    private var fileNamesRead: [Bool]
    /// Plain values only, so that recording one copies a few words.
    private var scopes: [Scope] = []
    /// What the scopes' frames say, in the order they were read: name and declaration.
    private var descriptions: [Description] = []
    /// By scope, its entry in `descriptions`; -1 until it is read. (Numbers only, so that making
    /// the table for every scope of the unit costs a fill, not a string per scope.)
    private var descriptionOf: [Int32] = []
    private var rangeStarts: [UInt64] = []
    private var rangeEnds: [UInt64] = []
    /// The ranges of every function (the scopes a lookup starts from), sorted by start, and the
    /// largest end among the first `i + 1` of them.
    private var functionRanges: [(start: UInt64, end: UInt64, scope: Int32)] = []
    private var functionReach: [UInt64] = []
    /// What each DIE read for naming resolved to, by offset (abstract origins are shared by
    /// every inlined copy).
    private var resolved = IntegerMap<Resolved>()
    /// Units other than this one that a reference led to: their abbreviations and file tables.
    private var foreign: [Int: (abbreviations: AbbreviationTable, files: [LineTable.FileEntry])] = [:]

    /// Reads unit `index` of `directory`; with `batch` (sorted PCs), only the scopes that contain
    /// one of them, and not the line table's rows: answer them with ``frames(ofBatch:_:)``.
    init(directory: UnitDirectory, unit index: Int, batch: [UInt64]? = nil, strings: StringCache) throws(DWARFError) {
        self.directory = directory
        self.strings = strings
        let unit = directory.units[index]
        self.unit = unit
        let sections = directory.sections
        abbreviations = try AbbreviationTable(sections.abbrev, offset: unit.header.abbreviationOffset, format: unit.header.format)
        if let program = unit.lineProgram {
            lines = try LineTable(sections: sections, offset: program, compilationDirectory: unit.compilationDirectory, rows: batch == nil)
        }
        fileNames = Array(repeating: nil, count: lines?.files.count ?? 0)
        fileNamesRead = Array(repeating: false, count: fileNames.count)
        try collectScopes(batch: batch)
        descriptionOf = Array(repeating: -1, count: scopes.count)
        resolved = IntegerMap(capacity: scopes.count)
        functionRanges.sort { $0.start < $1.start }
        var farthest: UInt64 = 0
        functionReach = functionRanges.map { range in
            farthest = max(farthest, range.end)
            return farthest
        }
    }

    /// The frames of `pc`, innermost first: the innermost scope with the line table's line, then
    /// each function it is inlined into with the call's file and line. Empty when this unit has
    /// neither a line nor a function there. The innermost function is `nil` when no DWARF
    /// function covers `pc` (assembly).
    mutating func frames(at pc: UInt64) throws(DWARFError) -> [SymbolFrame] {
        try frames(scope: innermostScope(at: pc), row: lines.flatMap { lines in lines.row(at: pc).map { lines.rows[$0] } })
    }

    /// ``frames(at:)`` for each PC of the batch the unit was read for (sorted, lowest first),
    /// given to `body` with its position in the batch: the line program runs once for all of
    /// them, and the scopes are chosen level by level for all of them.
    mutating func frames(ofBatch pcs: [UInt64], _ body: (Int, [SymbolFrame]) -> Void) throws(DWARFError) {
        let rows = try lines?.rows(covering: pcs)
        let innermost = innermostScopes(of: pcs)
        for position in pcs.indices {
            let scope = innermost[position]
            body(position, try frames(scope: scope >= 0 ? scope : nil, row: rows?[position] ?? nil))
        }
    }

    private mutating func frames(scope: Int32?, row: LineRow?) throws(DWARFError) -> [SymbolFrame] {
        guard row != nil || scope != nil else { return [] }
        // What the frames name is read first.
        var depth = 1
        if let scope {
            try describe(scope)
            var callee = scope
            while scopes[Int(callee)].parent >= 0 {
                callee = scopes[Int(callee)].parent
                try describe(callee)
                depth += 1
            }
        }
        let innermost = SymbolFrame(
            function: scope.flatMap { descriptions[Int(descriptionOf[Int($0)])].name }, file: row.flatMap { fileName(Int($0.file)) } ?? "??",
            line: row.map { Int(Int32(bitPattern: $0.line)) } ?? 0, column: row.map { Int(Int32(bitPattern: $0.column)) } ?? 0,
            discriminator: row.map { Int($0.discriminator) } ?? 0, functionFile: scope.flatMap { descriptions[Int(descriptionOf[Int($0)])].file },
            functionLine: scope.map { descriptions[Int(descriptionOf[Int($0)])].line } ?? 0)
        // Most PCs have one frame: an array literal allocates it exactly.
        guard depth > 1 else { return [innermost] }
        var frames: [SymbolFrame] = []
        frames.reserveCapacity(depth)
        frames.append(innermost)
        // Each inlined scope's call, in the function it is inlined into: `DW_AT_call_file`,
        // `DW_AT_call_line` and `DW_AT_call_column`.
        var callee = scope ?? -1
        while callee >= 0 {
            let inlined = scopes[Int(callee)]
            guard inlined.parent >= 0 else { break }
            let caller = Int(descriptionOf[Int(inlined.parent)])  // the caller's description
            frames.append(SymbolFrame(
                function: descriptions[caller].name, file: inlined.callFile.flatMap { fileName(Int(clamping: $0)) } ?? "??",
                line: inlined.callLine, column: inlined.callColumn, functionFile: descriptions[caller].file, functionLine: descriptions[caller].line))
            callee = inlined.parent
        }
        return frames
    }

    /// Records the functions and inlined subroutines with code among the unit's DIEs (DWARF 5
    /// §3.3, §3.3.8), looking through lexical blocks (§3.5) and skipping every other subtree
    /// (by `DW_AT_sibling` where it has one); a scope containing no PC of `batch` is skipped with
    /// what is inlined in it.
    private mutating func collectScopes(batch: [UInt64]?) throws(DWARFError) {
        let sections = directory.sections
        let format = unit.header.format
        let unitOffset = unit.header.offset
        var reader = sections.info.reader(at: unit.header.dieOffset, end: unit.header.end)
        let topCode = try reader.uleb()
        guard topCode != 0 else { return }
        guard let top = abbreviations.index(of: topCode) else { throw reader.error("abbreviation code \(topCode) not in the unit's table", at: unit.header.dieOffset) }
        _ = try skipAttributes(of: top, &reader)
        guard abbreviations.entries[top].hasChildren else { return }
        // The scope each open level of children is inlined into.
        var enclosing: [Int32] = [-1]
        while !enclosing.isEmpty, !reader.isAtEnd {
            let dieOffset = reader.offset
            let code = try reader.uleb()
            if code == 0 {
                enclosing.removeLast()
                continue
            }
            guard let index = abbreviations.index(of: code) else { throw reader.error("abbreviation code \(code) not in the unit's table", at: dieOffset) }
            let abbreviation = abbreviations.entries[index]
            switch abbreviation.kind {
            case .other:
                let sibling = try skipAttributes(of: index, &reader)
                if abbreviation.hasChildren { try skipChildren(&reader, sibling: sibling, die: dieOffset) }
            case .lexicalBlock:
                _ = try skipAttributes(of: index, &reader)
                if abbreviation.hasChildren { enclosing.append(enclosing[enclosing.count - 1]) }
            case .scope:
                let parent = abbreviation.tag == Tag.inlinedSubroutine ? enclosing[enclosing.count - 1] : -1
                if let opened = try collectScope(at: dieOffset, index, parent: parent, &reader, batch: batch) { enclosing.append(opened) }
            }
        }
    }

    /// Reads a function or inlined subroutine DIE (after its code) and records it when it has
    /// code containing a batch PC; skips its children otherwise. Returns the scope its children
    /// are inlined into when they are to be read. Kept out of the walk's loop, which most DIEs
    /// pass through without it.
    @inline(never)
    private mutating func collectScope(at dieOffset: Int, _ index: Int, parent: Int32, _ reader: inout ByteReader, batch: [UInt64]?) throws(DWARFError) -> Int32? {
        let sections = directory.sections
        let format = unit.header.format
        let unitOffset = unit.header.offset
        let abbreviation = abbreviations.entries[index]
        var low: AttributeValue?
        var high: AttributeValue?
        var rangeList: AttributeValue?
        var sibling: Int?
        var scope = Scope(offset: dieOffset, parent: parent, ranges: 0..<0)
        // By index: a slice of the specifications would retain and release their array per DIE.
        for attribute in abbreviation.attributes {
            let specification = abbreviations.specifications[attribute]
            switch specification.name {
            case Attribute.lowPC, Attribute.highPC, Attribute.ranges, Attribute.sibling, Attribute.callFile, Attribute.callLine, Attribute.callColumn:
                let value = try readForm(specification.form, implicitConst: specification.implicitConst, &reader, format, unitOffset: unitOffset)
                switch specification.name {
                case Attribute.lowPC: low = value
                case Attribute.highPC: high = value
                case Attribute.ranges: rangeList = value
                case Attribute.sibling: if case .reference(let target) = value { sibling = target }
                case Attribute.callFile: scope.callFile = value.unsigned
                case Attribute.callLine: scope.callLine = value.unsigned.map { Int(clamping: $0) } ?? 0
                default: scope.callColumn = value.unsigned.map { Int(clamping: $0) } ?? 0
                }
            default:
                if specification.name == Attribute.abstractOrigin, abbreviation.namedByOriginOnly {
                    scope.originValue = reader.offset
                    scope.originForm = specification.form
                }
                if specification.size >= 0 { try reader.skip(specification.size) } else { try skipForm(specification.form, &reader, format) }
            }
        }
        let first = rangeStarts.count
        let lowAddress = try low.flatMap { value throws(DWARFError) in try unit.resolveAddress(value, sections: sections) }
        try unit.appendRanges(low: lowAddress, high: high, ranges: rangeList, sections: sections, starts: &rangeStarts, ends: &rangeEnds)
        // Declarations and abstract instances have no code, nor anything inlined in them.
        guard rangeStarts.count > first, rangesContain(batch, first..<rangeStarts.count) else {
            rangeStarts.removeSubrange(first...)
            rangeEnds.removeSubrange(first...)
            if abbreviation.hasChildren { try skipChildren(&reader, sibling: sibling, die: dieOffset) }
            return nil
        }
        let scopeIndex = Int32(scopes.count)
        scope.ranges = first..<rangeStarts.count
        if scope.parent >= 0 {
            scope.nextSibling = scopes[Int(scope.parent)].firstChild
            scopes[Int(scope.parent)].firstChild = scopeIndex
        } else {
            for range in first..<rangeStarts.count { functionRanges.append((rangeStarts[range], rangeEnds[range], scopeIndex)) }
        }
        scopes.append(scope)
        return abbreviation.hasChildren ? scopeIndex : nil
    }

    /// Skips a DIE's attribute values; returns its `DW_AT_sibling` target, if it has one.
    @inline(__always)
    /// `mutating` only so that a walk, itself mutating, passes `self` by reference rather than a copy.
    private mutating func skipAttributes(of index: Int, _ reader: inout ByteReader) throws(DWARFError) -> Int? {
        let abbreviation = abbreviations.entries[index]
        if abbreviation.sibling < 0 {
            if abbreviation.fixedSize >= 0 {
                try reader.skip(abbreviation.fixedSize)
                return nil
            }
            for attribute in abbreviation.attributes {
                let specification = abbreviations.specifications[attribute]
                if specification.size >= 0 { try reader.skip(specification.size) } else { try skipForm(specification.form, &reader, unit.header.format) }
            }
            return nil
        }
        var sibling: Int?
        for attribute in abbreviation.attributes {
            let specification = abbreviations.specifications[attribute]
            if attribute - abbreviation.attributes.lowerBound == abbreviation.sibling {
                let value = try readForm(specification.form, implicitConst: specification.implicitConst, &reader, unit.header.format, unitOffset: unit.header.offset)
                if case .reference(let target) = value { sibling = target }
            } else if specification.size >= 0 {
                try reader.skip(specification.size)
            } else {
                try skipForm(specification.form, &reader, unit.header.format)
            }
        }
        return sibling
    }

    /// Moves past the children of the DIE at `die`: to its sibling when it names one (which must
    /// lie past the DIE, inside the unit), else over each child.
    /// `mutating` only so that a walk, itself mutating, passes `self` by reference rather than a copy.
    private mutating func skipChildren(_ reader: inout ByteReader, sibling: Int?, die: Int) throws(DWARFError) {
        if let sibling {
            guard sibling > die, sibling <= unit.header.end else { throw reader.error("DW_AT_sibling 0x\(String(sibling, radix: 16)) does not point forward inside the unit", at: die) }
            // A sibling before the children's end is malformed; reading on from it stays inside the unit.
            reader.offset = max(sibling, reader.offset)
            return
        }
        var depth = 1
        while depth > 0, !reader.isAtEnd {
            let childOffset = reader.offset
            let code = try reader.uleb()
            if code == 0 {
                depth -= 1
                continue
            }
            guard let index = abbreviations.index(of: code) else { throw reader.error("abbreviation code \(code) not in the unit's table", at: childOffset) }
            let childSibling = try skipAttributes(of: index, &reader)
            guard abbreviations.entries[index].hasChildren else { continue }
            if let childSibling {
                guard childSibling > childOffset, childSibling <= unit.header.end else {
                    throw reader.error("DW_AT_sibling 0x\(String(childSibling, radix: 16)) does not point forward inside the unit", at: childOffset)
                }
                reader.offset = max(childSibling, reader.offset)
            } else {
                depth += 1
            }
        }
    }

    /// Whether the ranges (of `rangeStarts`/`rangeEnds`) contain a PC of the batch (any PC without one).
    /// `mutating` only so that the walk, itself mutating, passes `self` by reference rather than a copy.
    private mutating func rangesContain(_ batch: [UInt64]?, _ ranges: Range<Int>) -> Bool {
        guard let batch else { return true }
        for range in ranges {
            let low = batch.firstIndex(notBelow: rangeStarts[range])
            if low < batch.count, batch[low] < rangeEnds[range] { return true }
        }
        return false
    }

    /// The scope of `pc` the way binutils chooses it: the one whose range containing `pc` is the
    /// smallest, a later (deeper) DIE on a tie. It starts from the functions and descends into
    /// what is inlined in them.
    private func innermostScope(at pc: UInt64) -> Int32? {
        var best: Int32 = -1
        var bestSize = UInt64.max
        var low = 0
        var high = functionRanges.count
        while low < high {
            let middle = (low + high) / 2
            if functionRanges[middle].start <= pc { low = middle + 1 } else { high = middle }
        }
        var index = low - 1
        while index >= 0, functionReach[index] > pc {
            let range = functionRanges[index]
            if range.end > pc { consider(range.scope, size: range.end - range.start, best: &best, bestSize: &bestSize) }
            index -= 1
        }
        guard best >= 0 else { return nil }
        while true {
            var deeper: Int32 = -1
            var deeperSize = UInt64.max
            var child = scopes[Int(best)].firstChild
            while child >= 0 {
                for range in scopes[Int(child)].ranges where rangeStarts[range] <= pc && pc < rangeEnds[range] {
                    consider(child, size: rangeEnds[range] - rangeStarts[range], best: &deeper, bestSize: &deeperSize)
                }
                child = scopes[Int(child)].nextSibling
            }
            guard deeper >= 0 else { return best }
            best = deeper
        }
    }

    /// ``innermostScope(at:)`` of each of `pcs` (sorted), -1 for none: the functions first, then
    /// each level of inlined scopes for the PCs whose scope at the level above is their parent,
    /// each scope's ranges finding their PCs by binary search.
    private func innermostScopes(of pcs: [UInt64]) -> [Int32] {
        var best = [Int32](repeating: -1, count: pcs.count)
        var bestSize = [UInt64](repeating: .max, count: pcs.count)
        for range in functionRanges {
            var position = pcs.firstIndex(notBelow: range.start)
            while position < pcs.count, pcs[position] < range.end {
                consider(range.scope, size: range.end - range.start, best: &best[position], bestSize: &bestSize[position])
                position += 1
            }
        }
        // The inlined scopes by depth (a parent comes before its children in `scopes`).
        var depths = [Int32](repeating: 0, count: scopes.count)
        var deepest: Int32 = 0
        for index in scopes.indices where scopes[index].parent >= 0 {
            depths[index] = depths[Int(scopes[index].parent)] + 1
            deepest = max(deepest, depths[index])
        }
        guard deepest > 0 else { return best }
        var starts = [Int](repeating: 0, count: Int(deepest) + 2)
        for depth in depths { starts[Int(depth) + 1] += 1 }
        for depth in 0...Int(deepest) { starts[depth + 1] += starts[depth] }
        var byDepth = [Int32](repeating: 0, count: scopes.count)
        for index in scopes.indices {
            byDepth[starts[Int(depths[index])]] = Int32(index)
            starts[Int(depths[index])] += 1
        }
        // `starts[d]` now ends depth d; depth 0 (the functions) is done.
        var level = starts[0]
        for depth in 1...Int(deepest) {
            for scope in byDepth[level..<starts[depth]] {
                let parent = scopes[Int(scope)].parent
                for range in scopes[Int(scope)].ranges {
                    let start = rangeStarts[range]
                    let end = rangeEnds[range]
                    var position = pcs.firstIndex(notBelow: start)
                    while position < pcs.count, pcs[position] < end {
                        let current = best[position]
                        if current == parent {
                            // The first of the parent's children to contain the PC.
                            best[position] = scope
                            bestSize[position] = end - start
                        } else if current >= 0, Int(depths[Int(current)]) == depth, scopes[Int(current)].parent == parent {
                            consider(scope, size: end - start, best: &best[position], bestSize: &bestSize[position])
                        }
                        position += 1
                    }
                }
            }
            level = starts[depth]
        }
        return best
    }

    private func consider(_ scope: Int32, size: UInt64, best: inout Int32, bestSize: inout UInt64) {
        if size < bestSize || (size == bestSize && scope > best) {
            best = scope
            bestSize = size
        }
    }

    /// What a DIE says about its name and declaration, and where it leads.
    private struct Naming {
        var unit: Int?
        var name: AttributeValue?
        var linkageName: AttributeValue?
        var declFile: UInt64?
        var declLine: UInt64?
        var next: Int?
    }

    /// What a DIE and those its `DW_AT_abstract_origin` (else `DW_AT_specification`) lead to say,
    /// each attribute taken from the first DIE along that chain that has it (libdw's
    /// `dwarf_attr_integrate`, which follows nine DIEs at most): places in the mapped sections,
    /// made into strings only for the scopes a frame names.
    private struct Resolved {
        var linkageName: UnsafePointer<CChar>?
        var hasLinkageName = false
        var name: UnsafePointer<CChar>?
        var hasName = false
        var declFile: DeclaredFile?
        var declLine: Int?
    }

    /// A `DW_AT_decl_file`: an entry of this unit's file table, or of another unit's (a
    /// `DW_FORM_ref_addr` led there).
    private enum DeclaredFile {
        case entry(Int)
        case foreign(directory: UnsafePointer<CChar>?, name: UnsafePointer<CChar>)
    }

    /// A scope's name and declaration, as its frames print them.
    private struct Description {
        var name: String?
        var file: String?
        var line = 0
    }

    /// The scopes' own DIEs are read once each (their results are kept in the scope); the DIEs
    /// they lead to are kept in `resolved`, shared by every inlined copy.
    private mutating func resolve(_ offset: Int, depth: Int = 0) throws(DWARFError) -> Resolved {
        if depth > 0, let known = resolved[offset] { return known }
        let own = try readNaming(at: offset)
        var result = Resolved()
        if let next = own.next, depth < 8 { result = try resolve(next, depth: depth + 1) }
        if own.linkageName != nil {
            result.linkageName = try string(own.linkageName, in: own.unit)
            result.hasLinkageName = true
        }
        if own.name != nil {
            result.name = try string(own.name, in: own.unit)
            result.hasName = true
        }
        if let line = own.declLine { result.declLine = line <= UInt64(Int32.max) ? Int(line) : 0 }
        if let index = own.declFile {
            if let other = own.unit {
                // Named in the other unit's file table, joined with this unit's compilation directory (libdw's reading).
                let files = try foreignUnit(other).files
                if index < UInt64(files.count), let name = files[Int(index)].name { result.declFile = .foreign(directory: files[Int(index)].directory, name: name) }
            } else if let files = lines?.files, index < UInt64(files.count), files[Int(index)].name != nil {
                result.declFile = .entry(Int(index))
            } else {
                result.declFile = nil
            }
        }
        if depth > 0 { resolved[offset] = result }
        return result
    }

    /// Reads the naming attributes of the DIE at `offset`, in this unit or another (`unit` then
    /// names it in the directory).
    private mutating func readNaming(at offset: Int) throws(DWARFError) -> Naming {
        guard offset < unit.header.dieOffset || offset >= unit.header.end else {
            return try Self.readNaming(at: offset, sections: directory.sections, abbreviations, unit.header, unit: nil)
        }
        guard let index = directory.unit(containing: offset) else {
            throw DWARFError(section: .info, offset: offset, problem: "a reference to a DIE outside every unit")
        }
        let table = try foreignUnit(index).abbreviations
        return try Self.readNaming(at: offset, sections: directory.sections, table, directory.units[index].header, unit: index)
    }

    private static func readNaming(at offset: Int, sections: DebugSections, _ table: AbbreviationTable, _ header: UnitHeader, unit ownerIndex: Int?) throws(DWARFError)
        -> Naming
    {
        var reader = sections.info.reader(at: offset, end: header.end)
        let code = try reader.uleb()
        guard code != 0, let index = table.index(of: code) else { throw reader.error("a reference to a DIE with abbreviation code \(code), not in its unit's table", at: offset) }
        var naming = Naming(unit: ownerIndex)
        var origin: Int?
        var specification: Int?
        let format = header.format
        for attribute in table.specifications[table.entries[index].attributes] {
            switch attribute.name {
            case Attribute.name, Attribute.linkageName, Attribute.declFile, Attribute.declLine, Attribute.abstractOrigin, Attribute.specification:
                let value = try readForm(attribute.form, implicitConst: attribute.implicitConst, &reader, format, unitOffset: header.offset)
                switch attribute.name {
                case Attribute.name: naming.name = value
                case Attribute.linkageName: naming.linkageName = value
                case Attribute.declFile: naming.declFile = value.unsigned
                case Attribute.declLine: naming.declLine = value.unsigned
                case Attribute.abstractOrigin: if case .reference(let target) = value { origin = target }
                default: if case .reference(let target) = value { specification = target }
                }
            default:
                if attribute.size >= 0 { try reader.skip(attribute.size) } else { try skipForm(attribute.form, &reader, format) }
            }
        }
        naming.next = origin ?? specification
        return naming
    }

    private mutating func foreignUnit(_ index: Int) throws(DWARFError) -> (abbreviations: AbbreviationTable, files: [LineTable.FileEntry]) {
        if let known = foreign[index] { return known }
        let other = directory.units[index]
        let table = try AbbreviationTable(directory.sections.abbrev, offset: other.header.abbreviationOffset, format: other.header.format)
        var files: [LineTable.FileEntry] = []
        if let program = other.lineProgram {
            files = try LineTable(sections: directory.sections, offset: program, compilationDirectory: other.compilationDirectory, rows: false).files
        }
        foreign[index] = (table, files)
        return (table, files)
    }

    /// The text of string `value` read in its unit (this one when `unit` is nil); nil when empty.
    /// `mutating` only so that ``resolve(_:depth:)`` passes `self` by reference rather than a copy.
    private mutating func string(_ value: AttributeValue?, in unitIndex: Int?) throws(DWARFError) -> UnsafePointer<CChar>? {
        guard let value else { return nil }
        let text: UnsafePointer<CChar>?
        if let unitIndex {
            text = try directory.units[unitIndex].resolveString(value, sections: directory.sections)
        } else {
            text = try unit.resolveString(value, sections: directory.sections)
        }
        guard let text, text.pointee != 0 else { return nil }
        return text
    }

    /// Reads the scope's `DW_AT_linkage_name`, else its `DW_AT_name` (what addr2line prints for
    /// C), and where its function is defined: `DW_AT_decl_file` (in the file table of the unit of
    /// the DIE that has it, a relative name joined with this unit's compilation directory) and
    /// `DW_AT_decl_line` — each through `DW_AT_abstract_origin` and `DW_AT_specification`; once.
    private mutating func describe(_ scope: Int32) throws(DWARFError) {
        guard descriptionOf[Int(scope)] < 0 else { return }
        let found: Resolved
        if scopes[Int(scope)].originValue >= 0 {
            // What naming the scope's own DIE would find: its origin's, read here as there.
            var reader = directory.sections.info.reader(at: scopes[Int(scope)].originValue, end: unit.header.end)
            let origin = try readForm(scopes[Int(scope)].originForm, implicitConst: 0, &reader, unit.header.format, unitOffset: unit.header.offset)
            if case .reference(let target) = origin { found = try resolve(target, depth: 1) } else { found = Resolved() }
        } else {
            found = try resolve(scopes[Int(scope)].offset)
        }
        let name = found.hasLinkageName ? found.linkageName ?? (found.hasName ? found.name : nil) : found.name
        let description = Description(
            name: name.map(strings.string),
            file: found.declFile.flatMap { file in
                switch file {
                case .entry(let index): fileName(index)
                case .foreign(let directory, let name): strings.fileName(directory: directory, name: name, compilationDirectory: unit.compilationDirectory)
                }
            },
            line: found.declLine ?? 0)
        descriptionOf[Int(scope)] = Int32(descriptions.count)
        descriptions.append(description)
    }

    /// File `index` of the line table, joined with the compilation directory when relative, as
    /// binutils does: `comp_dir/dir/name` for a relative directory, `dir/name` for an absolute one.
    private mutating func fileName(_ index: Int) -> String? {
        guard index >= 0, index < fileNames.count, let lines else { return nil }
        if fileNamesRead[index] { return fileNames[index] }
        let entry = lines.files[index]
        let name = entry.name.map { strings.fileName(directory: entry.directory, name: $0, compilationDirectory: unit.compilationDirectory) }
        fileNames[index] = name
        fileNamesRead[index] = true
        return name
    }
}
