/// What is wrong with a debug section: which section, at which byte, and what was expected there.
/// The symbolizer turns it into a ``SymbolizerError`` with code `.badDebugInfo`.
struct DWARFError: Error, Sendable {
    var section: DebugSection
    var offset: Int
    var problem: String

    var message: String {
        "its DWARF is malformed: \(section.name) at byte 0x\(String(offset, radix: 16)): \(problem); "
            + "rebuild the kernel or use the vmlinux from its build tree (a truncated or corrupted copy cannot be symbolized)"
    }
}

/// The debug sections the reader uses (DWARF 5 §7 and appendix B).
enum DebugSection: Int, CaseIterable, Sendable {
    case info, abbrev, line, str, lineStr, strOffsets, addr, ranges, rnglists

    var name: String {
        switch self {
        case .info: ".debug_info"
        case .abbrev: ".debug_abbrev"
        case .line: ".debug_line"
        case .str: ".debug_str"
        case .lineStr: ".debug_line_str"
        case .strOffsets: ".debug_str_offsets"
        case .addr: ".debug_addr"
        case .ranges: ".debug_ranges"
        case .rnglists: ".debug_rnglists"
        }
    }
}

/// The bytes of one debug section, little-endian, valid while the symbolizer that mapped them is
/// alive. Empty when the file has no such section.
struct SectionBytes: @unchecked Sendable {
    let base: UnsafeRawPointer?
    let count: Int
    var section: DebugSection
    /// Whether the last byte is a NUL, so that every string in the section ends inside it (the
    /// usual case for `.debug_str` and `.debug_line_str`, which then need no search per string).
    private let endsWithNUL: Bool

    init(_ section: DebugSection, base: UnsafeRawPointer? = nil, count: Int = 0) {
        self.section = section
        let base = count > 0 ? base : nil
        let count = base == nil ? 0 : count
        self.base = base
        self.count = count
        endsWithNUL = base.map { $0.load(fromByteOffset: count - 1, as: UInt8.self) == 0 } ?? false
    }

    func reader(at offset: Int, end: Int? = nil) -> ByteReader {
        ByteReader(self, offset: offset, end: end ?? count)
    }

    /// The NUL-terminated string at `offset`, or an error when `offset` is outside the section or
    /// the string runs past its end.
    func string(at offset: UInt64) throws(DWARFError) -> UnsafePointer<CChar> {
        guard let base, offset < UInt64(count) else {
            throw DWARFError(section: section, offset: Int(clamping: offset), problem: "a string offset past the end of the section (\(count) bytes)")
        }
        let start = base + Int(offset)
        guard memchr(start, 0, count - Int(offset)) != nil else {
            throw DWARFError(section: section, offset: Int(offset), problem: "a string without its terminating NUL before the end of the section")
        }
        return start.assumingMemoryBound(to: CChar.self)
    }
}

/// A cursor over a section's bytes that never reads past `end`: every read checks the bytes left
/// and throws a ``DWARFError`` naming the offset instead. Integers are little-endian; LEB128
/// (DWARF 5 §7.6) past 64 bits keeps the low 64.
struct ByteReader {
    let bytes: SectionBytes
    var offset: Int
    let end: Int

    init(_ bytes: SectionBytes, offset: Int, end: Int) {
        self.bytes = bytes
        self.offset = offset
        self.end = min(max(end, 0), bytes.count)
    }

    var isAtEnd: Bool { offset >= end }

    func error(_ problem: String, at position: Int? = nil) -> DWARFError {
        DWARFError(section: bytes.section, offset: position ?? offset, problem: problem)
    }

    private func truncated(_ needed: Int) -> DWARFError {
        error("\(needed) more bytes needed, the \(offset >= bytes.count ? "section" : "entry") ends first")
    }

    @inline(__always)
    mutating func u8() throws(DWARFError) -> UInt8 {
        guard offset >= 0, offset < end, let base = bytes.base else { throw truncated(1) }
        let value = base.load(fromByteOffset: offset, as: UInt8.self)
        offset += 1
        return value
    }

