/// Attribute forms (DWARF 5 §7.5.6, table 7.6; GNU extensions where binutils and libdw read them).
enum Form {
    static let addr: UInt64 = 0x01, block2: UInt64 = 0x03, block4: UInt64 = 0x04, data2: UInt64 = 0x05
    static let data4: UInt64 = 0x06, data8: UInt64 = 0x07, string: UInt64 = 0x08, block: UInt64 = 0x09
    static let block1: UInt64 = 0x0a, data1: UInt64 = 0x0b, flag: UInt64 = 0x0c, sdata: UInt64 = 0x0d
    static let strp: UInt64 = 0x0e, udata: UInt64 = 0x0f, refAddr: UInt64 = 0x10, ref1: UInt64 = 0x11
    static let ref2: UInt64 = 0x12, ref4: UInt64 = 0x13, ref8: UInt64 = 0x14, refUdata: UInt64 = 0x15
    static let indirect: UInt64 = 0x16, secOffset: UInt64 = 0x17, exprloc: UInt64 = 0x18, flagPresent: UInt64 = 0x19
    static let strx: UInt64 = 0x1a, addrx: UInt64 = 0x1b, refSup4: UInt64 = 0x1c, strpSup: UInt64 = 0x1d
    static let data16: UInt64 = 0x1e, lineStrp: UInt64 = 0x1f, refSig8: UInt64 = 0x20, implicitConst: UInt64 = 0x21
    static let loclistx: UInt64 = 0x22, rnglistx: UInt64 = 0x23, refSup8: UInt64 = 0x24
    static let strx1: UInt64 = 0x25, strx2: UInt64 = 0x26, strx3: UInt64 = 0x27, strx4: UInt64 = 0x28
    static let addrx1: UInt64 = 0x29, addrx2: UInt64 = 0x2a, addrx3: UInt64 = 0x2b, addrx4: UInt64 = 0x2c
    static let gnuAddrIndex: UInt64 = 0x1f01, gnuStrIndex: UInt64 = 0x1f02, gnuRefAlt: UInt64 = 0x1f20, gnuStrpAlt: UInt64 = 0x1f21
}

/// Attribute names the reader uses (DWARF 5 §7.5.4, table 7.5).
enum Attribute {
    static let sibling: UInt64 = 0x01, name: UInt64 = 0x03, stmtList: UInt64 = 0x10, lowPC: UInt64 = 0x11
    static let highPC: UInt64 = 0x12, compDir: UInt64 = 0x1b, abstractOrigin: UInt64 = 0x31, declFile: UInt64 = 0x3a
    static let declLine: UInt64 = 0x3b, specification: UInt64 = 0x47, ranges: UInt64 = 0x55, callColumn: UInt64 = 0x57
    static let callFile: UInt64 = 0x58, callLine: UInt64 = 0x59, linkageName: UInt64 = 0x6e
    static let strOffsetsBase: UInt64 = 0x72, addrBase: UInt64 = 0x73, rnglistsBase: UInt64 = 0x74
}

/// Tags the reader uses (DWARF 5 §7.5.3, table 7.3).
enum Tag {
    static let lexicalBlock: UInt64 = 0x0b, compileUnit: UInt64 = 0x11, inlinedSubroutine: UInt64 = 0x1d, subprogram: UInt64 = 0x2e
}

/// What the size of a form depends on: the unit's address size, 32- or 64-bit format, version.
struct FormFormat: Sendable {
    var addressSize: Int
    var is64: Bool
    var version: UInt16

    var offsetSize: Int { is64 ? 8 : 4 }

    /// The size of a form's value when it does not depend on the value; nil when it does.
    func fixedSize(_ form: UInt64) -> Int? {
        switch form {
        case Form.flagPresent, Form.implicitConst: 0
        case Form.data1, Form.ref1, Form.flag, Form.strx1, Form.addrx1: 1
        case Form.data2, Form.ref2, Form.strx2, Form.addrx2: 2
        case Form.strx3, Form.addrx3: 3
        case Form.data4, Form.ref4, Form.strx4, Form.addrx4, Form.refSup4: 4
        case Form.data8, Form.ref8, Form.refSig8, Form.refSup8: 8
        case Form.data16: 16
        case Form.addr: addressSize
        case Form.strp, Form.lineStrp, Form.secOffset, Form.gnuRefAlt, Form.gnuStrpAlt, Form.strpSup: offsetSize
        case Form.refAddr: version <= 2 ? addressSize : offsetSize
        default: nil
        }
    }
}

