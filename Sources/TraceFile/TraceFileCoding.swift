import CoverageAPI

// The one definition of the format: `TraceFile`'s Decodable conformance reads version 1 and the
// JSON of older kcovctl versions; its Encodable conformance writes version 1. The fast reader
// (FastJSONDecoder.swift) runs this same code over its own Decoder; the fast writer
// (TraceFileWriter.swift) is tested against it.
//
// Problems are thrown as `DecodingError.dataCorrupted` whose context has the field's coding
// path, a message "expected …, found …" and a `FieldProblem` as underlying error;
// `TraceFile.decode` turns them into `TraceFileError`s that start with the path.

/// Marks a `DecodingError` as one of this file's own messages (not a container's).
struct FieldProblem: Error {}

/// A `DecodingError` carrying `message` about the value at `path`.
func problem(_ path: [any CodingKey], _ message: String) -> DecodingError {
    .dataCorrupted(DecodingError.Context(codingPath: path, debugDescription: message, underlyingError: FieldProblem()))
}

/// The error is one of this file's messages.
func isFieldProblem(_ error: any Error) -> Bool {
    guard case .dataCorrupted(let context) = error as? DecodingError else { return false }
    return context.underlyingError is FieldProblem
}

/// `tasks[0].pcs[3]`.
func pathText(_ path: [any CodingKey]) -> String {
    var text = ""
    for key in path {
        if let index = key.intValue {
            text += "[\(index)]"
        } else {
            text += text.isEmpty ? key.stringValue : "." + key.stringValue
        }
    }
    return text
}

/// A coding key for list indices (`[3]`) and for any object key.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = "Index \(intValue)"
        self.intValue = intValue
    }
}

/// A string for messages: quoted and escaped, cut at 40 characters.
func quoted(_ text: String) -> String {
    text.count > 40 ? String(text.prefix(40)).debugDescription + "…" : text.debugDescription
}

/// What a JSON value is, for "found …": `12`, `"blocks"`, `true`, `null`, `a list`, `an object`.
func describe(_ decoder: any Decoder) -> String {
    if let single = try? decoder.singleValueContainer() {
        if single.decodeNil() { return "null" }
        if let value = try? single.decode(Bool.self) { return value ? "true" : "false" }
        if let value = try? single.decode(String.self) { return quoted(value) }
        if let value = try? single.decode(Int64.self) { return String(value) }
        if let value = try? single.decode(UInt64.self) { return String(value) }
        if let value = try? single.decode(Double.self) { return String(value) }
    }
    if let list = try? decoder.unkeyedContainer() { return list.count == 0 ? "an empty list" : "a list" }
    if (try? decoder.container(keyedBy: AnyKey.self)) != nil { return "an object" }
    return "a value it cannot read (a number out of range, or a string that is not UTF-8)"
}

/// A keyed container whose reads fail with "path: expected …, found …".
struct Fields<Key: CodingKey> {
    let container: KeyedDecodingContainer<Key>

    /// The object at `decoder`; otherwise "expected `expected`, found …".
    init(_ decoder: any Decoder, expected: String) throws {
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch {
            throw problem(decoder.codingPath, "expected \(expected), found \(describe(decoder))")
        }
    }

    func path(_ key: Key) -> [any CodingKey] { container.codingPath + [key] }

    func has(_ key: Key) -> Bool { container.contains(key) }

    /// What `key` holds, for messages.
    func found(_ key: Key) -> String {
        guard container.contains(key) else { return "nothing" }
        return (try? container.superDecoder(forKey: key)).map(describe) ?? "something else"
    }

    /// `nil` when `key` is absent or null; otherwise `decode`'s value, or "expected `expected`".
    func optional<T>(_ key: Key, _ expected: String, _ decode: (KeyedDecodingContainer<Key>, Key) throws -> T) throws -> T? {
        guard container.contains(key), try !container.decodeNil(forKey: key) else { return nil }
        do {
            return try decode(container, key)
        } catch where isFieldProblem(error) {
            throw error
        } catch {
            throw problem(path(key), "expected \(expected), found \(found(key))")
        }
    }