    @inline(__always)
    mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws(DWARFError) -> T {
        let size = MemoryLayout<T>.size
        guard offset >= 0, end - offset >= size, let base = bytes.base else { throw truncated(size) }
        let value = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func u16() throws(DWARFError) -> UInt16 { try fixed(UInt16.self) }
    mutating func u32() throws(DWARFError) -> UInt32 { try fixed(UInt32.self) }
    mutating func u64() throws(DWARFError) -> UInt64 { try fixed(UInt64.self) }

    /// A 3-byte unsigned integer (`DW_FORM_strx3`, `DW_FORM_addrx3`).
    mutating func u24() throws(DWARFError) -> UInt64 {
        let low = UInt64(try u16())
        return low | UInt64(try u8()) << 16
    }

    /// An unsigned integer of `size` bytes (1, 2, 4 or 8).
    mutating func unsigned(size: Int) throws(DWARFError) -> UInt64 {
        switch size {
        case 1: UInt64(try u8())
        case 2: UInt64(try u16())
        case 4: UInt64(try u32())
        case 8: try u64()
        default: throw error("an integer of \(size) bytes (only 1, 2, 4 and 8 exist)")
        }
    }

    @inline(__always)
    mutating func uleb() throws(DWARFError) -> UInt64 {
        // Most values (abbreviation codes, line-program operands) fit one byte.
        let first = try u8()
        if first < 0x80 { return UInt64(first) }
        var result = UInt64(first & 0x7f)
        var shift: UInt64 = 7
        while true {
            let byte = try u8()
            if shift < 64 { result |= UInt64(byte & 0x7f) << shift }
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    @inline(__always)
    mutating func sleb() throws(DWARFError) -> Int64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var byte: UInt8 = 0
        repeat {
            byte = try u8()
            if shift < 64 { result |= UInt64(byte & 0x7f) << shift }
            shift += 7
        } while byte & 0x80 != 0
        if shift < 64, byte & 0x40 != 0 { result |= ~0 << shift }
        return Int64(bitPattern: result)
    }

    /// A ULEB128 that must fit an `Int` count or index.
    mutating func ulebCount() throws(DWARFError) -> Int {
        let start = offset
        let value = try uleb()
        guard value <= UInt64(Int.max) else { throw error("a count of \(value), too large", at: start) }
        return Int(value)
    }

    @inline(__always)
    mutating func skip(_ count: Int) throws(DWARFError) {
        guard count >= 0, end - offset >= count else { throw truncated(count) }
        offset += count
    }

    mutating func skip(_ count: UInt64) throws(DWARFError) {
        guard count <= UInt64(end - offset) else { throw truncated(Int(clamping: count)) }
        offset += Int(count)
    }

    /// Skips a NUL-terminated string and returns where it starts.
    mutating func cString() throws(DWARFError) -> UnsafePointer<CChar> {
        guard let base = bytes.base, offset >= 0, offset < end, let nul = memchr(base + offset, 0, end - offset) else {
            throw error("a string without its terminating NUL before the end of the \(offset >= bytes.count ? "section" : "entry")")
        }
        let start = (base + offset).assumingMemoryBound(to: CChar.self)
        offset = UnsafeRawPointer(nul) - base + 1
        return start
    }

    /// A unit's initial length (DWARF 5 §7.4): the length and whether the unit is 64-bit DWARF.
    mutating func initialLength() throws(DWARFError) -> (length: UInt64, is64: Bool) {
        let start = offset
        let short = try u32()
        if short < 0xffff_fff0 { return (UInt64(short), false) }
        guard short == 0xffff_ffff else { throw error("a reserved initial length 0x\(String(short, radix: 16))", at: start) }
        return (try u64(), true)
    }

    /// A section offset of the unit's format: 4 bytes in 32-bit DWARF, 8 in 64-bit.
    mutating func sectionOffset(is64: Bool) throws(DWARFError) -> UInt64 {
        is64 ? try u64() : UInt64(try u32())
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A map from non-negative integers (section offsets, addresses of mapped strings) to small
/// values, by open addressing with a multiplicative hash: the symbolizer's memo tables, where
/// `Dictionary`'s seeded hashing would cost more than the lookups save.
struct IntegerMap<Value> {
    private var keys: [Int]
    private var values: [Value?]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: -1, count: size)
        values = Array(repeating: nil, count: size)
        mask = size - 1
    }

    @inline(__always)
    private func slot(_ key: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: Int64(key)) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    subscript(key: Int) -> Value? {
        get {
            var index = slot(key)
            while true {
                let found = keys[index]
                if found == key { return values[index] }
                if found < 0 { return nil }
                index = (index + 1) & mask
            }
        }
        set {
            guard let newValue else { return }
            if (count + 1) * 2 > keys.count { grow() }
            var index = slot(key)
            while keys[index] >= 0 && keys[index] != key { index = (index + 1) & mask }
            if keys[index] < 0 { count += 1 }
            keys[index] = key
            values[index] = newValue
        }
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        keys = Array(repeating: -1, count: oldKeys.count * 2)
        values = Array(repeating: nil, count: oldKeys.count * 2)
        mask = keys.count - 1
        count = 0
        for (key, value) in zip(oldKeys, oldValues) where key >= 0 { self[key] = value }
    }
}