/// Skips one attribute value of `form`; an unknown form is an error (its size is unknown).
func skipForm(_ form: UInt64, _ reader: inout ByteReader, _ format: FormFormat) throws(DWARFError) {
    if let size = format.fixedSize(form) { return try reader.skip(size) }
    switch form {
    case Form.udata, Form.sdata, Form.refUdata, Form.strx, Form.addrx, Form.loclistx, Form.rnglistx, Form.gnuAddrIndex, Form.gnuStrIndex:
        _ = try reader.uleb()
    case Form.string: _ = try reader.cString()
    case Form.block, Form.exprloc: try reader.skip(try reader.uleb())
    case Form.block1: try reader.skip(Int(try reader.u8()))
    case Form.block2: try reader.skip(Int(try reader.u16()))
    case Form.block4: try reader.skip(Int(try reader.u32()))
    case Form.indirect:
        let actual = try reader.uleb()
        guard actual != Form.indirect else { throw reader.error("DW_FORM_indirect naming DW_FORM_indirect") }
        try skipForm(actual, &reader, format)
    default: throw reader.error("an attribute of unknown form 0x\(String(form, radix: 16))")
    }
}

/// A decoded attribute value, before what needs the unit's bases (string and address indexes)
/// or other sections is resolved.
enum AttributeValue {
    case constant(UInt64)
    case signed(Int64)
    case address(UInt64)
    case addressIndex(UInt64)
    /// A `.debug_info` offset (unit-relative references already made absolute).
    case reference(Int)
    case inlineString(UnsafePointer<CChar>)
    case stringOffset(UInt64)
    case lineStringOffset(UInt64)
    case stringIndex(UInt64)
    case sectionOffset(UInt64)
    case rangeListIndex(UInt64)
    /// Blocks, flags and forms kept in another file (dwz's alternate file).
    case other

    var unsigned: UInt64? {
        switch self {
        case .constant(let value): value
        case .signed(let value): UInt64(bitPattern: value)
        default: nil
        }
    }
}

/// Reads one attribute value of `form`. `unitOffset` makes unit-relative references absolute.
func readForm(_ form: UInt64, implicitConst: Int64, _ reader: inout ByteReader, _ format: FormFormat, unitOffset: Int) throws(DWARFError) -> AttributeValue {
    switch form {
    case Form.addr: return .address(try reader.unsigned(size: format.addressSize))
    case Form.data1: return .constant(UInt64(try reader.u8()))
    case Form.data2: return .constant(UInt64(try reader.u16()))
    case Form.data4: return .constant(UInt64(try reader.u32()))
    case Form.data8: return .constant(try reader.u64())
    case Form.udata: return .constant(try reader.uleb())
    case Form.sdata: return .signed(try reader.sleb())
    case Form.implicitConst: return .signed(implicitConst)
    case Form.flag: return .constant(UInt64(try reader.u8()))
    case Form.flagPresent: return .constant(1)
    case Form.ref1, Form.ref2, Form.ref4, Form.ref8, Form.refUdata:
        let start = reader.offset
        let relative: UInt64 =
            switch form {
            case Form.ref1: UInt64(try reader.u8())
            case Form.ref2: UInt64(try reader.u16())
            case Form.ref4: UInt64(try reader.u32())
            case Form.ref8: try reader.u64()
            default: try reader.uleb()
            }
        guard relative <= UInt64(reader.bytes.count - unitOffset) else { throw reader.error("a reference 0x\(String(relative, radix: 16)) past the end of .debug_info", at: start) }
        return .reference(unitOffset + Int(relative))
    case Form.refAddr:
        let start = reader.offset
        let target = format.version <= 2 ? try reader.unsigned(size: format.addressSize) : try reader.sectionOffset(is64: format.is64)
        guard target < UInt64(reader.bytes.count) else { throw reader.error("a reference 0x\(String(target, radix: 16)) past the end of .debug_info", at: start) }
        return .reference(Int(target))
    case Form.string: return .inlineString(try reader.cString())
    case Form.strp: return .stringOffset(try reader.sectionOffset(is64: format.is64))
    case Form.lineStrp: return .lineStringOffset(try reader.sectionOffset(is64: format.is64))
    case Form.strx, Form.gnuStrIndex: return .stringIndex(try reader.uleb())
    case Form.strx1: return .stringIndex(UInt64(try reader.u8()))
    case Form.strx2: return .stringIndex(UInt64(try reader.u16()))
    case Form.strx3: return .stringIndex(try reader.u24())
    case Form.strx4: return .stringIndex(UInt64(try reader.u32()))
    case Form.addrx, Form.gnuAddrIndex: return .addressIndex(try reader.uleb())
    case Form.addrx1: return .addressIndex(UInt64(try reader.u8()))
    case Form.addrx2: return .addressIndex(UInt64(try reader.u16()))
    case Form.addrx3: return .addressIndex(try reader.u24())
    case Form.addrx4: return .addressIndex(UInt64(try reader.u32()))
    case Form.secOffset: return .sectionOffset(try reader.sectionOffset(is64: format.is64))
    case Form.rnglistx: return .rangeListIndex(try reader.uleb())
    case Form.indirect:
        let actual = try reader.uleb()
        guard actual != Form.indirect else { throw reader.error("DW_FORM_indirect naming DW_FORM_indirect") }
        return try readForm(actual, implicitConst: 0, &reader, format, unitOffset: unitOffset)
    default:
        try skipForm(form, &reader, format)
        return .other
    }
}

