import CElfutils

/// One compilation unit read once for symbolization: its functions and inlined subroutines with
/// their address ranges and nesting (one walk over its DIEs), and its line table (libdw's rows,
/// sorted by address). A value type, so that lookups in a batch pay no exclusivity checks.
struct UnitSymbols {
    /// A function or inlined subroutine with code.
    private struct Scope {
        var die: Dwarf_Die
        /// The function this one is inlined into (lexical blocks skipped); -1 for a function.
        var parent: Int32
        var firstChild: Int32 = -1
        var nextSibling: Int32 = -1
        /// Its ranges in `rangeStarts`/`rangeEnds`.
        var ranges: Range<Int>
        var name: String? = nil
        var named = false
        /// Its subprogram's declaration (file, line), once read.
        var declaration: (file: String?, line: Int)? = nil
        /// For an inlined scope, the frame of its call in `parent`, once built.
        var call: SymbolFrame? = nil
    }

    private let compilationDirectory: String?
    private let lines: OpaquePointer?
    /// The address of each line row, in libdw's order (by address).
    private var lineAddresses: [UInt64] = []
    private let files: OpaquePointer?
    /// File names as printed, by line-table file index, filled on first use.
    private var fileNames: [String?]
    private var scopes: [Scope] = []
    private var rangeStarts: [UInt64] = []
    private var rangeEnds: [UInt64] = []
    /// The ranges of every function (the scopes a lookup starts from), sorted by start, and the
    /// largest end among the first `i + 1` of them.
    private var functionRanges: [(start: UInt64, end: UInt64, scope: Int32)] = []
    private var functionReach: [UInt64] = []
    /// When reading for a batch: its PCs in this unit, sorted. Scopes that contain none of them are skipped.
    private let batch: [UInt64]?