    /// `decode`'s value; "expected `expected`, found nothing" when `key` is absent or null.
    func required<T>(_ key: Key, _ expected: String, _ decode: (KeyedDecodingContainer<Key>, Key) throws -> T) throws -> T {
        guard let value = try optional(key, expected, decode) else {
            throw problem(path(key), "expected \(expected), found \(found(key))")
        }
        return value
    }

    func string(_ key: Key, _ expected: String = "a string") throws -> String? {
        try optional(key, expected) { try $0.decode(String.self, forKey: $1) }
    }

    func bool(_ key: Key) throws -> Bool? {
        try optional(key, "true or false") { try $0.decode(Bool.self, forKey: $1) }
    }

    func integer<T: FixedWidthInteger & Decodable>(_ key: Key, _ expected: String) throws -> T? {
        try optional(key, expected) { try $0.decode(T.self, forKey: $1) }
    }

    /// A `0x` hex string (``HexWord``): its own message on failure.
    func hex(_ key: Key, _ what: HexWord.Kind) throws -> UInt64? {
        try optional(key, what.expected) { try $0.decode(HexWord.self, forKey: $1).value }
    }

    /// One of `T`'s raw values: "expected one of a, b, c, found …".
    func oneOf<T: RawRepresentable & CaseIterable>(_ key: Key, _: T.Type) throws -> T? where T.RawValue == String {
        let names = T.allCases.map(\.rawValue).joined(separator: ", ")
        guard let name = try string(key, "one of \(names)") else { return nil }
        guard let value = T(rawValue: name) else { throw problem(path(key), "expected one of \(names), found \(quoted(name))") }
        return value
    }

    /// A list of `Element`s: the elements name their own problems.
    func list<Element: Decodable>(_ key: Key, of _: Element.Type, _ expected: String) throws -> [Element]? {
        try optional(key, expected) { try $0.decode([Element].self, forKey: $1) }
    }

    /// A list of strings.
    func strings(_ key: Key) throws -> [String]? {
        try list(key, of: Text.self, "a list of strings")?.map(\.value)
    }
}

// MARK: - Values

/// A `0x%016x` hex string: `0x` and 1 to 16 hex digits.
struct HexWord: Codable {
    var value: UInt64

    /// What the hex string stands for, for messages.
    enum Kind {
        case pc, operand
        var expected: String {
            switch self {
            case .pc: #"a hex PC string such as "0xffffffff81000010""#
            case .operand: #"a hex operand string such as "0x000000000000002a""#
            }
        }
    }

    init(_ value: UInt64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let kind: Kind = ["arg1", "arg2"].contains(decoder.codingPath.last?.stringValue) ? .operand : .pc
        let text: String
        do {
            text = try decoder.singleValueContainer().decode(String.self)
        } catch {
            let found = describe(decoder)
            let why =
                found.hasPrefix("a value") ? "" : found.first?.isNumber == true || found.first == "-" ? " (a number, not a hex string)" : " (not a hex string)"
            throw problem(decoder.codingPath, "expected \(kind.expected), found \(found)\(why)")
        }
        var utf8 = text
        guard let value = utf8.withUTF8({ parseStrictHex(UnsafeRawBufferPointer($0)) }) else {
            throw problem(decoder.codingPath, "expected \(kind.expected), found \(quoted(text)) (\(hexProblem(text) ?? "not a hex string"))")
        }
        self.value = value
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hexString(value))
    }
}

/// A list of hex PCs, read and written as one value (the fast reader takes it in one step).
struct HexList: Codable {
    var values: [UInt64]

    init(_ values: [UInt64]) { self.values = values }

    init(from decoder: any Decoder) throws {
        var list = try decoder.unkeyedContainer()
        var values: [UInt64] = []
        values.reserveCapacity(list.count ?? 0)
        while !list.isAtEnd { values.append(try list.decode(HexWord.self).value) }
        self.values = values
    }

    func encode(to encoder: any Encoder) throws {
        var list = encoder.unkeyedContainer()
        for value in values { try list.encode(hexString(value)) }
    }
}

/// A string list element: "expected a string, found …".
struct Text: Decodable {
    var value: String
    init(from decoder: any Decoder) throws {
        do {
            value = try decoder.singleValueContainer().decode(String.self)
        } catch {
            throw problem(decoder.codingPath, "expected a string, found \(describe(decoder))")
        }
    }
}

