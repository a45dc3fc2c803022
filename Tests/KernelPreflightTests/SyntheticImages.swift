import KprobeBackend
import LinuxBackend
import Foundation
@testable import KernelPreflight
import TestSupport
import Testing

/// bzImages, configurations and files built by the tests, in a temporary folder removed at the end.
final class Scratch {
    let folder: String

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("preflight-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Writes `bytes` to a new file and returns its path.
    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = folder + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// `content` compressed as kbuild compresses a payload: the format's tool, then (for every
    /// format but gzip) the uncompressed size as four little-endian bytes.
    func compress(_ content: [UInt8], _ format: PayloadCompression) throws -> [UInt8] {
        let input = try file("content-\(UUID())", content)
        let command: [String] = switch format {
        case .gzip: ["gzip", "-9nc"]
        case .bzip2: ["bzip2", "-9c"]
        case .lzma: ["xz", "--format=lzma", "-9c"]
        case .xz: ["xz", "--check=crc32", "-c"]
        case .lzo: ["lzop", "-9c"]
        case .lz4: ["lz4", "-l", "-9", "-c"]
        case .zstd: ["zstd", "-19", "-q", "-c"]
        }
        guard let tool = Decompressor.locate(command[0]) else { throw ToolFailure(description: "\(command[0]) is not installed: run Scripts/setup.sh") }
        let result = try runProgram([tool] + command.dropFirst() + [input])
        guard result.status == 0 else { throw ToolFailure(description: "\(command) failed: \(result.errors)") }
        var bytes = [UInt8](result.standardOutput)
        if format.sizeIsAppended { bytes += littleEndian(UInt32(content.count)) }
        return bytes
    }
}

func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<T.bitWidth / 8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

/// A bzImage's layout, field by field (Documentation/arch/x86/boot.rst): a setup area of
/// `setupSectors + 1` sectors holding the header and the version string, then the payload at
/// `payloadOffset` from the protected-mode kernel's start.
struct SyntheticImage {
    var setupSectors: UInt8 = 4
    var protocolVersion: UInt16 = 0x020f
    var kernelVersion: String? = "6.99.0-synthetic (tester@host) #1 SMP Tue Dec 1 00:00:00 UTC 2026"
    var payload: [UInt8]
    var payloadOffset: UInt32 = 0x40
    /// Overrides `payload_length` (the payload's true length by default).
    var payloadLength: UInt32?

    var bytes: [UInt8] {
        let sectors = setupSectors == 0 ? 4 : Int(setupSectors)
        var image = [UInt8](repeating: 0, count: (sectors + 1) * 512 + Int(payloadOffset))
        func put(_ field: [UInt8], at offset: Int) { image.replaceSubrange(offset..<offset + field.count, with: field) }
        image[0x1f1] = setupSectors
        put(littleEndian(UInt16(0xaa55)), at: 0x1fe)
        put(Array("HdrS".utf8), at: 0x202)
        put(littleEndian(protocolVersion), at: 0x206)
        if let kernelVersion {
            put(littleEndian(UInt16(0x100)), at: 0x20e)
            put(Array(kernelVersion.utf8) + [0], at: 0x300)
        }
        put(littleEndian(payloadOffset), at: 0x248)
        put(littleEndian(payloadLength ?? UInt32(payload.count)), at: 0x24c)
        return image + payload + [UInt8](repeating: 0xcc, count: 64)
    }
}

/// A `.config` with `options` set as given (`"KCOV": "y"`).
func configText(_ options: [String: String]) -> String {
    "# Automatically generated file; DO NOT EDIT.\n" + options.keys.sorted().map { key in
        options[key] == "n" ? "# CONFIG_\(key) is not set" : "CONFIG_\(key)=\(options[key]!)"
    }.joined(separator: "\n") + "\n"
}

/// Every option of `requirements` built in.
func allBuiltIn(_ requirements: GuestRequirements) -> [String: String] {
    Dictionary(uniqueKeysWithValues: requirements.options.map { ($0.option, "y") })
}

/// A payload as a kernel build makes one: an ELF file (this machine's /bin/true, which has a
/// build id) with, if given, the configuration between kernel/configs.c's markers.
func kernelLikePayload(_ scratch: Scratch, configuration: String?) throws -> [UInt8] {
    var elf = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/bin/true")))
    if let configuration {
        let blob = try scratch.compress(Array(configuration.utf8), .gzip)
        elf += Array("IKCFG_ST".utf8) + blob + Array("IKCFG_ED".utf8)
    }
    return elf
}

/// Runs `body`, which must throw a ``PreflightError``, and returns it (nil, with an issue
/// recorded for any other error).
func preflightError(_ body: () throws -> Void) -> PreflightError? {
    do {
        try body()
        return nil
    } catch let error as PreflightError {
        return error
    } catch {
        Issue.record("not a PreflightError: \(error)")
        return nil
    }
}

/// A tool the tests need that is missing or failed.
struct ToolFailure: Error, CustomStringConvertible {
    var description: String
}

extension GuestRequirements {
    /// What `trace --vm` needs with the linux backend, from the backend's own capabilities.
    static let kcov = GuestRequirements(backend: "linux", capabilities: LinuxKcovBackend().capabilities)
    /// What `trace --vm --backend kprobe` needs, from the backend's own capabilities.
    static let kprobe = GuestRequirements(backend: "kprobe", capabilities: KprobeBackend().capabilities)
}
