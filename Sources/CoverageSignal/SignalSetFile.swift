public import CoverageAPI
import Foundation

/// A signal set on disk: compact, and mergeable in any order (union), so a fleet of fuzzing VMs
/// can combine their files.
///
/// Layout (all integers little-endian or LEB128):
/// - magic `KCOVSET1` (8 bytes);
/// - the content: one byte, 0 PCs (blocks), 1 edge signals, 2 functions;
/// - the kernel build it came from: LEB128 length, then UTF-8 (empty: unknown);
/// - the element count: LEB128;
/// - the elements in ascending order, each as the LEB128 difference from the previous one (the
///   first from 0): sorted kernel PCs are close together, so most take 1–3 bytes.
public struct SignalSetFile: Sendable, Hashable {
    /// What the elements are.
    public enum Content: UInt8, Sendable, Hashable, CaseIterable {
        case pcs = 0
        case edges = 1
        case functions = 2

        public var name: String {
            switch self {
            case .pcs: "block PCs"
            case .edges: "edge signals"
            case .functions: "function addresses"
            }
        }
    }

    public var content: Content
    /// The kernel build the set came from (a build id, or `uname -r -v`); empty when unknown.
    public var kernel: String
    public var set: PCSet

    public static let magic = Array("KCOVSET1".utf8)

    public init(content: Content, kernel: String, set: PCSet) {
        self.content = content
        self.kernel = kernel
        self.set = set
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.append(content.rawValue)
        let name = Array(kernel.utf8)
        appendLEB128(UInt64(name.count), to: &bytes)
        bytes += name
        let sorted = set.sorted
        appendLEB128(UInt64(sorted.count), to: &bytes)
        bytes.reserveCapacity(bytes.count + sorted.count * 3)
        var previous: UInt64 = 0
        for element in sorted {
            appendLEB128(element - previous, to: &bytes)
            previous = element
        }
        return bytes
    }

    /// Reads a file's bytes; `source` names it in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws(SignalSetError) -> SignalSetFile {
        var reader = Reader(bytes: bytes, source: source)
        guard bytes.count >= magic.count, Array(bytes.prefix(magic.count)) == magic else {
            throw SignalSetError(source: source, "not a signal set file (no KCOVSET1 header): write one with `kcovctl signal --output`")
        }
        reader.offset = magic.count
        let code = try reader.byte("content")
        guard let content = Content(rawValue: code) else {
            throw SignalSetError(source: source, "content \(code) is not one of 0 (block PCs), 1 (edge signals), 2 (function addresses)")
        }
        let nameLength = try reader.leb128("kernel name length")
        guard nameLength <= UInt64(bytes.count - reader.offset) else {
            throw SignalSetError(source: source, "the kernel name is \(nameLength) bytes, more than the file holds: the file is truncated")
        }
        let name = String(decoding: bytes[reader.offset..<(reader.offset + Int(nameLength))], as: UTF8.self)
        reader.offset += Int(nameLength)
        let count = try reader.leb128("element count")
        // Each element takes at least one byte: a larger count cannot be true.
        guard count <= UInt64(bytes.count - reader.offset) else {
            throw SignalSetError(source: source, "the file says it holds \(count) elements but has \(bytes.count - reader.offset) bytes left: it is truncated")
        }
        var set = PCSet(minimumCapacity: Int(count))
        var value: UInt64 = 0
        for index in 0..<Int(count) {
            let delta = try reader.leb128("element \(index)")
            if index > 0 && delta == 0 {
                throw SignalSetError(source: source, "element \(index) repeats the one before it: the elements must ascend")
            }
            let (sum, overflow) = value.addingReportingOverflow(delta)
            guard !overflow else { throw SignalSetError(source: source, "element \(index) is past 2^64: the file is corrupt") }
            value = sum
            set.insert(value)
        }
        guard reader.offset == bytes.count else {
            throw SignalSetError(source: source, "\(bytes.count - reader.offset) bytes follow the last element: the file is corrupt")
        }
        return SignalSetFile(content: content, kernel: name, set: set)
    }

    /// Whether `bytes` are a set file's (they start with ``magic``): how readers that take set
    /// files and traces alike tell them apart, from bytes read once (a pipe cannot be read twice).
    public static func isSetFile(_ bytes: [UInt8]) -> Bool {
        bytes.count >= magic.count && bytes.prefix(magic.count).elementsEqual(magic)
    }

    /// The union of this set and `other`.
    ///
    /// - Throws: when the two hold different contents, or come from different kernel builds
    ///   (an unknown build matches any).
    public func merged(with other: SignalSetFile, otherSource: String) throws(SignalSetError) -> SignalSetFile {
        try checkCompatible(content: other.content, kernel: other.kernel, source: otherSource)
        return SignalSetFile(content: content, kernel: kernel.isEmpty ? other.kernel : kernel, set: set.union(other.set))
    }

    /// Whether elements of `content` from `kernel` may be compared with or merged into this set.
    public func checkCompatible(content other: Content, kernel otherKernel: String, source: String) throws(SignalSetError) {
        guard other == content else {
            throw SignalSetError(source: source, "holds \(other.name), but the set it meets holds \(content.name): compare like with like")
        }
        guard kernel.isEmpty || otherKernel.isEmpty || kernel == otherKernel else {
            throw SignalSetError(
                source: source, "comes from kernel build \"\(otherKernel)\", but the set it meets from \"\(kernel)\": PCs of different builds do not match")
        }
    }

    /// Appends `value` as LEB128.
    private func appendLEB128(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private struct Reader {
        let bytes: [UInt8]
        let source: String
        var offset = 0

        mutating func byte(_ what: String) throws(SignalSetError) -> UInt8 {
            guard offset < bytes.count else { throw SignalSetError(source: source, "the file ends before its \(what): it is truncated") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func leb128(_ what: String) throws(SignalSetError) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let next = try byte(what)
                guard shift < 64, shift < 63 || next & 0x7e == 0 else {
                    throw SignalSetError(source: source, "\(what) does not fit 64 bits: the file is corrupt")
                }
                value |= UInt64(next & 0x7f) << shift
                if next & 0x80 == 0 { return value }
                shift += 7
            }
        }
    }
}

/// Why a signal set file cannot be used: which file, and what was wrong.
public typealias SignalSetError = InputError