/// One entry of an abbreviation table (DWARF 5 §7.5.3).
struct Abbreviation {
    enum Kind: UInt8 {
        /// A function or an inlined subroutine with an address attribute: a scope with code.
        case scope
        /// Looked through: what it holds is inlined into the enclosing scope.
        case lexicalBlock
        case other
    }

    var tag: UInt64
    var kind: Kind
    var hasChildren: Bool
    /// Its attribute specifications in the table's `specifications`.
    var attributes: Range<Int>
    /// The bytes of all its attribute values when none depends on the value; -1 otherwise.
    var fixedSize: Int
    /// The position among its attributes of `DW_AT_sibling`, -1 when it has none.
    var sibling: Int
    /// Whether `DW_AT_abstract_origin` is the only attribute that names it (a concrete inlined
    /// subroutine's, usually): its name and declaration are then all its origin's.
    var namedByOriginOnly: Bool
}

struct AttributeSpecification {
    var name: UInt64
    var form: UInt64
    var implicitConst: Int64
    /// The value's size when the form fixes it; -1 otherwise.
    var size: Int = -1
}

/// A unit's abbreviation table: codes to tags and attribute forms.
struct AbbreviationTable {
    private(set) var entries: [Abbreviation] = []
    private(set) var specifications: [AttributeSpecification] = []
    /// Entry index + 1 by code, for codes below its size (compilers number from 1); 0 for none.
    private var byCode: [Int32] = []
    private var sparse: [UInt64: Int32] = [:]

