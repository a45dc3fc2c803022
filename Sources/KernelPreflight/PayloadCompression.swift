import Foundation

/// How a bzImage's payload is compressed, told by its first bytes: the formats Linux's x86
/// decompressor accepts (`CONFIG_KERNEL_GZIP` … `CONFIG_KERNEL_ZSTD`), and the system tool that
/// decompresses each (Scripts/setup.sh installs them).
///
/// The payload's last four bytes are the decompressed size, little-endian: kbuild's `size_append`
/// adds them after every format but gzip, whose own trailer ends with that size
/// (scripts/Makefile.lib, arch/x86/boot/compressed/Makefile and mkpiggy.c in the kernel source).
public enum PayloadCompression: String, Sendable, CaseIterable, Hashable {
    case gzip, bzip2, lzma, xz, lzo, lz4, zstd

    /// The format's leading bytes (lib/decompress.c in the kernel source lists the same).
    public var magic: [UInt8] {
        switch self {
        case .gzip: [0x1f, 0x8b]
        case .bzip2: [0x42, 0x5a, 0x68]  // "BZh"
        case .lzma: [0x5d, 0x00, 0x00]  // properties byte, then the dictionary size
        case .xz: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]
        case .lzo: [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]  // lzop's file header
        case .lz4: [0x02, 0x21, 0x4c, 0x18]  // the legacy frame `lz4 -l` writes
        case .zstd: [0x28, 0xb5, 0x2f, 0xfd]
        }
    }

    /// The command that decompresses a stream of this format from standard input to standard
    /// output, and the Debian package that has it.
    public var decompressor: (tool: String, arguments: [String], package: String) {
        switch self {
        case .gzip: ("gzip", ["-dc"], "gzip")
        case .bzip2: ("bzip2", ["-dc"], "bzip2")
        case .lzma: ("xz", ["-dc", "--format=lzma"], "xz-utils")
        case .xz: ("xz", ["-dc"], "xz-utils")
        case .lzo: ("lzop", ["-dc"], "lzop")
        case .lz4: ("lz4", ["-dc"], "lz4")
        case .zstd: ("zstd", ["-dc"], "zstd")
        }
    }

    /// Whether kbuild appended the size after the compressed stream (every format but gzip).
    public var sizeIsAppended: Bool { self != .gzip }

    /// The format whose magic `bytes` start with, or nil.
    public static func detect(_ bytes: [UInt8]) -> PayloadCompression? {
        allCases.first { bytes.has($0.magic, at: 0) }
    }
}

/// Runs a system decompressor over bytes and collects what it writes, never more than a limit.
enum Decompressor {
    /// The absolute path of `tool` on `PATH`, or nil.
    static func locate(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/\(tool)") {
            return "\(directory)/\(tool)"
        }
        return nil
    }

    /// Decompresses `input` with `format`'s tool. Throws ``PreflightError/Code/toolMissing`` when
    /// the tool is not installed and ``PreflightError/Code/corruptPayload`` when it fails or would
    /// write more than `limit` bytes; `what` names the stream in messages ("the payload").
    static func decompress(
        _ input: UnsafeRawBufferPointer, format: PayloadCompression, limit: Int, what: String, path: String
    ) throws(PreflightError) -> [UInt8] {
        let (tool, arguments, package) = format.decompressor
        guard let executable = locate(tool) else {
            throw PreflightError(.toolMissing, path: path,
                "\(what) is \(format.rawValue)-compressed and `\(tool)` is not installed: run Scripts/setup.sh (apt-get install \(package))")
        }
        do {
            // The input and the tool's messages go through unlinked temporary files (no pipe to
            // write while reading the other, so no deadlock and no SIGPIPE); the output through a
            // pipe, read with a limit.
            let inputFile = try TemporaryFile()
            try inputFile.write(input)
            let errorFile = try TemporaryFile()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardInput = inputFile.handle
            let output = Pipe()
            process.standardOutput = output
            process.standardError = errorFile.handle
            try process.run()
            let reader = output.fileHandleForReading.fileDescriptor
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            var overflow = false
            while true {
                let got = chunk.withUnsafeMutableBytes { Glibc.read(reader, $0.baseAddress, $0.count) }
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { break }
                guard bytes.count + got <= limit else {
                    overflow = true
                    process.terminate()
                    break
                }
                bytes.append(contentsOf: chunk[0..<got])
            }
            process.waitUntilExit()
            if overflow {
                throw PreflightError(.corruptPayload, path: path, "\(what) decompresses to more than \(limit) bytes: corrupt, or not a kernel")
            }
            guard process.terminationReason == .exit, process.terminationStatus == 0 else {
                let message = errorFile.contents(limit: 2048).trimmingCharacters(in: .whitespacesAndNewlines)
                throw PreflightError(.corruptPayload, path: path,
                    "\(what) does not decompress as \(format.rawValue) (`\(tool) \(arguments.joined(separator: " "))` failed: \(message.isEmpty ? "status \(process.terminationStatus)" : message)): a corrupt or truncated image; copy it again")
            }
            return bytes
        } catch let error as PreflightError {
            throw error
        } catch {
            throw PreflightError(.unreadable, path: path, "cannot run `\(tool)` to decompress \(what): \(error)")
        }
    }
}

/// An unlinked temporary file: only its descriptor names it, so it goes when closed.
private final class TemporaryFile {
    let handle: FileHandle

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/kcov-preflight-XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let wrote = Glibc.write(handle.fileDescriptor, bytes.baseAddress! + done, bytes.count - done)
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            done += wrote
        }
        lseek(handle.fileDescriptor, 0, SEEK_SET)
    }

    func contents(limit: Int) -> String {
        lseek(handle.fileDescriptor, 0, SEEK_SET)
        var buffer = [UInt8](repeating: 0, count: limit)
        let got = buffer.withUnsafeMutableBytes { Glibc.read(handle.fileDescriptor, $0.baseAddress, limit) }
        return String(decoding: buffer.prefix(max(got, 0)), as: UTF8.self)
    }
}
