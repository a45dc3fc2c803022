// The fast reader: a strict JSON parser into a compact tree over the file's bytes, and a
// `Decoder` over that tree that runs `TraceFile`'s own `init(from:)`. It answers only what it is
// sure `JSONDecoder` answers the same way (plain integers in range, valid UTF-8, no duplicate
// keys, …); anything else, and any error at all, makes it give up, and `JSONDecoder` reads the
// file instead. So `JSONDecoder` with `TraceFile.init(from:)` stays the one definition of the
// format, errors included, and this is only a shortcut for files that are read correctly.
//
// Hex PC lists (`HexList`) and comparison lists, the bulk of a trace, are read from the bytes in
// one step.

import CoverageAPI

/// Thrown when the fast reader is not sure: `JSONDecoder` decides instead.
struct NotFast: Error {}

/// A JSON value: scalars by their byte range, containers by their range in the tree's storage.
enum JSONNode {
    case null
    case bool(Bool)
    /// The number's text, `start..<end`, checked against JSON's grammar.
    case number(start: Int, end: Int)
    /// The string's contents between the quotes; `plain` if they are ASCII without escapes.
    case string(start: Int, end: Int, plain: Bool)
    /// `JSONTree.elements[start..<start + count]`.
    case array(start: Int, count: Int)
    /// `JSONTree.keys[start..<start + count]` and `JSONTree.values[…]`.
    case object(start: Int, count: Int)
}

/// A JSON syntax error: where, and what was found.
struct JSONSyntaxError: Error {
    var offset: Int
    var message: String
}

/// A parsed JSON document. Holds `bytes` without owning them: use it only while they live.
final class JSONTree {
    let bytes: UnsafeRawBufferPointer
    let root: JSONNode
    let elements: [JSONNode]
    /// Keys as `.string` nodes; those that are not plain ASCII also in `decodedKeys`.
    let keys: [JSONNode]
    let decodedKeys: [Int: String]
    let values: [JSONNode]

    /// Deeper nesting is left to `JSONDecoder` (and keeps the recursion shallow).
    static let maximumDepth = 256

