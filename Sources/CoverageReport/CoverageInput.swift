public import CoverageAPI
import Foundation

/// Why a coverage file cannot be used: which file, and what was wrong with it.
public struct CoverageInputError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// The PCs of one coverage file written by `kcovctl trace`: rawcover (one hex PC a line) or its JSON.
public struct CoverageInput: Sendable {
    public var path: String
    /// PC or CMP mode (rawcover files are PC mode; JSON says which).
    public var mode: CoverageMode
    /// Every recorded PC, repeats included (a PC recorded twice ran twice).
    public var pcs: [UInt64]
    /// The trace filled its buffer: coverage from this file is a lower bound.
    public var truncated: Bool
    /// Function-level coverage (the kprobe backend): every probed function by entry PC, the
    /// denominator; ``pcs`` then holds each entered function's PC once, and ``hits`` its count.
    public var probedFunctions: [UInt64: String]?
    /// How often each PC was recorded, when the file gives counts rather than repeats.
    public var hits: [UInt64: Int]?

    public init(
        path: String, mode: CoverageMode, pcs: [UInt64], truncated: Bool, probedFunctions: [UInt64: String]? = nil,
        hits: [UInt64: Int]? = nil
    ) {
        self.path = path
        self.mode = mode
        self.pcs = pcs
        self.truncated = truncated
        self.probedFunctions = probedFunctions
        self.hits = hits
    }

    /// Reads `path` (`-`: standard input), telling rawcover from JSON by its first non-blank character.
    public static func read(path: String) throws(CoverageInputError) -> CoverageInput {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw CoverageInputError(path: path, "cannot read the coverage file: \((error as NSError).localizedDescription)")
            }
        }
        let path = path == "-" ? "standard input" : path
        let first = data.first { ![0x20, 0x09, 0x0a, 0x0d].contains($0) }
        if first == UInt8(ascii: "{") { return try parseJSON(data, path: path) }
        return try parseRawcover(data, path: path)
    }

    /// Rawcover: one PC a line as hex, `0x` optional; blank lines ignored.
    static func parseRawcover(_ data: Data, path: String) throws(CoverageInputError) -> CoverageInput {
        var pcs: [UInt64] = []
        pcs.reserveCapacity(data.count / 19)
        var lineNumber = 0
        var failure: CoverageInputError?
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var start = 0
            while start < bytes.count, failure == nil {
                var end = start
                while end < bytes.count, bytes[end] != 0x0a { end += 1 }
                lineNumber += 1
                let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                if let pc = parseHex(line) {
                    pcs.append(pc)
                } else if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) {
                    let text = String(decoding: line.prefix(40), as: UTF8.self)
                    failure = CoverageInputError(
                        path: path, "line \(lineNumber): \(text.debugDescription) is not a hex PC; expected rawcover (one 0x… PC a line) or the JSON of `kcovctl trace --format json`")
                }
                start = end + 1
            }
        }
        if let failure { throw failure }
        return CoverageInput(path: path, mode: .pc, pcs: pcs, truncated: false)
    }

    /// The JSON of `kcovctl trace --format json`: `pcs` (PC mode) or `comparisons[].pc` (CMP mode).
    static func parseJSON(_ data: Data, path: String) throws(CoverageInputError) -> CoverageInput {
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CoverageInputError(path: path, "the JSON is not an object")
            }
            object = parsed
        } catch let error as CoverageInputError {
            throw error
        } catch {
            throw CoverageInputError(path: path, "not valid JSON: \((error as NSError).localizedDescription)")
        }
        if object["granularity"] as? String == "function" { return try parseFunctions(object, path: path) }
        if object["pcFormat"] != nil {
            throw CoverageInputError(path: path, "holds gVisor's synthetic PCs: symbolize them with `runsc symbolize`, not a vmlinux")
        }
        guard let modeName = object["mode"] as? String, let mode = CoverageMode(rawValue: modeName) else {
            throw CoverageInputError(path: path, "has no \"mode\" of \"pc\" or \"cmp\": not the JSON of `kcovctl trace`")
        }
        let strings: [Any]?
        switch mode {
        case .pc: strings = object["pcs"] as? [Any]
        case .comparisons: strings = (object["comparisons"] as? [Any]).map { $0.compactMap { ($0 as? [String: Any])?["pc"] } }
        }
        guard let strings else {
            throw CoverageInputError(path: path, "has no \(mode == .pc ? "\"pcs\"" : "\"comparisons\"") list")
        }
        var pcs: [UInt64] = []
        pcs.reserveCapacity(strings.count)
        for (index, value) in strings.enumerated() {
            guard let text = value as? String, let pc = text.utf8.withContiguousStorageIfAvailable({ parseHex(UnsafeRawBufferPointer($0)) }) ?? nil else {
                throw CoverageInputError(path: path, "PC \(index) (\(String(describing: value).prefix(40))) is not a hex string")
            }
            pcs.append(pc)
        }
        return CoverageInput(path: path, mode: mode, pcs: pcs, truncated: object["truncated"] as? Bool ?? false)
    }
}

extension CoverageInput {
    /// A kprobe trace: `probedFunctions` and `functions` (entered, with hits), each `{name, pc}`.
    static func parseFunctions(_ object: [String: Any], path: String) throws(CoverageInputError) -> CoverageInput {
        func entries(_ key: String) throws(CoverageInputError) -> [(pc: UInt64, name: String, hits: Int)] {
            guard let list = object[key] as? [[String: Any]] else {
                throw CoverageInputError(path: path, "a function-level trace without \"\(key)\": written by an older kcovctl? trace again")
            }
            var result: [(pc: UInt64, name: String, hits: Int)] = []
            for (index, entry) in list.enumerated() {
                guard let name = entry["name"] as? String, let text = entry["pc"] as? String,
                      let pc = text.utf8.withContiguousStorageIfAvailable({ parseHex(UnsafeRawBufferPointer($0)) }) ?? nil
                else {
                    throw CoverageInputError(path: path, "\(key)[\(index)] has no name and hex pc")
                }
                result.append((pc, name, entry["hits"] as? Int ?? 0))
            }
            return result
        }
        let probed = try entries("probedFunctions")
        let entered = try entries("functions")
        return CoverageInput(
            path: path, mode: .pc, pcs: entered.map(\.pc), truncated: false,
            probedFunctions: Dictionary(probed.map { ($0.pc, $0.name) }, uniquingKeysWith: { first, _ in first }),
            hits: Dictionary(entered.map { ($0.pc, $0.hits) }, uniquingKeysWith: +))
    }
}

extension CoverageInput {
    /// A PC in hexadecimal, `0x` optional, 1 to 16 digits; `nil` otherwise.
    public static func parsePC(_ text: String) -> UInt64? {
        var text = text
        return text.withUTF8 { parseHex(UnsafeRawBufferPointer($0)) }
    }
}

/// `0x`-optional hex with surrounding blanks, at most 16 digits; `nil` otherwise.
func parseHex(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
    var start = 0
    var end = bytes.count
    while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
    while end > start, [0x20, 0x09, 0x0d].contains(bytes[end - 1]) { end -= 1 }
    if end - start >= 2, bytes[start] == UInt8(ascii: "0"), bytes[start + 1] | 0x20 == UInt8(ascii: "x") { start += 2 }
    guard end > start, end - start <= 16 else { return nil }
    var value: UInt64 = 0
    for index in start..<end {
        let byte = bytes[index]
        let digit: UInt8
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
        default: return nil
        }
        value = value << 4 | UInt64(digit)
    }
    return value
}
