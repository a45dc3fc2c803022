/// A bzImage: the x86 boot header at the start of the file and the compressed kernel (the
/// payload) it points to.
///
/// Fields are those of the boot protocol, Documentation/arch/x86/boot.rst in the kernel source:
/// `setup_sects` (0x1f1, one byte; 0 means 4), the magic `"HdrS"` (0x202), the protocol version
/// (0x206, two bytes, major in the high byte), `kernel_version` (0x20e: a pointer to a
/// NUL-terminated string, 0x200 bytes before the file offset it gives), and, from protocol 2.08,
/// `payload_offset` and `payload_length` (0x248 and 0x24c, four bytes each), the payload's place
/// counted from the protected-mode kernel, which starts after the boot sector and `setup_sects`
/// sectors of 512 bytes. All little-endian. Every value read from the file is checked against
/// the file's size before it is used as an offset.
public struct BootImage: Sendable {
    /// The header's end: `payload_length`'s last byte is at 0x24f.
    public static let headerSize = 0x250
    /// An upper bound on the decompressed kernel (1 GiB); a payload that claims more is refused.
    public static let decompressedLimit = 1 << 30

    public var path: String
    /// The boot protocol version, major in the high byte: 0x020f is 2.15.
    public var protocolVersion: UInt16
    /// The `kernel_version` string: release, builder, and build number and date (`6.12.57
    /// (root@host) #1 SMP …`); nil when the header points to none.
    public var kernelVersion: String?
    /// The payload's file offset and length in bytes (its four size bytes included).
    public var payload: Range<Int>
    public var compression: PayloadCompression
    /// What the payload decompresses to, in bytes, as its last four bytes say.
    public var decompressedSize: Int

    /// The protocol version as the kernel's documentation writes it: "2.15".
    public var protocolText: String {
        let minor = protocolVersion & 0xff
        return "\(protocolVersion >> 8).\(minor < 10 ? "0" : "")\(minor)"
    }

    /// Reads the header and finds the payload. Throws ``PreflightError`` with
    /// ``PreflightError/Code/notBootImage`` (no "HdrS", or an ELF file),
    /// ``PreflightError/Code/truncatedHeader`` (a header cut short, or a protocol before 2.08),
    /// ``PreflightError/Code/payloadOutOfBounds`` or ``PreflightError/Code/unknownCompression``.
    public init(path: String) throws(PreflightError) {
        let file = try InputFile(path: path, what: Self.what)
        try self.init(file)
    }

    static let what = "the kernel's bzImage (arch/x86/boot/bzImage in its build tree, a distribution's /boot/vmlinuz-RELEASE)"