    /// Parses all of `bytes` (a leading byte order mark is skipped, as JSONDecoder does).
    init(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            throw JSONSyntaxError(offset: 0, message: "unexpected end of the file")
        }
        var parser = JSONParser(bytes, base: base)
        root = try parser.document()
        self.bytes = bytes
        elements = parser.elements
        keys = parser.keys
        decodedKeys = parser.decodedKeys
        values = parser.values
    }

    func decodeString(start: Int, end: Int, plain: Bool) -> String? { decodeJSONString(bytes, start: start, end: end, plain: plain) }

    /// A plain string node in the strict `0x` hex form.
    @inline(__always)
    func hex(_ node: JSONNode) throws -> UInt64 {
        guard case .string(let start, let end, true) = node, let value = parseStrictHex(bytes, from: start, to: end) else { throw NotFast() }
        return value
    }

    /// A plain integer (`-?[0-9]+`) that fits `T`; `nil` for fractions, exponents, `-0` for
    /// unsigned types, or out of range (JSONDecoder decides those).
    func integer<T: FixedWidthInteger>(start: Int, end: Int, as _: T.Type) -> T? {
        guard start < end, end <= bytes.count else { return nil }
        var index = start
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative {
            guard T.isSigned else { return nil }
            index += 1
        }
        guard index < end else { return nil }
        var value: T = 0
        while index < end {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            let (next, overflow2) = negative ? times.subtractingReportingOverflow(T(digit)) : times.addingReportingOverflow(T(digit))
            guard !overflow2 else { return nil }
            value = next
            index += 1
        }
        return value
    }

    func element(_ index: Int) -> JSONNode { elements[index] }
    func member(_ index: Int) -> JSONNode { values[index] }

    /// Key `index` as a string.
    func key(_ index: Int) -> String {
        if let text = decodedKeys[index] { return text }
        guard case .string(let start, let end, _) = keys[index] else { return "" }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// Key `index` is `name`, a coding key's ASCII name (for ASCII, Swift's string equality is
    /// byte equality; other keys are compared as decoded strings).
    func key(_ index: Int, is name: String) -> Bool {
        guard case .string(let start, let end, let plain) = keys[index] else { return false }
        guard plain else { return decodedKeys[index] == name }
        var name = name
        return name.withUTF8 { utf8 in
            utf8.count == end - start && utf8.elementsEqual(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        }
    }
}

/// The parser behind `JSONTree` (a struct: no exclusivity checks in its loops).
struct JSONParser {
    let raw: UnsafeRawBufferPointer
    /// `raw` as bytes: pointer subscripts stay cheap in debug builds too.
    let bytes: UnsafePointer<UInt8>
    let count: Int
    private(set) var elements: [JSONNode] = []
    private(set) var keys: [JSONNode] = []
    private(set) var decodedKeys: [Int: String] = [:]
    private(set) var values: [JSONNode] = []

    private var position = 0
    /// Elements and members of the containers still open; moved to storage as each closes.
    private var pendingElements: [JSONNode] = []
    private var pendingKeys: [JSONNode] = []
    private var pendingDecodedKeys: [Int: String] = [:]
    private var pendingValues: [JSONNode] = []

    init(_ raw: UnsafeRawBufferPointer, base: UnsafePointer<UInt8>) {
        self.raw = raw
        self.bytes = base
        self.count = raw.count
    }

    /// The one value `bytes` hold, after a byte order mark if any.
    mutating func document() throws(JSONSyntaxError) -> JSONNode {
        if count >= 3, bytes[0] == 0xef, bytes[1] == 0xbb, bytes[2] == 0xbf { position = 3 }
        skipSpace()
        let root = try value(depth: 0)
        skipSpace()
        guard position == count else { throw error("more text after the JSON value") }
        return root
    }

    private func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: position, message: position >= count ? "unexpected end of the file" : message)
    }

    @inline(__always) private mutating func skipSpace() {
        while position < count {
            switch bytes[position] {
            case 0x20, 0x0a, 0x0d, 0x09: position += 1
            default: return
            }
        }
    }

    private mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONNode {
        guard position < count else { throw error("expected a value") }
        switch bytes[position] {
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("expected a value, found \(describeByte(bytes[position]))")
        }
    }

    private mutating func literal(_ word: StaticString, _ node: JSONNode) throws(JSONSyntaxError) -> JSONNode {
        let length = word.utf8CodeUnitCount
        guard count - position >= length else { throw JSONSyntaxError(offset: position, message: "unexpected end of the file") }
        for index in 0..<length where bytes[position + index] != word.utf8Start[index] {
            throw error("expected \(word), found \(describeByte(bytes[position]))")
        }
        position += length
        return node
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONNode {
        let start = position
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        func digits() -> Int {
            let first = position
            while position < count, bytes[position] &- 0x30 < 10 { position += 1 }
            return position - first
        }
        guard position < count else { throw error("expected a digit") }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else if digits() == 0 {
            throw error("expected a digit, found \(describeByte(bytes[position]))")
        }
        if position < count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw error("expected a digit after the decimal point") }
        }
        if position < count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else { throw error("expected a digit in the exponent") }
        }
        return .number(start: start, end: position)
    }

    private mutating func string() throws(JSONSyntaxError) -> JSONNode {
        position += 1
        let start = position
        var plain = true
        while position < count {
            let byte = bytes[position]
            if byte > 0x5c {
                // Neither a quote, a backslash nor a control character: the common case.
                if byte >= 0x80 { plain = false }
                position += 1
                continue
            }
            if byte == 0x22 {
                position += 1
                return .string(start: start, end: position - 1, plain: plain)
            }
            if byte == 0x5c {
                plain = false
                position += 1
                guard position < count else { break }
                switch bytes[position] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                    UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 1
                case UInt8(ascii: "u"):
                    guard count - position > 4, (1...4).allSatisfy({ hexValue(bytes[position + $0]) != nil }) else {
                        throw error("expected 4 hex digits after \\u")
                    }
                    position += 5
                default: throw error("expected an escape (\\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\u), found \(describeByte(bytes[position]))")
                }
                continue
            }
            guard byte >= 0x20 else { throw error("a control character (\(describeByte(byte))) inside a string") }
            position += 1
        }
        throw JSONSyntaxError(offset: position, message: "unexpected end of the file inside a string")
    }

    private mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONNode {
        guard depth <= JSONTree.maximumDepth else { throw error("nested too deep") }
        position += 1
        let base = pendingElements.count
        skipSpace()
        if position < count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(start: elements.count, count: 0)
        }
        while true {
            skipSpace()
            pendingElements.append(try value(depth: depth))
            skipSpace()
            guard position < count else { throw error("expected , or ]") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "]") else { throw error("expected , or ], found \(describeByte(bytes[position]))") }
            position += 1
            break
        }
        let start = elements.count
        let length = pendingElements.count - base
        if base == 0 {
            // The outermost open list: hand over its storage rather than copy it.
            if elements.isEmpty {
                swap(&elements, &pendingElements)
            } else {
                elements.append(contentsOf: pendingElements)
                pendingElements.removeAll(keepingCapacity: true)
            }
        } else {
            elements.append(contentsOf: pendingElements[base...])
            pendingElements.removeSubrange(base...)
        }
        return .array(start: start, count: length)
    }

    private mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONNode {
        guard depth <= JSONTree.maximumDepth else { throw error("nested too deep") }
        position += 1
        let base = pendingKeys.count
        skipSpace()
        if position < count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(start: keys.count, count: 0)
        }
        while true {
            skipSpace()
            guard position < count, bytes[position] == UInt8(ascii: "\"") else {
                throw error("expected a key in quotes, found \(position < count ? describeByte(bytes[position]) : "the end")")
            }
            let keyOffset = position
            let key = try string()
            if case .string(let start, let end, false) = key {
                guard let text = decodeJSONString(raw, start: start, end: end, plain: false) else {
                    throw JSONSyntaxError(offset: keyOffset, message: "a key that is not valid UTF-8 or has a lone surrogate")
                }
                pendingDecodedKeys[pendingKeys.count] = text
            }
            skipSpace()
            guard position < count, bytes[position] == UInt8(ascii: ":") else { throw error("expected : after the key") }
            position += 1
            skipSpace()
            let member = try value(depth: depth)
            pendingKeys.append(key)
            pendingValues.append(member)
            skipSpace()
            guard position < count else { throw error("expected , or }") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "}") else { throw error("expected , or }, found \(describeByte(bytes[position]))") }
            position += 1
            break
        }
        let start = keys.count
        if !pendingDecodedKeys.isEmpty {
            for pending in base..<pendingKeys.count {
                if let text = pendingDecodedKeys.removeValue(forKey: pending) { decodedKeys[start + pending - base] = text }
            }
        }
        keys.append(contentsOf: pendingKeys[base...])
        values.append(contentsOf: pendingValues[base...])
        pendingKeys.removeSubrange(base...)
        pendingValues.removeSubrange(base...)
        return .object(start: start, count: keys.count - start)
    }
}

