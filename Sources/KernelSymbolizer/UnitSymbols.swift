/// One compilation unit read once for symbolization: its functions and inlined subroutines with
/// their address ranges and nesting (one walk over its DIEs), and its line table, which is then
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
        var name: String? = nil
        var named = false
        /// Its subprogram's declaration (file, line), once read.
        var declaration: (file: String?, line: Int)? = nil
        /// For an inlined scope, the frame of its call in `parent`, once built.
        var call: SymbolFrame? = nil
    }

    private let directory: UnitDirectory
    private let unit: CompileUnit
    private let abbreviations: AbbreviationTable
    private let compilationDirectory: String?
    private var lines: LineTable?
    /// File names as printed, by line-table file index, filled on first use.
    private var fileNames: [String?]
    private var fileNamesRead: [Bool]
    private var scopes: [Scope] = []
    private var rangeStarts: [UInt64] = []
    private var rangeEnds: [UInt64] = []
    /// The ranges of every function (the scopes a lookup starts from), sorted by start, and the
    /// largest end among the first `i + 1` of them.
    private var functionRanges: [(start: UInt64, end: UInt64, scope: Int32)] = []
    private var functionReach: [UInt64] = []
    /// Units other than this one that a reference led to: their abbreviations and file tables.
    private var foreign: [Int: (abbreviations: AbbreviationTable, files: [String?])] = [:]

    /// Reads unit `index` of `directory`; with `batch` (sorted PCs), only the scopes that contain
    /// one of them.
    init(directory: UnitDirectory, unit index: Int, batch: [UInt64]? = nil) throws(DWARFError) {
        self.directory = directory
        let unit = directory.units[index]
        self.unit = unit
        let sections = directory.sections
        abbreviations = try AbbreviationTable(sections.abbrev, offset: unit.header.abbreviationOffset, format: unit.header.format)
        compilationDirectory = unit.compilationDirectory.map { String(cString: $0) }
        if let program = unit.lineProgram {
            lines = try LineTable(sections: sections, offset: program, compilationDirectory: unit.compilationDirectory)
        }
        fileNames = Array(repeating: nil, count: lines?.files.count ?? 0)
        fileNamesRead = Array(repeating: false, count: fileNames.count)
        try collectScopes(batch: batch)
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
        let scope = innermostScope(at: pc)
        let row = lines?.row(at: pc)
        guard row != nil || scope != nil else { return [] }
        var innermost = SymbolFrame(function: try scope.flatMap { scope throws(DWARFError) in try name(of: scope) }, file: "??", line: 0)
        if let scope {
            let declared = try declaration(of: scope)
            innermost.functionFile = declared.file
            innermost.functionLine = declared.line
        }
        if let row, let lines {
            let values = lines.rows[row]
            if let name = fileName(Int(values.file)) { innermost.file = name }
            innermost.line = Int(Int32(bitPattern: values.line))
            innermost.column = Int(Int32(bitPattern: values.column))
            innermost.discriminator = Int(values.discriminator)
        }
        var frames = [innermost]
        var callee = scope ?? -1
        while callee >= 0, scopes[Int(callee)].parent >= 0 {
            frames.append(try call(of: callee))
            callee = scopes[Int(callee)].parent
        }
        return frames
    }

    /// The frame of an inlined scope's call: the function it is inlined into, at the call's
    /// `DW_AT_call_file`, `DW_AT_call_line` and `DW_AT_call_column`.
    private mutating func call(of scope: Int32) throws(DWARFError) -> SymbolFrame {
        if let known = scopes[Int(scope)].call { return known }
        let inlined = scopes[Int(scope)]
        let declared = try declaration(of: inlined.parent)
        let frame = SymbolFrame(
            function: try name(of: inlined.parent), file: inlined.callFile.flatMap { fileName(Int(clamping: $0)) } ?? "??",
            line: inlined.callLine, column: inlined.callColumn, functionFile: declared.file, functionLine: declared.line)
        scopes[Int(scope)].call = frame
        return frame
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
                var low: AttributeValue?
                var high: AttributeValue?
                var rangeList: AttributeValue?
                var sibling: Int?
                var scope = Scope(offset: dieOffset, parent: abbreviation.tag == Tag.inlinedSubroutine ? enclosing[enclosing.count - 1] : -1, ranges: 0..<0)
                for specification in abbreviations.specifications[abbreviation.attributes] {
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
                        try skipForm(specification.form, &reader, format)
                    }
                }
                let first = rangeStarts.count
                let lowAddress = try low.flatMap { value throws(DWARFError) in try unit.resolveAddress(value, sections: sections) }
                try unit.forEachRange(low: lowAddress, high: high, ranges: rangeList, sections: sections) { start, end in
                    rangeStarts.append(start)
                    rangeEnds.append(end)
                }
                // Declarations and abstract instances have no code, nor anything inlined in them.
                guard rangeStarts.count > first, Self.contains(batch, rangeStarts[first...], rangeEnds[first...]) else {
                    rangeStarts.removeSubrange(first...)
                    rangeEnds.removeSubrange(first...)
                    if abbreviation.hasChildren { try skipChildren(&reader, sibling: sibling, die: dieOffset) }
                    continue
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
                if abbreviation.hasChildren { enclosing.append(scopeIndex) }
            }
        }
    }

    /// Skips a DIE's attribute values; returns its `DW_AT_sibling` target, if it has one.
    @inline(__always)
    private func skipAttributes(of index: Int, _ reader: inout ByteReader) throws(DWARFError) -> Int? {
        let abbreviation = abbreviations.entries[index]
        if abbreviation.sibling < 0 {
            if abbreviation.fixedSize >= 0 {
                try reader.skip(abbreviation.fixedSize)
                return nil
            }
            for specification in abbreviations.specifications[abbreviation.attributes] {
                try skipForm(specification.form, &reader, unit.header.format)
            }
            return nil
        }
        var sibling: Int?
        for (position, specification) in abbreviations.specifications[abbreviation.attributes].enumerated() {
            if position == abbreviation.sibling {
                let value = try readForm(specification.form, implicitConst: specification.implicitConst, &reader, unit.header.format, unitOffset: unit.header.offset)
                if case .reference(let target) = value { sibling = target }
            } else {
                try skipForm(specification.form, &reader, unit.header.format)
            }
        }
        return sibling
    }

    /// Moves past the children of the DIE at `die`: to its sibling when it names one (which must
    /// lie past the DIE, inside the unit), else over each child.
    private func skipChildren(_ reader: inout ByteReader, sibling: Int?, die: Int) throws(DWARFError) {
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

    /// Whether the ranges contain a PC of the batch (any PC without one).
    private static func contains(_ batch: [UInt64]?, _ starts: ArraySlice<UInt64>, _ ends: ArraySlice<UInt64>) -> Bool {
        guard let batch else { return true }
        for (start, end) in zip(starts, ends) {
            var low = 0
            var high = batch.count
            while low < high {
                let middle = (low + high) / 2
                if batch[middle] < start { low = middle + 1 } else { high = middle }
            }
            if low < batch.count, batch[low] < end { return true }
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

    /// The DIE at `offset` and those its `DW_AT_abstract_origin` (else `DW_AT_specification`)
    /// leads to, nine at most (libdw's `dwarf_attr_integrate` follows as many).
    private mutating func namingChain(from offset: Int) throws(DWARFError) -> [Naming] {
        var chain: [Naming] = []
        var next: Int? = offset
        while let current = next, chain.count < 9 {
            let naming = try readNaming(at: current)
            chain.append(naming)
            next = naming.next
        }
        return chain
    }

    /// Reads the naming attributes of the DIE at `offset`, in this unit or another (`unit` then
    /// names it in the directory).
    private mutating func readNaming(at offset: Int) throws(DWARFError) -> Naming {
        let sections = directory.sections
        var owner: CompileUnit = unit
        var ownerIndex: Int?
        var table = abbreviations
        if offset < unit.header.dieOffset || offset >= unit.header.end {
            guard let index = directory.unit(containing: offset) else {
                throw DWARFError(section: .info, offset: offset, problem: "a reference to a DIE outside every unit")
            }
            owner = directory.units[index]
            ownerIndex = index
            table = try foreignUnit(index).abbreviations
        }
        var reader = sections.info.reader(at: offset, end: owner.header.end)
        let code = try reader.uleb()
        guard code != 0, let index = table.index(of: code) else { throw reader.error("a reference to a DIE with abbreviation code \(code), not in its unit's table", at: offset) }
        var naming = Naming(unit: ownerIndex)
        var origin: Int?
        var specification: Int?
        let format = owner.header.format
        for attribute in table.specifications[table.entries[index].attributes] {
            switch attribute.name {
            case Attribute.name, Attribute.linkageName, Attribute.declFile, Attribute.declLine, Attribute.abstractOrigin, Attribute.specification:
                let value = try readForm(attribute.form, implicitConst: attribute.implicitConst, &reader, format, unitOffset: owner.header.offset)
                switch attribute.name {
                case Attribute.name: naming.name = value
                case Attribute.linkageName: naming.linkageName = value
                case Attribute.declFile: naming.declFile = value.unsigned
                case Attribute.declLine: naming.declLine = value.unsigned
                case Attribute.abstractOrigin: if case .reference(let target) = value { origin = target }
                default: if case .reference(let target) = value { specification = target }
                }
            default:
                try skipForm(attribute.form, &reader, format)
            }
        }
        naming.next = origin ?? specification
        return naming
    }

    private mutating func foreignUnit(_ index: Int) throws(DWARFError) -> (abbreviations: AbbreviationTable, files: [String?]) {
        if let known = foreign[index] { return known }
        let other = directory.units[index]
        let table = try AbbreviationTable(directory.sections.abbrev, offset: other.header.abbreviationOffset, format: other.header.format)
        var files: [String?] = []
        if let program = other.lineProgram {
            let lineTable = try LineTable(sections: directory.sections, offset: program, compilationDirectory: other.compilationDirectory, rows: false)
            files = lineTable.files.map(Self.joined)
        }
        foreign[index] = (table, files)
        return (table, files)
    }

    /// The string of `value` read in its unit (this one when `unit` is nil).
    private func string(_ value: AttributeValue?, in unitIndex: Int?) throws(DWARFError) -> String? {
        guard let value else { return nil }
        let owner = unitIndex.map { directory.units[$0] } ?? unit
        guard let text = try owner.resolveString(value, sections: directory.sections), text.pointee != 0 else { return nil }
        return String(cString: text)
    }

    /// The scope's `DW_AT_linkage_name`, else its `DW_AT_name`, through `DW_AT_abstract_origin` and
    /// `DW_AT_specification` (what addr2line prints for C).
    private mutating func name(of scope: Int32) throws(DWARFError) -> String? {
        if scopes[Int(scope)].named { return scopes[Int(scope)].name }
        let chain = try namingChain(from: scopes[Int(scope)].offset)
        let name: String?
        if let linked = chain.first(where: { $0.linkageName != nil }) {
            name = try string(linked.linkageName, in: linked.unit)
        } else if let named = chain.first(where: { $0.name != nil }) {
            name = try string(named.name, in: named.unit)
        } else {
            name = nil
        }
        scopes[Int(scope)].name = name
        scopes[Int(scope)].named = true
        return name
    }

    /// Where the scope's function is defined: `DW_AT_decl_file` (in the file table of the unit of
    /// the DIE that has it) and `DW_AT_decl_line`, through `DW_AT_abstract_origin` and
    /// `DW_AT_specification`. A relative name is joined with this unit's compilation directory.
    private mutating func declaration(of scope: Int32) throws(DWARFError) -> (file: String?, line: Int) {
        if let known = scopes[Int(scope)].declaration { return known }
        let chain = try namingChain(from: scopes[Int(scope)].offset)
        var line = 0
        if let declared = chain.first(where: { $0.declLine != nil })?.declLine, declared <= UInt64(Int32.max) { line = Int(declared) }
        var file: String?
        if let declaring = chain.first(where: { $0.declFile != nil }), let index = declaring.declFile {
            if let other = declaring.unit {
                let files = try foreignUnit(other).files
                file = index < UInt64(files.count) ? files[Int(index)] : nil
            } else if index < UInt64(fileNames.count) {
                file = lines.map { Self.joined($0.files[Int(index)]) } ?? nil
            }
        }
        if let name = file, !name.hasPrefix("/"), let compilationDirectory { file = compilationDirectory + "/" + name }
        let declared = (file, line)
        scopes[Int(scope)].declaration = declared
        return declared
    }

    /// A file entry's name: the name when absolute or when its directory is unknown, else
    /// `directory/name` (libdw's spelling, the directory's trailing slash kept).
    private static func joined(_ entry: LineTable.FileEntry) -> String? {
        guard let name = entry.name else { return nil }
        guard name.pointee != 0x2f, let directory = entry.directory else { return String(cString: name) }
        return String(cString: directory) + "/" + String(cString: name)
    }

    /// File `index` of the line table, joined with the compilation directory when relative, as
    /// binutils does: `comp_dir/dir/name` for a relative directory, `dir/name` for an absolute one.
    private mutating func fileName(_ index: Int) -> String? {
        guard index >= 0, index < fileNames.count, let lines else { return nil }
        if fileNamesRead[index] { return fileNames[index] }
        var name = Self.joined(lines.files[index])
        if let relative = name, !relative.hasPrefix("/"), let compilationDirectory { name = compilationDirectory + "/" + relative }
        fileNames[index] = name
        fileNamesRead[index] = true
        return name
    }
}