    init(_ file: InputFile) throws(PreflightError) {
        let path = file.path
        let header = try file.read(at: 0, count: min(file.size, Self.headerSize)) ?? []
        if header.has([0x7f, 0x45, 0x4c, 0x46], at: 0) {
            throw PreflightError(.notBootImage, path: path,
                "is an ELF file (a vmlinux?), not a bzImage: the kernel to boot is the compressed image, \(Self.what); an unstripped vmlinux goes with it as the vmlinux")
        }
        guard header.count >= 0x206 else {
            throw PreflightError(.truncatedHeader, path: path,
                "is \(file.size) bytes: too short for a bzImage, whose x86 boot header runs to offset 0x\(String(Self.headerSize, radix: 16)); give \(Self.what)")
        }
        guard header.has(Array("HdrS".utf8), at: 0x202) else {
            throw PreflightError(.notBootImage, path: path,
                "has no x86 boot header (no \"HdrS\" at offset 0x202): not a bzImage; give \(Self.what)")
        }
        guard let version = header.littleEndian(UInt16.self, at: 0x206) else {
            throw PreflightError(.truncatedHeader, path: path, "its boot header is cut short after \(file.size) bytes: a truncated bzImage; copy it again")
        }
        protocolVersion = version
        guard version >= 0x0208 else {
            throw PreflightError(.truncatedHeader, path: path,
                "uses boot protocol \(version >> 8).\(version & 0xff), older than 2.08 (Linux 2.6.26): its header has no payload fields; boot a newer kernel")
        }
        guard let offset = header.littleEndian(UInt32.self, at: 0x248), let length = header.littleEndian(UInt32.self, at: 0x24c) else {
            throw PreflightError(.truncatedHeader, path: path,
                "its boot header is cut short at \(file.size) bytes (protocol 2.08's fields end at 0x\(String(Self.headerSize, radix: 16))): a truncated bzImage; copy it again")
        }
        self.path = path
        let setupSectors = header[0x1f1] == 0 ? 4 : Int(header[0x1f1])
        let kernelStart = (setupSectors + 1) * 512
        // Offsets from UInt32 fields: their sums stay far below Int.max, so nothing here can trap.
        let start = kernelStart + Int(offset)
        let end = start + Int(length)
        guard end <= file.size else {
            throw PreflightError(.payloadOutOfBounds, path: path,
                "its header puts the payload at bytes \(start)..<\(end) (setup_sects \(header[0x1f1]), payload_offset \(offset), payload_length \(length)), past the end of the file (\(file.size) bytes): a truncated or corrupt bzImage; copy it again")
        }
        payload = start..<end
        let longestMagic = PayloadCompression.allCases.map(\.magic.count).max()!
        guard length >= 8, let head = try file.read(at: start, count: min(Int(length), longestMagic)),
              let tail = try file.read(at: end - 4, count: 4) else {
            throw PreflightError(.payloadOutOfBounds, path: path,
                "its header gives a payload of \(length) bytes, too short to hold a compressed kernel: a corrupt bzImage")
        }
        guard let compression = PayloadCompression.detect(head) else {
            let shown = head.prefix(6).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
            throw PreflightError(.unknownCompression, path: path,
                "its payload (at byte \(start)) starts with \(shown), the magic of no compression the x86 kernel uses (\(PayloadCompression.allCases.map(\.rawValue).joined(separator: ", "))): a corrupt bzImage, or not one")
        }
        self.compression = compression
        decompressedSize = Int(tail.littleEndian(UInt32.self, at: 0)!)
        kernelVersion = try Self.versionString(file, header: header, kernelStart: kernelStart)
    }

    /// The NUL-terminated `kernel_version` string inside the setup code, if the header points to one.
    private static func versionString(_ file: InputFile, header: [UInt8], kernelStart: Int) throws(PreflightError) -> String? {
        guard let pointer = header.littleEndian(UInt16.self, at: 0x20e), pointer != 0 else { return nil }
        let start = Int(pointer) + 0x200
        let length = min(256, min(kernelStart, file.size) - start)
        guard length > 0, let bytes = try file.read(at: start, count: length), let end = bytes.firstIndex(of: 0) else { return nil }
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        return text.isEmpty ? nil : text
    }

    /// The decompressed payload: the kernel's ELF image (vmlinux stripped of symbols and debug
    /// information, with its relocations appended when it is relocatable), decompressed with
    /// ``PayloadCompression/decompressor``. Throws ``PreflightError/Code/toolMissing`` when that
    /// tool is not installed, ``PreflightError/Code/corruptPayload`` when it fails or the size
    /// differs from the one the payload records.
    public func decompressedPayload() throws(PreflightError) -> [UInt8] {
        guard decompressedSize > 0, decompressedSize <= Self.decompressedLimit else {
            throw PreflightError(.corruptPayload, path: path,
                "its payload says it decompresses to \(decompressedSize) bytes, not a kernel's size (at most \(Self.decompressedLimit)): a corrupt bzImage")
        }
        let file = try InputFile(path: path, what: Self.what)
        let streamLength = payload.count - (compression.sizeIsAppended ? 4 : 0)
        guard let stream = try file.read(at: payload.lowerBound, count: streamLength) else {
            throw PreflightError(.payloadOutOfBounds, path: path, "it became shorter than its payload while being read")
        }
        let kernel = try stream.withUnsafeBytes { bytes in
            Result { () throws(PreflightError) in
                try Decompressor.decompress(bytes, format: compression, limit: decompressedSize, what: "its payload", path: path)
            }
        }.get()
        guard kernel.count == decompressedSize else {
            throw PreflightError(.corruptPayload, path: path,
                "its payload decompressed to \(kernel.count) bytes, but records \(decompressedSize): a corrupt bzImage; copy it again")
        }
        return kernel
    }
}