/// The string's text; `nil` if it is not valid UTF-8 or has a lone surrogate escape.
func decodeJSONString(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int, plain: Bool) -> String? {
    guard start <= end, end <= bytes.count else { return nil }
    let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    if plain { return String(decoding: raw, as: UTF8.self) }
    var out: [UInt8] = []
    out.reserveCapacity(raw.count)
    var index = 0
    func unit(at offset: Int) -> UInt32? {
        guard offset + 4 <= raw.count else { return nil }
        var value: UInt32 = 0
        for digit in raw[offset..<offset + 4] {
            guard let digit = hexValue(digit) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
    while index < raw.count {
        let byte = raw[index]
        guard byte == UInt8(ascii: "\\") else {
            out.append(byte)
            index += 1
            continue
        }
        guard index + 1 < raw.count else { return nil }
        let escape = raw[index + 1]
        index += 2
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0c)
        case UInt8(ascii: "n"): out.append(0x0a)
        case UInt8(ascii: "r"): out.append(0x0d)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            guard var scalar = unit(at: index) else { return nil }
            index += 4
            if (0xd800..<0xdc00).contains(scalar) {
                guard index + 6 <= raw.count, raw[index] == UInt8(ascii: "\\"), raw[index + 1] == UInt8(ascii: "u"),
                    let low = unit(at: index + 2), (0xdc00..<0xe000).contains(low)
                else { return nil }
                index += 6
                scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
            }
            guard let value = Unicode.Scalar(scalar) else { return nil }
            out.append(contentsOf: UTF8.encode(value).map(Array.init) ?? [])
        default: return nil
        }
    }
    return String(validating: out, as: UTF8.self)
}