    init(_ abbrev: SectionBytes, offset: UInt64, format: FormFormat) throws(DWARFError) {
        guard offset < UInt64(abbrev.count) else {
            throw DWARFError(section: .abbrev, offset: Int(clamping: offset), problem: "a unit's abbreviation table offset past the end of the section (\(abbrev.count) bytes)")
        }
        var reader = abbrev.reader(at: Int(offset))
        // Room for a unit's usual table (gcc's: a few hundred entries), grown past it.
        entries.reserveCapacity(256)
        specifications.reserveCapacity(1024)
        byCode.reserveCapacity(256)
        while true {
            let codeOffset = reader.offset
            let code = try reader.uleb()
            if code == 0 { break }
            let tag = try reader.uleb()
            let hasChildren = try reader.u8() != 0
            let first = specifications.count
            var fixedSize = 0
            var sibling = -1
            // A declaration or an abstract instance has no address attribute: no code, nothing
            // inlined in it, so its subtree is skipped like any other.
            var hasCode = false
            var hasOrigin = false
            var hasOtherNaming = false
            while true {
                let name = try reader.uleb()
                let form = try reader.uleb()
                let implicitConst = form == Form.implicitConst ? try reader.sleb() : 0
                if name == 0 && form == 0 { break }
                if name == Attribute.sibling { sibling = specifications.count - first }
                switch name {
                case Attribute.lowPC, Attribute.highPC, Attribute.ranges: hasCode = true
                case Attribute.abstractOrigin: hasOrigin = true
                case Attribute.name, Attribute.linkageName, Attribute.declFile, Attribute.declLine, Attribute.specification: hasOtherNaming = true
                default: break
                }
                let size = format.fixedSize(form)
                if fixedSize >= 0, let size { fixedSize += size } else { fixedSize = -1 }
                specifications.append(AttributeSpecification(name: name, form: form, implicitConst: implicitConst, size: size ?? -1))
            }
            let kind: Abbreviation.Kind =
                switch tag {
                case Tag.subprogram, Tag.inlinedSubroutine: hasCode ? .scope : .other
                case Tag.lexicalBlock: .lexicalBlock
                default: .other
                }
            let index = Int32(entries.count + 1)
            entries.append(Abbreviation(tag: tag, kind: kind, hasChildren: hasChildren, attributes: first..<specifications.count, fixedSize: fixedSize, sibling: sibling,
                namedByOriginOnly: hasOrigin && !hasOtherNaming))
            if code < 1 << 16 {
                while Int(code) >= byCode.count { byCode.append(0) }
                guard byCode[Int(code)] == 0 else { throw reader.error("abbreviation code \(code) defined twice", at: codeOffset) }
                byCode[Int(code)] = index
            } else {
                guard sparse[code] == nil else { throw reader.error("abbreviation code \(code) defined twice", at: codeOffset) }
                sparse[code] = index
            }
        }
    }

    @inline(__always)
    func index(of code: UInt64) -> Int? {
        let found = code < UInt64(byCode.count) ? byCode[Int(code)] : (sparse[code] ?? 0)
        return found > 0 ? Int(found) - 1 : nil
    }
}

/// A unit's header (DWARF 5 §7.5.1): where it is and how its values are encoded.
struct UnitHeader {
    var offset: Int
    /// One past its last byte.
    var end: Int
    /// Its first DIE.
    var dieOffset: Int
    var format: FormFormat
    /// `DW_UT_*`; before DWARF 5, `DW_UT_compile` for every unit of `.debug_info`.
    var unitType: UInt8
    var abbreviationOffset: UInt64

    static let compile: UInt8 = 0x01

    /// Every unit header of `.debug_info`, in order.
    static func all(in info: SectionBytes) throws(DWARFError) -> [UnitHeader] {
        var units: [UnitHeader] = []
        var offset = 0
        while offset < info.count {
            var reader = info.reader(at: offset)
            let (length, is64) = try reader.initialLength()
            guard length <= UInt64(info.count - reader.offset) else {
                throw reader.error("a unit of \(length) bytes that runs past the end of the section (\(info.count) bytes)", at: offset)
            }
            let end = reader.offset + Int(length)
            reader = info.reader(at: reader.offset, end: end)
            let versionOffset = reader.offset
            let version = try reader.u16()
            guard (2...5).contains(version) else { throw reader.error("unit version \(version) (2 to 5 are known)", at: versionOffset) }
            var unitType = compile
            let abbreviationOffset: UInt64
            let addressSize: Int
            if version >= 5 {
                unitType = try reader.u8()
                addressSize = Int(try reader.u8())
                abbreviationOffset = try reader.sectionOffset(is64: is64)
                switch unitType {
                case 0x02, 0x06: try reader.skip(8 + (is64 ? 8 : 4))  // type units: signature, type offset
                case 0x04, 0x05: try reader.skip(8)  // skeleton and split units: DWO id
                default: break
                }
            } else {
                abbreviationOffset = try reader.sectionOffset(is64: is64)
                addressSize = Int(try reader.u8())
            }
            guard [1, 2, 4, 8].contains(addressSize) else { throw reader.error("an address size of \(addressSize) bytes", at: reader.offset - 1) }
            units.append(UnitHeader(
                offset: offset, end: end, dieOffset: reader.offset, format: FormFormat(addressSize: addressSize, is64: is64, version: version),
                unitType: unitType, abbreviationOffset: abbreviationOffset))
            offset = end
        }
        return units
    }
}
