public import CoverageAPI

/// Why a trace file cannot be read or written: which file, and what was wrong.
///
/// Problems with one field start the message with the field's path, what was expected and what
/// was found: `tasks[0].pcs[3]: expected a hex PC string such as "0xffffffff81000010", found 12
/// (a number, not a hex string)`. Rawcover problems name the line: `line 7: …`.
public typealias TraceFileError = InputError

// MARK: - Hex

extension TraceFile {
    /// A PC as rawcover and the command line give it: hex, `0x` optional, 1 to 16 digits,
    /// surrounding blanks ignored; `nil` otherwise.
    public static func parsePC(_ text: String) -> UInt64? {
        var text = text
        return text.withUTF8 { parseLenientHex(UnsafeRawBufferPointer($0)) }
    }
}

/// Hex digits, lowercase, for writing.
let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// The value of one hex digit, or `nil`. (Plain arithmetic: cheap in debug builds too.)
@inline(__always)
func hexValue(_ byte: UInt8) -> UInt64? {
    let digit = byte &- 0x30
    if digit < 10 { return UInt64(digit) }
    let letter = (byte | 0x20) &- 0x61
    if letter < 6 { return UInt64(letter &+ 10) }
    return nil
}

/// 1 to 16 hex digits and nothing else; `nil` otherwise (so the value never overflows).
@inline(__always)
func parseHexDigits(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> UInt64? {
    guard end > start, end - start <= 16 else { return nil }
    var value: UInt64 = 0
    var index = start
    while index < end {
        guard let digit = hexValue(bytes[index]) else { return nil }
        value = value << 4 | digit
        index += 1
    }
    return value
}

/// The JSON form: `0x` (or `0X`) and 1 to 16 hex digits, nothing around them.
@inline(__always)
func parseStrictHex(_ bytes: UnsafeRawBufferPointer) -> UInt64? { parseStrictHex(bytes, from: 0, to: bytes.count) }

/// The JSON form in `bytes[start..<end]`.
@inline(__always)
func parseStrictHex(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> UInt64? {
    guard start >= 0, end <= bytes.count, end - start >= 3, bytes[start] == 0x30, bytes[start + 1] | 0x20 == 0x78 else { return nil }
    return parseHexDigits(bytes, from: start + 2, to: end)
}

/// The rawcover form: `0x` optional, blanks (and a CR) around ignored, 1 to 16 digits.
func parseLenientHex(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
    var start = 0
    var end = bytes.count
    while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
    while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 || bytes[end - 1] == 0x0d { end -= 1 }
    if end - start >= 2, bytes[start] == UInt8(ascii: "0"), bytes[start + 1] | 0x20 == UInt8(ascii: "x") { start += 2 }
    return parseHexDigits(bytes, from: start, to: end)
}

/// Why `text` is not the JSON hex form, for messages: `nil` when it is.
func hexProblem(_ text: String) -> String? {
    var text = text
    return text.withUTF8 { utf8 -> String? in
        let bytes = UnsafeRawBufferPointer(utf8)
        if parseStrictHex(bytes) != nil { return nil }
        let prefixed = bytes.count >= 2 && bytes[0] == UInt8(ascii: "0") && bytes[1] | 0x20 == UInt8(ascii: "x")
        let digits = bytes[(prefixed ? 2 : 0)...]
        if !digits.allSatisfy({ hexValue($0) != nil }) || (digits.isEmpty && !prefixed) { return "not a hex string" }
        if !prefixed { return "no 0x prefix" }
        if digits.isEmpty { return "no digits after 0x" }
        return "more than 16 hex digits"
    }
}

/// Appends `0x%016x` of `value`.
@inline(__always)
func appendHex(_ value: UInt64, to bytes: inout [UInt8]) {
    bytes.append(UInt8(ascii: "0"))
    bytes.append(UInt8(ascii: "x"))
    var shift: UInt64 = 60
    while true {
        bytes.append(hexDigits[Int(truncatingIfNeeded: (value >> shift) & 0xf)])
        if shift == 0 { break }
        shift -= 4
    }
}

/// `0x%016x` of `value`.
func hexString(_ value: UInt64) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(18)
    appendHex(value, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}