/// `'x'` for printable ASCII, the byte in hex otherwise.
func describeByte(_ byte: UInt8) -> String {
    (0x21..<0x7f).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
}

// MARK: - The Decoder

/// Decodes `T` from `bytes` through `T.init(from:)` over a `JSONTree`; `nil` when not sure
/// (see the top of this file) or on any error.
func fastDecode<T: Decodable>(_: T.Type, from bytes: UnsafeRawBufferPointer) -> T? {
    guard let tree = try? JSONTree(bytes) else { return nil }
    return try? T(from: TreeDecoder(tree: tree, node: tree.root, codingPath: []))
}

struct TreeDecoder: Decoder {
    let tree: JSONTree
    let node: JSONNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let start, let count) = node else { throw NotFast() }
        return KeyedDecodingContainer(try TreeKeyedContainer<Key>(tree: tree, start: start, count: count, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let start, let count) = node else { throw NotFast() }
        return TreeUnkeyedContainer(tree: tree, start: start, count: count, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { TreeSingleValueContainer(decoder: self) }

    func decodeNil() -> Bool {
        if case .null = node { return true }
        return false
    }

    func decode(_: Bool.Type) throws -> Bool {
        guard case .bool(let value) = node else { throw NotFast() }
        return value
    }

    func decode(_: String.Type) throws -> String {
        guard case .string(let start, let end, let plain) = node, let text = tree.decodeString(start: start, end: end, plain: plain) else {
            throw NotFast()
        }
        return text
    }

    func decodeInteger<T: FixedWidthInteger>(_: T.Type) throws -> T {
        guard case .number(let start, let end) = node, let value = tree.integer(start: start, end: end, as: T.self) else { throw NotFast() }
        return value
    }

    /// A strict `0x` hex string, read from the bytes.
    func decodeHex() throws -> UInt64 { try tree.hex(node) }

    /// A list of comparison objects, each with `pc`, `type`, `arg1` and `arg2` (what
    /// `ComparisonCoding` reads when all four are there; anything else is left to it).
    func decodeComparisons() throws -> [ComparisonRecord] {
        guard case .array(let start, let count) = node else { throw NotFast() }
        var records: [ComparisonRecord] = []
        records.reserveCapacity(count)
        for index in start..<start + count {
            guard case .object(let first, let members) = tree.element(index) else { throw NotFast() }
            var pc: UInt64?
            var type: UInt64?
            var arg1: UInt64?
            var arg2: UInt64?
            for member in first..<first + members {
                let value = TreeDecoder(tree: tree, node: tree.member(member), codingPath: codingPath)
                if tree.key(member, is: "pc") {
                    guard pc == nil else { throw NotFast() }
                    pc = try value.decodeHex()
                } else if tree.key(member, is: "type") {
                    guard type == nil else { throw NotFast() }
                    type = try value.decodeInteger(UInt64.self)
                } else if tree.key(member, is: "arg1") {
                    guard arg1 == nil else { throw NotFast() }
                    arg1 = try value.decodeHex()
                } else if tree.key(member, is: "arg2") {
                    guard arg2 == nil else { throw NotFast() }
                    arg2 = try value.decodeHex()
                }
            }
            guard let pc, let type, let arg1, let arg2 else { throw NotFast() }
            records.append(ComparisonRecord(type: type, first: arg1, second: arg2, pc: pc))
        }
        return records
    }

    func decode<T: Decodable>(_: T.Type) throws -> T {
        if T.self == HexList.self {
            guard case .array(let start, let count) = node else { throw NotFast() }
            var values: [UInt64] = []
            values.reserveCapacity(count)
            var index = start
            while index < start + count {
                values.append(try tree.hex(tree.element(index)))
                index += 1
            }
            guard let list = HexList(values) as? T else { throw NotFast() }
            return list
        }
        if T.self == [ComparisonCoding<StrictRules>].self {
            guard let list = try decodeComparisons().map(ComparisonCoding<StrictRules>.init(record:)) as? T else { throw NotFast() }
            return list
        }
        if T.self == [ComparisonCoding<LegacyRules>].self {
            guard let list = try decodeComparisons().map(ComparisonCoding<LegacyRules>.init(record:)) as? T else { throw NotFast() }
            return list
        }
        if T.self == HexWord.self {
            guard let word = HexWord(try decodeHex()) as? T else { throw NotFast() }
            return word
        }
        if T.self == String.self {
            guard let text = try decode(String.self) as? T else { throw NotFast() }
            return text
        }
        return try T(from: self)
    }
}

struct TreeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let tree: JSONTree
    let start: Int
    let count: Int
    let codingPath: [any CodingKey]

    init(tree: JSONTree, start: Int, count: Int, codingPath: [any CodingKey]) throws {
        self.tree = tree
        self.start = start
        self.count = count
        self.codingPath = codingPath
        // Duplicate keys: JSONDecoder's choice is its own to make.
        if count > 1 {
            var seen = Set<String>()
            for index in start..<start + count where !seen.insert(tree.key(index)).inserted { throw NotFast() }
        }
    }

    var allKeys: [Key] { (start..<start + count).compactMap { Key(stringValue: tree.key($0)) } }

    private func node(_ key: Key) -> JSONNode? {
        let name = key.stringValue
        for index in start..<start + count where tree.key(index, is: name) { return tree.member(index) }
        return nil
    }

    private func decoder(_ key: Key) throws -> TreeDecoder {
        guard let node = node(key) else { throw NotFast() }
        return TreeDecoder(tree: tree, node: node, codingPath: codingPath + [key])
    }

    func contains(_ key: Key) -> Bool { node(key) != nil }
    func decodeNil(forKey key: Key) throws -> Bool { try decoder(key).decodeNil() }
    func decode(_: Bool.Type, forKey key: Key) throws -> Bool { try decoder(key).decode(Bool.self) }
    func decode(_: String.Type, forKey key: Key) throws -> String { try decoder(key).decode(String.self) }
    func decode(_: Double.Type, forKey _: Key) throws -> Double { throw NotFast() }
    func decode(_: Float.Type, forKey _: Key) throws -> Float { throw NotFast() }
    func decode(_: Int.Type, forKey key: Key) throws -> Int { try decoder(key).decodeInteger(Int.self) }
    func decode(_: Int8.Type, forKey key: Key) throws -> Int8 { try decoder(key).decodeInteger(Int8.self) }
    func decode(_: Int16.Type, forKey key: Key) throws -> Int16 { try decoder(key).decodeInteger(Int16.self) }
    func decode(_: Int32.Type, forKey key: Key) throws -> Int32 { try decoder(key).decodeInteger(Int32.self) }
    func decode(_: Int64.Type, forKey key: Key) throws -> Int64 { try decoder(key).decodeInteger(Int64.self) }
    func decode(_: UInt.Type, forKey key: Key) throws -> UInt { try decoder(key).decodeInteger(UInt.self) }
    func decode(_: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder(key).decodeInteger(UInt8.self) }
    func decode(_: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder(key).decodeInteger(UInt16.self) }
    func decode(_: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder(key).decodeInteger(UInt32.self) }
    func decode(_: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder(key).decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_: T.Type, forKey key: Key) throws -> T { try decoder(key).decode(T.self) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder(key).container(keyedBy: NestedKey.self)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try decoder(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { throw NotFast() }
    func superDecoder(forKey key: Key) throws -> any Decoder { try decoder(key) }
}

struct TreeUnkeyedContainer: UnkeyedDecodingContainer {
    let tree: JSONTree
    let start: Int
    let total: Int
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(tree: JSONTree, start: Int, count: Int, codingPath: [any CodingKey]) {
        self.tree = tree
        self.start = start
        self.total = count
        self.codingPath = codingPath
    }

    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    /// The next element's decoder; advances only when `body` succeeds, as JSONDecoder does.
    private mutating func next<T>(_ body: (TreeDecoder) throws -> T) throws -> T {
        guard currentIndex < total else { throw NotFast() }
        let value = try body(TreeDecoder(tree: tree, node: tree.element(start + currentIndex), codingPath: codingPath + [AnyKey(intValue: currentIndex)]))
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard currentIndex < total else { throw NotFast() }
        if case .null = tree.element(start + currentIndex) {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_: Bool.Type) throws -> Bool { try next { try $0.decode(Bool.self) } }
    mutating func decode(_: String.Type) throws -> String { try next { try $0.decode(String.self) } }
    mutating func decode(_: Double.Type) throws -> Double { throw NotFast() }
    mutating func decode(_: Float.Type) throws -> Float { throw NotFast() }
    mutating func decode(_: Int.Type) throws -> Int { try next { try $0.decodeInteger(Int.self) } }
    mutating func decode(_: Int8.Type) throws -> Int8 { try next { try $0.decodeInteger(Int8.self) } }
    mutating func decode(_: Int16.Type) throws -> Int16 { try next { try $0.decodeInteger(Int16.self) } }
    mutating func decode(_: Int32.Type) throws -> Int32 { try next { try $0.decodeInteger(Int32.self) } }
    mutating func decode(_: Int64.Type) throws -> Int64 { try next { try $0.decodeInteger(Int64.self) } }
    mutating func decode(_: UInt.Type) throws -> UInt { try next { try $0.decodeInteger(UInt.self) } }
    mutating func decode(_: UInt8.Type) throws -> UInt8 { try next { try $0.decodeInteger(UInt8.self) } }
    mutating func decode(_: UInt16.Type) throws -> UInt16 { try next { try $0.decodeInteger(UInt16.self) } }
    mutating func decode(_: UInt32.Type) throws -> UInt32 { try next { try $0.decodeInteger(UInt32.self) } }
    mutating func decode(_: UInt64.Type) throws -> UInt64 { try next { try $0.decodeInteger(UInt64.self) } }
    mutating func decode<T: Decodable>(_: T.Type) throws -> T { try next { try $0.decode(T.self) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next { try $0.container(keyedBy: NestedKey.self) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next { try $0.unkeyedContainer() } }
    mutating func superDecoder() throws -> any Decoder { try next { $0 } }
}

struct TreeSingleValueContainer: SingleValueDecodingContainer {
    let decoder: TreeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.decodeNil() }
    func decode(_: Bool.Type) throws -> Bool { try decoder.decode(Bool.self) }
    func decode(_: String.Type) throws -> String { try decoder.decode(String.self) }
    func decode(_: Double.Type) throws -> Double { throw NotFast() }
    func decode(_: Float.Type) throws -> Float { throw NotFast() }
    func decode(_: Int.Type) throws -> Int { try decoder.decodeInteger(Int.self) }
    func decode(_: Int8.Type) throws -> Int8 { try decoder.decodeInteger(Int8.self) }
    func decode(_: Int16.Type) throws -> Int16 { try decoder.decodeInteger(Int16.self) }
    func decode(_: Int32.Type) throws -> Int32 { try decoder.decodeInteger(Int32.self) }
    func decode(_: Int64.Type) throws -> Int64 { try decoder.decodeInteger(Int64.self) }
    func decode(_: UInt.Type) throws -> UInt { try decoder.decodeInteger(UInt.self) }
    func decode(_: UInt8.Type) throws -> UInt8 { try decoder.decodeInteger(UInt8.self) }
    func decode(_: UInt16.Type) throws -> UInt16 { try decoder.decodeInteger(UInt16.self) }
    func decode(_: UInt32.Type) throws -> UInt32 { try decoder.decodeInteger(UInt32.self) }
    func decode(_: UInt64.Type) throws -> UInt64 { try decoder.decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_: T.Type) throws -> T { try decoder.decode(T.self) }
}
