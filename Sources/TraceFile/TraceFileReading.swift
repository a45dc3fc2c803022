public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TraceFile {
    /// Reads the trace file at `path` (`-`: standard input, read with read(2) on descriptor 0),
    /// as ``decode(_:source:)`` does. Errors name the path (or `standard input`): an unreadable
    /// file is `cannot read the trace file: <strerror>`.
    public static func read(path: String) throws(TraceFileError) -> TraceFile {
        let source = path == "-" ? "standard input" : path
        return try decode(bytes: try readBytes(path: path), source: source)
    }

    /// Decodes the bytes of one trace file, as ``decode(_:source:)`` does.
    public static func decode(bytes: [UInt8], source: String) throws(TraceFileError) -> TraceFile {
        let result = bytes.withUnsafeBytes { buffer in Result { () throws(TraceFileError) in try decode(buffer, data: nil, source: source) } }
        return try result.get()
    }

    /// Decodes one trace file, telling the kinds apart by the first non-blank byte (`{` or `[`:
    /// JSON; anything else: rawcover):
    ///
    /// - version 1 (`"format": "kcovctl-trace"`);
    /// - the JSON of an older `kcovctl trace --format json` (no `"format"`, a `"mode"`): PC and
    ///   CMP mode; with `"pcFormat"` (gVisor) unit synthetic-block; with `"granularity": "function"`
    ///   (kprobe) unit function. One task, backend `unknown` if the file has none;
    /// - rawcover: one hex PC a line, `0x` optional, blank lines ignored; backend `unknown`, unit
    ///   pc, mode pc, one task, not truncated.
    ///
    /// Throws a ``TraceFileError`` with `source` as its source: for a file of a later version,
    /// naming both versions and saying to upgrade kcovctl; for a malformed field, its path, what
    /// was expected and what was found (`tasks[0].pcs[3]: expected a hex PC string such as
    /// "0xffffffff81000010", found 12 (a number, not a hex string)`); for invalid JSON, `not valid
    /// JSON: … at line L, column C`; for a rawcover line, its number; for anything else, `not a
    /// kcovctl trace: …`. Never traps, whatever the input.
    public static func decode(_ data: Data, source: String) throws(TraceFileError) -> TraceFile {
        let result = data.withUnsafeBytes { buffer in Result { () throws(TraceFileError) in try decode(buffer, data: data, source: source) } }
        return try result.get()
    }

    /// `data` is `bytes` as `Data` when the caller has it (JSONDecoder needs it; copied otherwise).
    static func decode(_ bytes: UnsafeRawBufferPointer, data: Data?, source: String) throws(TraceFileError) -> TraceFile {
        var start = 0
        if bytes.count >= 3, bytes[0] == 0xef, bytes[1] == 0xbb, bytes[2] == 0xbf { start = 3 }
        let first = bytes[start...].first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0a && $0 != 0x0d }
        guard first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { return try decodeRawcover(bytes, source: source) }
        if let file = fastDecode(TraceFile.self, from: bytes) { return file }
        do {
            return try JSONDecoder().decode(TraceFile.self, from: data ?? Data(bytes))
        } catch {
            throw TraceFileError(source: source, message(for: error, bytes: bytes))
        }
    }

    /// A `JSONDecoder` error as a message: the field's path and the problem, or where the JSON
    /// breaks (found by the fast parser, since JSONDecoder does not say).
    static func message(for error: any Error, bytes: UnsafeRawBufferPointer) -> String {
        if let error = error as? DecodingError {
            switch error {
            case .dataCorrupted(let context) where context.underlyingError is FieldProblem:
                return context.codingPath.isEmpty ? context.debugDescription : "\(pathText(context.codingPath)): \(context.debugDescription)"
            case .dataCorrupted(let context) where context.codingPath.isEmpty:
                do {
                    _ = try JSONTree(bytes)
                } catch {
                    let (line, column) = lineAndColumn(of: error.offset, in: bytes)
                    return "not valid JSON: \(error.message) at line \(line), column \(column)"
                }
                return "not valid JSON: \(context.debugDescription)"
            case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context), .valueNotFound(_, let context):
                return "\(pathText(context.codingPath)): \(context.debugDescription)"
            @unknown default:
                return "not a readable trace: \(error)"
            }
        }
        return "not a readable trace: \(error)"
    }

    /// 1-based line and column (in bytes) of `offset`.
    static func lineAndColumn(of offset: Int, in bytes: UnsafeRawBufferPointer) -> (Int, Int) {
        let end = min(max(offset, 0), bytes.count)
        var line = 1
        var lineStart = 0
        for index in 0..<end where bytes[index] == 0x0a {
            line += 1
            lineStart = index + 1
        }
        return (line, end - lineStart + 1)
    }

    /// Rawcover: one PC a line, hex, `0x` optional, blanks around and a CR ignored, blank lines skipped.
    static func decodeRawcover(_ bytes: UnsafeRawBufferPointer, source: String) throws(TraceFileError) -> TraceFile {
        var pcs: [UInt64] = []
        pcs.reserveCapacity(bytes.count / 19)
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0a { end += 1 }
            lineNumber += 1
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if let pc = parseLenientHex(line) {
                pcs.append(pc)
            } else if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) {
                let text = String(decoding: line.prefix(40), as: UTF8.self).debugDescription + (line.count > 40 ? "…" : "")
                if pcs.isEmpty {
                    throw TraceFileError(
                        source: source,
                        "not a kcovctl trace: neither JSON (which starts with \"{\") nor rawcover (one hex PC a line): line \(lineNumber): \(text) is not a hex PC")
                }
                throw TraceFileError(
                    source: source, "line \(lineNumber): \(text) is not a hex PC; expected rawcover (one 0x… PC a line) or the JSON of `kcovctl trace --format json`")
            }
            start = end + 1
        }
        return TraceFile(backend: "unknown", unit: .pc, mode: .pc, tasks: [Task(truncated: false, pcs: pcs)])
    }

    /// All of `path`'s bytes (`-`: descriptor 0), read once with read(2), so a pipe, a FIFO or
    /// `/dev/stdin` gives the same bytes as a regular file (a caller that must tell file kinds
    /// apart looks at these bytes instead of opening the file twice). Errors name the path (or
    /// `standard input`): `cannot read the <kind>: <strerror>`.
    public static func readBytes(path: String, kind: String = "trace file") throws(TraceFileError) -> [UInt8] {
        let source = path == "-" ? "standard input" : path
        func failure() -> TraceFileError {
            TraceFileError(source: source, "cannot read the \(kind): \(String(cString: strerror(errno)))")
        }
        let descriptor: Int32
        if path == "-" {
            descriptor = 0
        } else {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw failure() }
        }
        defer { if descriptor != 0 { close(descriptor) } }
        var size = 1 << 16
        var status = stat()
        if fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_size > 0 {
            size = Int(clamping: status.st_size) &+ 1
        }
        var bytes = [UInt8](repeating: 0, count: max(size, 1 << 16))
        var count = 0
        while true {
            if count == bytes.count { bytes.append(contentsOf: repeatElement(0, count: bytes.count)) }
            let got = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return -1 }
                return systemRead(descriptor, base + count, buffer.count - count)
            }
            if got == 0 { break }
            if got < 0 {
                if errno == EINTR { continue }
                throw failure()
            }
            count += got
        }
        bytes.removeSubrange(count...)
        return bytes
    }
}

/// read(2), by a name `TraceFile.read(path:)` does not hide.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.read(descriptor, buffer, count)
    #else
    Darwin.read(descriptor, buffer, count)
    #endif
}