/// `{"status": N}`, `{"signal": N}` or `{"timedOut": true}`.
struct ExitCoding: Decodable {
    var exit: TraceFile.Exit
    enum Key: String, CodingKey { case status, signal, timedOut }
    static let expected = #"{"status": N}, {"signal": N} or {"timedOut": true}"#

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: Self.expected)
        let status: Int32? = try fields.integer(.status, "an exit status (a whole number)")
        let signal: Int32? = try fields.integer(.signal, "a signal number (a whole number)")
        let timedOut = try fields.bool(.timedOut)
        switch (status, signal, timedOut) {
        case (let status?, nil, nil): exit = .status(status)
        case (nil, let signal?, nil): exit = .signal(signal)
        case (nil, nil, true?): exit = .timedOut
        case (nil, nil, false?): throw problem(decoder.codingPath, "expected \(Self.expected), found \"timedOut\": false")
        case (nil, nil, nil): throw problem(decoder.codingPath, "expected \(Self.expected), found an object with none of them")
        default: throw problem(decoder.codingPath, "expected \(Self.expected), found more than one of them")
        }
    }
}

/// `{"pc", "type", "arg1", "arg2"}` (and `size`, `const`, ignored); legacy files may leave out
/// what the reader before this one did not need: all but `pc`.
struct ComparisonCoding<Rules: CodingRules>: Decodable {
    var record: ComparisonRecord
    enum Key: String, CodingKey { case pc, type, arg1, arg2 }

    init(record: ComparisonRecord) { self.record = record }

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: #"a comparison {"pc", "type", "arg1", "arg2"}"#)
        let pc = try fields.hex(.pc, .pc)
        let type: UInt64? = try fields.integer(.type, "the kcov type word (a whole number from 0)")
        let arg1 = try fields.hex(.arg1, .operand)
        let arg2 = try fields.hex(.arg2, .operand)
        func value(_ value: UInt64?, _ key: Key, _ expected: String) throws -> UInt64 {
            if let value { return value }
            if Rules.legacy, key != .pc { return 0 }
            throw problem(fields.path(key), "expected \(expected), found nothing")
        }
        record = ComparisonRecord(
            type: try value(type, .type, "the kcov type word (a whole number from 0)"), first: try value(arg1, .arg1, HexWord.Kind.operand.expected),
            second: try value(arg2, .arg2, HexWord.Kind.operand.expected), pc: try value(pc, .pc, HexWord.Kind.pc.expected))
    }
}

/// `{"name", "pc", "hits"}`; legacy files may leave out `hits` (read as 0).
struct FunctionCoding<Rules: CodingRules>: Decodable {
    var entry: TraceFile.FunctionEntry
    enum Key: String, CodingKey { case name, pc, hits }

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: #"a function {"name", "pc", "hits"}"#)
        let name = try fields.required(.name, "a function name") { try $0.decode(String.self, forKey: $1) }
        let pc = try fields.required(.pc, HexWord.Kind.pc.expected) { try $0.decode(HexWord.self, forKey: $1).value }
        let expected = "a hit count (a whole number from 0)"
        let hits: UInt64 =
            Rules.legacy
            ? try fields.integer(.hits, expected) ?? 0 : try fields.required(.hits, expected) { try $0.decode(UInt64.self, forKey: $1) }
        entry = TraceFile.FunctionEntry(name: name, pc: pc, hits: hits)
    }
}

/// `{"name", "pc"}`.
struct ProbedCoding: Decodable {
    var function: TraceFile.ProbedFunction
    enum Key: String, CodingKey { case name, pc }

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: #"a probed function {"name", "pc"}"#)
        function = TraceFile.ProbedFunction(
            name: try fields.required(.name, "a function name") { try $0.decode(String.self, forKey: $1) },
            pc: try fields.required(.pc, HexWord.Kind.pc.expected) { try $0.decode(HexWord.self, forKey: $1).value })
    }
}