    /// Reads the unit; with `batch` (sorted PCs), only the scopes that contain one of them.
    init(unit: Dwarf_Die, batch: [UInt64]? = nil) {
        var unitDie = unit
        self.batch = batch
        var attribute = Dwarf_Attribute()
        compilationDirectory = dwarf_attr(&unitDie, UInt32(DW_AT_comp_dir), &attribute)
            .flatMap { dwarf_formstring($0) }.map { String(cString: $0) }
        var lines: OpaquePointer?
        var lineCount = 0
        if dwarf_getsrclines(&unitDie, &lines, &lineCount) != 0 { lines = nil; lineCount = 0 }
        self.lines = lines
        var files: OpaquePointer?
        var fileCount = 0
        if dwarf_getsrcfiles(&unitDie, &files, &fileCount) != 0 { files = nil; fileCount = 0 }
        self.files = files
        fileNames = Array(repeating: nil, count: fileCount)
        if let lines {
            lineAddresses = (0..<lineCount).map { index in
                var address: Dwarf_Addr = 0
                guard let row = dwarf_onesrcline(lines, index), dwarf_lineaddr(row, &address) == 0 else { return UInt64.max }
                return address
            }
        }
        collectScopes(under: &unitDie, enclosing: -1)
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
    mutating func frames(at pc: UInt64) -> [SymbolFrame] {
        let scope = innermostScope(at: pc)
        let row = lineRow(at: pc)
        guard row != nil || scope != nil else { return [] }
        var innermost = SymbolFrame(function: scope.flatMap { name(of: $0) }, file: "??", line: 0)
        if let scope {
            let declared = declaration(of: scope)
            innermost.functionFile = declared.file
            innermost.functionLine = declared.line
        }
        if let row {
            var files: OpaquePointer?
            var file = 0
            var line: Int32 = 0
            var column: Int32 = 0
            var discriminator: UInt32 = 0
            if dwarf_line_file(row, &files, &file) == 0, let name = fileName(file) { innermost.file = name }
            if dwarf_lineno(row, &line) == 0 { innermost.line = Int(line) }
            if dwarf_linecol(row, &column) == 0 { innermost.column = Int(column) }
            if dwarf_linediscriminator(row, &discriminator) == 0 { innermost.discriminator = Int(discriminator) }
        }
        var frames = [innermost]
        var callee = scope ?? -1
        while callee >= 0, scopes[Int(callee)].parent >= 0 {
            frames.append(call(of: callee))
            callee = scopes[Int(callee)].parent
        }
        return frames
    }

    /// The frame of an inlined scope's call: the function it is inlined into, at the call's
    /// `DW_AT_call_file`, `DW_AT_call_line` and `DW_AT_call_column`.
    private mutating func call(of scope: Int32) -> SymbolFrame {
        if let known = scopes[Int(scope)].call { return known }
        var die = scopes[Int(scope)].die
        let parent = scopes[Int(scope)].parent
        let declared = declaration(of: parent)
        let frame = SymbolFrame(
            function: name(of: parent), file: attributeValue(&die, DW_AT_call_file).flatMap { fileName($0) } ?? "??",
            line: attributeValue(&die, DW_AT_call_line) ?? 0, column: attributeValue(&die, DW_AT_call_column) ?? 0,
            functionFile: declared.file, functionLine: declared.line)
        scopes[Int(scope)].call = frame
        return frame
    }

    /// Records the functions and inlined subroutines with code among the descendants of `parent`,
    /// looking through lexical blocks; `enclosing` is the scope they are inlined into.
    private mutating func collectScopes(under parent: inout Dwarf_Die, enclosing: Int32) {
        var child = Dwarf_Die()
        guard dwarf_child(&parent, &child) == 0 else { return }
        while true {
            let tag = Int(dwarf_tag(&child))
            switch tag {
            case DW_TAG_subprogram, DW_TAG_inlined_subroutine:
                let first = rangeStarts.count
                forEachRange(of: &child) { start, end in
                    rangeStarts.append(start)
                    rangeEnds.append(end)
                }
                // Declarations and abstract instances have no code, nor anything inlined in them.
                guard rangeStarts.count > first, containsBatchPC(rangesFrom: first) else {
                    rangeStarts.removeSubrange(first...)
                    rangeEnds.removeSubrange(first...)
                    break
                }
                let index = Int32(scopes.count)
                // A function nested in another (a GNU C extension) is not inlined into it.
                let parent = tag == DW_TAG_inlined_subroutine ? enclosing : -1
                scopes.append(Scope(die: child, parent: parent, ranges: first..<rangeStarts.count))
                if parent >= 0 {
                    scopes[Int(index)].nextSibling = scopes[Int(parent)].firstChild
                    scopes[Int(parent)].firstChild = index
                } else {
                    for range in first..<rangeStarts.count { functionRanges.append((rangeStarts[range], rangeEnds[range], index)) }
                }
                collectScopes(under: &child, enclosing: index)
            case DW_TAG_lexical_block:
                collectScopes(under: &child, enclosing: enclosing)
            default:
                break
            }
            var sibling = Dwarf_Die()
            guard dwarf_siblingof(&child, &sibling) == 0 else { return }
            child = sibling
        }
    }

    /// Whether the ranges from index `first` on contain a PC of the batch (any PC without one).
    private func containsBatchPC(rangesFrom first: Int) -> Bool {
        guard let batch else { return true }
        for range in first..<rangeStarts.count {
            var low = 0
            var high = batch.count
            while low < high {
                let middle = (low + high) / 2
                if batch[middle] < rangeStarts[range] { low = middle + 1 } else { high = middle }
            }
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

    private func consider(_ scope: Int32, size: UInt64, best: inout Int32, bestSize: inout UInt64) {
        if size < bestSize || (size == bestSize && scope > best) {
            best = scope
            bestSize = size
        }
    }

    /// The line row covering `pc`: the last row at or below it, unless that row ends a sequence.
    private func lineRow(at pc: UInt64) -> OpaquePointer? {
        var low = 0
        var high = lineAddresses.count
        while low < high {
            let middle = (low + high) / 2
            if lineAddresses[middle] <= pc { low = middle + 1 } else { high = middle }
        }
        guard low > 0, let lines, let row = dwarf_onesrcline(lines, low - 1) else { return nil }
        var endsSequence = false
        guard dwarf_lineendsequence(row, &endsSequence) == 0, !endsSequence else { return nil }
        return row
    }

    /// The scope's `DW_AT_linkage_name`, else its `DW_AT_name`, through `DW_AT_abstract_origin` and
    /// `DW_AT_specification` (what addr2line prints for C).
    private mutating func name(of scope: Int32) -> String? {
        if scopes[Int(scope)].named { return scopes[Int(scope)].name }
        var die = scopes[Int(scope)].die
        var attribute = Dwarf_Attribute()
        var text = dwarf_attr_integrate(&die, UInt32(DW_AT_linkage_name), &attribute).flatMap { dwarf_formstring($0) }
        if text == nil { text = dwarf_attr_integrate(&die, UInt32(DW_AT_name), &attribute).flatMap { dwarf_formstring($0) } }
        let name = text.flatMap { $0.pointee == 0 ? nil : String(cString: $0) }
        scopes[Int(scope)].name = name
        scopes[Int(scope)].named = true
        return name
    }

    /// Where the scope's function is defined: `DW_AT_decl_file` and `DW_AT_decl_line`, through
    /// `DW_AT_abstract_origin` and `DW_AT_specification` (libdw's `dwarf_decl_file` and
    /// `dwarf_decl_line` follow both, and read the file table of the unit the attribute is in).
    /// A relative name is joined with the compilation directory, as ``fileName(_:)`` does.
    private mutating func declaration(of scope: Int32) -> (file: String?, line: Int) {
        if let known = scopes[Int(scope)].declaration { return known }
        var die = scopes[Int(scope)].die
        var line: Int32 = 0
        if dwarf_decl_line(&die, &line) != 0 || line < 0 { line = 0 }
        var file = dwarf_decl_file(&die).map { String(cString: $0) }
        if let name = file, !name.hasPrefix("/"), let compilationDirectory { file = compilationDirectory + "/" + name }
        let declared = (file, Int(line))
        scopes[Int(scope)].declaration = declared
        return declared
    }

    /// File `index` of the line table, joined with the compilation directory when relative, as
    /// binutils does: `comp_dir/dir/name` for a relative directory, `dir/name` for an absolute one.
    private mutating func fileName(_ index: Int) -> String? {
        guard index >= 0, index < fileNames.count else { return nil }
        if let known = fileNames[index] { return known }
        guard let files, let raw = dwarf_filesrc(files, index, nil, nil) else { return nil }
        var name = String(cString: raw)
        if !name.hasPrefix("/"), let compilationDirectory { name = compilationDirectory + "/" + name }
        fileNames[index] = name
        return name
    }
}

/// An unsigned constant attribute of `die` itself (not through its abstract origin).
private func attributeValue(_ die: inout Dwarf_Die, _ name: Int) -> Int? {
    var attribute = Dwarf_Attribute()
    var value: Dwarf_Word = 0
    guard dwarf_attr(&die, UInt32(name), &attribute) != nil, dwarf_formudata(&attribute, &value) == 0 else { return nil }
    return Int(clamping: value)
}