/// `{"name", "reason"}`.
struct SkippedCoding: Decodable {
    var function: TraceFile.SkippedFunction
    enum Key: String, CodingKey { case name, reason }

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: #"a skipped function {"name", "reason"}"#)
        function = TraceFile.SkippedFunction(
            name: try fields.required(.name, "a function name") { try $0.decode(String.self, forKey: $1) },
            reason: try fields.required(.reason, "the reason as a string") { try $0.decode(String.self, forKey: $1) })
    }
}

/// `{"pid"?, "tid"?, "executable"?, "reason"}`.
struct UntracedCoding: Decodable {
    var task: TraceFile.UntracedTask
    enum Key: String, CodingKey { case pid, tid, executable, reason }

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: #"an untraced task {"pid"?, "tid"?, "executable"?, "reason"}"#)
        task = TraceFile.UntracedTask(
            pid: try fields.integer(.pid, "a process id (a whole number)"), tid: try fields.integer(.tid, "a thread id (a whole number)"),
            executable: try fields.string(.executable, "a path as a string"),
            reason: try fields.required(.reason, "the reason as a string") { try $0.decode(String.self, forKey: $1) })
    }
}

/// How strictly element objects are read.
protocol CodingRules { static var legacy: Bool { get } }
/// Version 1: every field present.
enum StrictRules: CodingRules { static var legacy: Bool { false } }
/// Files of older kcovctl versions: what the reader before this one did not need may be absent.
enum LegacyRules: CodingRules { static var legacy: Bool { true } }

/// One task as written, before its lists are checked against the file's unit and mode.
struct TaskCoding: Decodable {
    var task: TraceFile.Task
    /// The list keys present.
    var lists: Set<TaskKey>
    var path: [any CodingKey]

    enum TaskKey: String, CodingKey {
        case pid, tid, parentPid, executable, order, exit, truncated, pcs, comparisons, functions
        // Version 2.
        case end, endOrder, withoutAgent, agentTail
    }

    init(from decoder: any Decoder) throws {
        path = decoder.codingPath
        let fields = try Fields<TaskKey>(decoder, expected: #"a task {"truncated", "pcs" | "comparisons" | "functions", …}"#)
        let order: Int? = try fields.integer(.order, "the task's order (a whole number from 0)")
        if let order, order < 0 { throw problem(fields.path(.order), "expected the task's order (a whole number from 0), found \(order)") }
        let endOrder: Int? = try fields.integer(.endOrder, "the task's end order (a whole number from 0)")
        if let endOrder, endOrder < 0 { throw problem(fields.path(.endOrder), "expected the task's end order (a whole number from 0), found \(endOrder)") }
        let agentTail: Int? = try fields.integer(.agentTail, "a number of entries (a whole number from 0)")
        if let agentTail, agentTail < 0 { throw problem(fields.path(.agentTail), "expected a number of entries (a whole number from 0), found \(agentTail)") }
        task = TraceFile.Task(
            pid: try fields.integer(.pid, "a process id (a whole number)"), tid: try fields.integer(.tid, "a thread id (a whole number)"),
            parentPid: try fields.integer(.parentPid, "a process id (a whole number)"), executable: try fields.string(.executable, "a path as a string"),
            order: order, exit: try fields.optional(.exit, ExitCoding.expected) { try $0.decode(ExitCoding.self, forKey: $1).exit },
            truncated: try fields.required(.truncated, "true or false") { try $0.decode(Bool.self, forKey: $1) },
            pcs: try fields.optional(.pcs, "a list of hex PC strings") { try $0.decode(HexList.self, forKey: $1).values } ?? [],
            comparisons: try fields.list(.comparisons, of: ComparisonCoding<StrictRules>.self, "a list of comparisons")?.map(\.record) ?? [],
            functions: try fields.list(.functions, of: FunctionCoding<StrictRules>.self, "a list of functions")?.map(\.entry) ?? [],
            end: try fields.oneOf(.end, TraceFile.TaskEnd.self), endOrder: endOrder, withoutAgent: try fields.string(.withoutAgent, "the reason as a string"),
            agentTail: agentTail)
        lists = Set([TaskKey.pcs, .comparisons, .functions].filter { fields.has($0) })
    }
}

// MARK: - TraceFile

extension TraceFile: Codable {
    enum Key: String, CodingKey {
        case format, version, backend, unit, mode, pcFormat, command, exit, bufferWords, probedFunctions, skippedFunctions, tasks, untraced
        // Version 3.
        case kernel
        // Older kcovctl versions.
        case truncated, exitStatus, signal, granularity, comparisons, functions, skipped, pcs
    }

    /// The task list that holds a `unit`, `mode` trace's entries.
    static func listKey(unit: Unit, mode: CoverageMode) -> TaskCoding.TaskKey {
        unit == .function ? .functions : mode == .comparisons ? .comparisons : .pcs
    }

    /// Reads version 1 (a `"format"` key) or the JSON of an older `kcovctl trace --format json`
    /// (a `"mode"` key and no `"format"`). Throws `DecodingError`s whose coding path is the field's
    /// and whose description says what was expected and found.
    public init(from decoder: any Decoder) throws {
        let fields: Fields<Key>
        do {
            fields = try Fields<Key>(decoder, expected: "a JSON object")
        } catch {
            throw problem([], "not a kcovctl trace: expected a JSON object, found \(describe(decoder))")
        }
        if fields.has(.format) {
            try self.init(version1: fields)
        } else if fields.has(.mode) {
            try self.init(legacy: fields)
        } else {
            throw problem(
                [], #"not a kcovctl trace: a JSON object with neither "format": "kcovctl-trace" nor the "mode" and "pcs" of an older `kcovctl trace --format json`"#)
        }
    }

    private init(version1 fields: Fields<Key>) throws {
        let format = try fields.required(.format, "\"\(Self.formatName)\"") { try $0.decode(String.self, forKey: $1) }
        guard format == Self.formatName else {
            throw problem(fields.path(.format), "expected \"\(Self.formatName)\", found \(quoted(format))")
        }
        let version: Int = try fields.required(.version, "the format version (a whole number such as 1)") { try $0.decode(Int.self, forKey: $1) }
        if version > Self.currentVersion {
            throw problem(
                fields.path(.version),
                "this file is version \(version) of the kcovctl trace format, and this kcovctl reads versions up to \(Self.currentVersion): upgrade kcovctl")
        }
        guard version >= 1 else {
            throw problem(fields.path(.version), "expected a format version from 1 to \(Self.currentVersion), found \(version)")
        }
        backend = try fields.required(.backend, "the backend's name as a string") { try $0.decode(String.self, forKey: $1) }
        guard let unit = try fields.oneOf(.unit, Unit.self) else {
            throw problem(fields.path(.unit), "expected one of \(Unit.allCases.map(\.rawValue).joined(separator: ", ")), found nothing")
        }
        self.unit = unit
        guard let mode = try fields.oneOf(.mode, CoverageMode.self) else {
            throw problem(fields.path(.mode), "expected one of pc, cmp, found nothing")
        }
        self.mode = mode
        if unit == .function, mode != .pc {
            throw problem(fields.path(.mode), "expected pc for unit function (a probe counts entries, not comparisons), found \(quoted(mode.rawValue))")
        }
        pcFormat = try fields.oneOf(.pcFormat, PCFormat.self)
        if unit == .syntheticBlock, pcFormat == nil {
            throw problem(fields.path(.pcFormat), "expected one of current, legacy, unknown for unit synthetic-block, found nothing")
        }
        if unit != .syntheticBlock, let pcFormat {
            throw problem(fields.path(.pcFormat), "only unit synthetic-block has a pcFormat, found \(quoted(pcFormat.rawValue)) with unit \(unit.rawValue)")
        }
        command = try fields.strings(.command)
        exit = try fields.optional(.exit, ExitCoding.expected) { try $0.decode(ExitCoding.self, forKey: $1).exit }
        bufferWords = try fields.integer(.bufferWords, "the buffer size in words (a whole number from 0)")
        if let bufferWords, bufferWords < 0 {
            throw problem(fields.path(.bufferWords), "expected the buffer size in words (a whole number from 0), found \(bufferWords)")
        }
        probedFunctions = try fields.list(.probedFunctions, of: ProbedCoding.self, "a list of probed functions")?.map(\.function)
        skippedFunctions = try fields.list(.skippedFunctions, of: SkippedCoding.self, "a list of skipped functions")?.map(\.function) ?? []
        if unit != .function {
            for key in [Key.probedFunctions, .skippedFunctions] where fields.has(key) {
                throw problem(fields.path(key), "only unit function has \(key.stringValue), found it with unit \(unit.rawValue)")
            }
        }
        let tasks = try fields.required(.tasks, "a list of tasks") { try $0.decode([TaskCoding].self, forKey: $1) }
        let listKey = Self.listKey(unit: unit, mode: mode)
        for task in tasks {
            if !task.lists.contains(listKey) {
                let expected = listKey == .pcs ? "a list of hex PC strings" : listKey == .comparisons ? "a list of comparisons" : "a list of functions"
                throw problem(task.path + [listKey], "expected \(expected), found nothing")
            }
            if let wrong = task.lists.subtracting([listKey]).first {
                throw problem(
                    task.path + [wrong],
                    "a unit \(unit.rawValue) trace in mode \(mode.rawValue) keeps its entries in \"\(listKey.stringValue)\", found \"\(wrong.stringValue)\" too")
            }
        }
        self.tasks = tasks.map(\.task)
        untraced = try fields.list(.untraced, of: UntracedCoding.self, "a list of untraced tasks")?.map(\.task) ?? []
        kernel = try fields.optional(.kernel, "a kernel layout object") { try $0.decode(KernelLayoutCoding.self, forKey: $1).layout }
    }

    /// `{"backend", "mode", "truncated", "count", "command", "pcFormat"?, "exitStatus" | "signal",
    /// "comparisons"?, "granularity"?, "probed"?, "probedFunctions"?, "functions"?, "skipped"?, "pcs"}`:
    /// every JSON `kcovctl trace` wrote before version 1. Required: `mode`; `pcs` (PC mode),
    /// `comparisons` (CMP mode) or `functions` (`"granularity": "function"`). `count`, `probed`,
    /// a comparison's `size` and `const`, and `pcs` beside another list are redundant and ignored.
    private init(legacy fields: Fields<Key>) throws {
        backend = try fields.string(.backend, "the backend's name as a string") ?? "unknown"
        guard let mode = try fields.oneOf(.mode, CoverageMode.self) else {
            throw problem(fields.path(.mode), "expected one of pc, cmp, found null")
        }
        self.mode = mode
        let granularity = try fields.string(.granularity, #""function""#)
        if let granularity, granularity != "function" {
            throw problem(fields.path(.granularity), "expected \"function\", found \(quoted(granularity))")
        }
        pcFormat = try fields.oneOf(.pcFormat, PCFormat.self)
        if granularity != nil {
            unit = .function
            if let pcFormat { throw problem(fields.path(.pcFormat), "a function-granularity trace has no pcFormat, found \(quoted(pcFormat.rawValue))") }
            if mode != .pc { throw problem(fields.path(.mode), "expected pc for a function-granularity trace, found \(quoted(mode.rawValue))") }
        } else {
            unit = pcFormat == nil ? .pc : .syntheticBlock
        }
        command = try fields.strings(.command)
        let status: Int32? = try fields.integer(.exitStatus, "an exit status (a whole number)")
        let signal: Int32? = try fields.integer(.signal, "a signal number (a whole number)")
        switch (status, signal) {
        case (let status?, nil): exit = .status(status)
        case (nil, let signal?): exit = .signal(signal)
        case (nil, nil): exit = nil
        case (_?, _?): throw problem(fields.path(.signal), "expected an exitStatus or a signal, found both")
        }
        bufferWords = nil
        untraced = []
        kernel = nil
        let truncated = try fields.bool(.truncated) ?? false
        var task = Task(truncated: truncated)
        if unit == .function {
            probedFunctions = try fields.list(.probedFunctions, of: ProbedCoding.self, "a list of probed functions")?.map(\.function)
            skippedFunctions = try fields.list(.skipped, of: SkippedCoding.self, "a list of skipped functions")?.map(\.function) ?? []
            task.functions = try fields.required(.functions, "a list of functions") {
                try $0.decode([FunctionCoding<LegacyRules>].self, forKey: $1).map(\.entry)
            }
        } else {
            probedFunctions = nil
            skippedFunctions = []
            switch mode {
            case .pc: task.pcs = try fields.required(.pcs, "a list of hex PC strings") { try $0.decode(HexList.self, forKey: $1).values }
            case .comparisons:
                task.comparisons = try fields.required(.comparisons, "a list of comparisons") {
                    try $0.decode([ComparisonCoding<LegacyRules>].self, forKey: $1).map(\.record)
                }
            }
        }
        tasks = [task]
    }

    /// Writes version 1 (the same JSON as ``jsonData()``, without its line layout); throws
    /// `EncodingError.invalidValue`, with the field's coding path, for a value that breaks the
    /// rules of ``TraceFile`` (an entry in a list its unit and mode do not use, a `pcFormat` on a
    /// unit other than synthetic-block, CMP mode with unit function, a negative `bufferWords`, …).
    public func encode(to encoder: any Encoder) throws {
        if let (path, message) = validationProblem {
            throw EncodingError.invalidValue(self, EncodingError.Context(codingPath: path, debugDescription: message))
        }
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(Self.formatName, forKey: .format)
        try container.encode(writtenVersion, forKey: .version)
        try container.encode(backend, forKey: .backend)
        try container.encode(unit.rawValue, forKey: .unit)
        try container.encode(mode.rawValue, forKey: .mode)
        try container.encodeIfPresent(pcFormat?.rawValue, forKey: .pcFormat)
        try container.encodeIfPresent(command, forKey: .command)
        if let exit { try Self.encode(exit, into: container.nestedContainer(keyedBy: ExitCoding.Key.self, forKey: .exit)) }
        try container.encodeIfPresent(bufferWords, forKey: .bufferWords)
        if unit == .function {
            if let probedFunctions {
                var list = container.nestedUnkeyedContainer(forKey: .probedFunctions)
                for function in probedFunctions {
                    var object = list.nestedContainer(keyedBy: ProbedCoding.Key.self)
                    try object.encode(function.name, forKey: .name)
                    try object.encode(HexWord(function.pc), forKey: .pc)
                }
            }
            var list = container.nestedUnkeyedContainer(forKey: .skippedFunctions)
            for function in skippedFunctions {
                var object = list.nestedContainer(keyedBy: SkippedCoding.Key.self)
                try object.encode(function.name, forKey: .name)
                try object.encode(function.reason, forKey: .reason)
            }
        }
        if !untraced.isEmpty {
            var list = container.nestedUnkeyedContainer(forKey: .untraced)
            for task in untraced {
                var object = list.nestedContainer(keyedBy: UntracedCoding.Key.self)
                try object.encodeIfPresent(task.pid, forKey: .pid)
                try object.encodeIfPresent(task.tid, forKey: .tid)
                try object.encodeIfPresent(task.executable, forKey: .executable)
                try object.encode(task.reason, forKey: .reason)
            }
        }
        try container.encodeIfPresent(kernel.map(KernelLayoutCoding.init), forKey: .kernel)
        var list = container.nestedUnkeyedContainer(forKey: .tasks)
        for task in tasks { try encode(task, into: list.nestedContainer(keyedBy: TaskCoding.TaskKey.self)) }
    }

    private static func encode(_ exit: Exit, into container: KeyedEncodingContainer<ExitCoding.Key>) throws {
        var container = container
        switch exit {
        case .status(let status): try container.encode(status, forKey: .status)
        case .signal(let signal): try container.encode(signal, forKey: .signal)
        case .timedOut: try container.encode(true, forKey: .timedOut)
        }
    }

    private func encode(_ task: Task, into container: KeyedEncodingContainer<TaskCoding.TaskKey>) throws {
        var container = container
        try container.encodeIfPresent(task.pid, forKey: .pid)
        try container.encodeIfPresent(task.tid, forKey: .tid)
        try container.encodeIfPresent(task.parentPid, forKey: .parentPid)
        try container.encodeIfPresent(task.executable, forKey: .executable)
        try container.encodeIfPresent(task.order, forKey: .order)
        if let exit = task.exit { try Self.encode(exit, into: container.nestedContainer(keyedBy: ExitCoding.Key.self, forKey: .exit)) }
        try container.encode(task.truncated, forKey: .truncated)
        try container.encodeIfPresent(task.end?.rawValue, forKey: .end)
        try container.encodeIfPresent(task.endOrder, forKey: .endOrder)
        try container.encodeIfPresent(task.withoutAgent, forKey: .withoutAgent)
        try container.encodeIfPresent(task.agentTail, forKey: .agentTail)
        switch Self.listKey(unit: unit, mode: mode) {
        case .pcs: try container.encode(HexList(task.pcs), forKey: .pcs)
        case .comparisons:
            var list = container.nestedUnkeyedContainer(forKey: .comparisons)
            for record in task.comparisons {
                var object = list.nestedContainer(keyedBy: ComparisonWriteKey.self)
                try object.encode(HexWord(record.pc), forKey: .pc)
                try object.encode(record.type, forKey: .type)
                try object.encode(record.operandSize, forKey: .size)
                try object.encode(record.isConstant, forKey: .const)
                try object.encode(HexWord(record.first), forKey: .arg1)
                try object.encode(HexWord(record.second), forKey: .arg2)
            }
        default:
            var list = container.nestedUnkeyedContainer(forKey: .functions)
            for function in task.functions {
                var object = list.nestedContainer(keyedBy: FunctionCoding<StrictRules>.Key.self)
                try object.encode(function.name, forKey: .name)
                try object.encode(HexWord(function.pc), forKey: .pc)
                try object.encode(function.hits, forKey: .hits)
            }
        }
    }

    /// A comparison as written: `size` and `const` (derived from `type`) for readers' convenience.
    enum ComparisonWriteKey: String, CodingKey { case pc, type, size, const, arg1, arg2 }

    /// The first rule this value breaks, as the field's path and a message; `nil` when it can be
    /// written. The rules: unit function is PC mode; `pcFormat` is set exactly for unit
    /// synthetic-block; probed and skipped functions only for unit function; `bufferWords` and
    /// a task's `order` are not negative; a task's entries are only in the list its file's unit and
    /// mode use (``Task/pcs``, ``Task/comparisons`` or ``Task/functions``).
    var validationProblem: (path: [any CodingKey], message: String)? {
        if unit == .function, mode != .pc {
            return ([Key.mode], "unit function is PC mode only (a probe counts entries, not comparisons), found cmp")
        }
        if unit == .syntheticBlock, pcFormat == nil { return ([Key.pcFormat], "unit synthetic-block needs a pcFormat, found none") }
        if unit != .syntheticBlock, let pcFormat {
            return ([Key.pcFormat], "only unit synthetic-block has a pcFormat, found \(pcFormat.rawValue) with unit \(unit.rawValue)")
        }
        if unit != .function, probedFunctions != nil { return ([Key.probedFunctions], "only unit function has probed functions") }
        if unit != .function, !skippedFunctions.isEmpty { return ([Key.skippedFunctions], "only unit function has skipped functions") }
        if let bufferWords, bufferWords < 0 { return ([Key.bufferWords], "expected a whole number of words from 0, found \(bufferWords)") }
        let listKey = Self.listKey(unit: unit, mode: mode)
        for (index, task) in tasks.enumerated() {
            let path: [any CodingKey] = [Key.tasks, AnyKey(intValue: index)]
            if let order = task.order, order < 0 { return (path + [TaskCoding.TaskKey.order], "expected a whole number from 0, found \(order)") }
            if let order = task.endOrder, order < 0 { return (path + [TaskCoding.TaskKey.endOrder], "expected a whole number from 0, found \(order)") }
            if let tail = task.agentTail, tail < 0 { return (path + [TaskCoding.TaskKey.agentTail], "expected a whole number from 0, found \(tail)") }
            let counts: [(TaskCoding.TaskKey, Int)] = [(.pcs, task.pcs.count), (.comparisons, task.comparisons.count), (.functions, task.functions.count)]
            for (key, count) in counts where key != listKey && count > 0 {
                return (
                    path + [key],
                    "a unit \(unit.rawValue) trace in mode \(mode.rawValue) keeps its entries in \(listKey.stringValue), found \(count) in \(key.stringValue)"
                )
            }
        }
        return nil
    }
}
