import Foundation

/// A kernel's configuration, as a `.config` file writes it: `CONFIG_NAME=VALUE` lines and
/// `# CONFIG_NAME is not set` comments.
public struct KernelConfiguration: Sendable {
    /// How the configuration has one option.
    public enum Setting: Sendable, Hashable {
        /// `=y`
        case builtIn
        /// `=m`
        case module
        /// Any other value (a number, a string, `n`).
        case value(String)
        /// `is not set`, or absent (options whose dependencies are off are not written at all).
        case notSet
    }

    /// Where it came from, for messages: "the configuration embedded in PATH", or the file's path.
    public var source: String
    private var values: [String: String]

    /// The largest `.config` read (16 MiB; a distribution kernel's is about 250 KB).
    public static let sizeLimit = 16 << 20

    /// Parses `.config` text. Throws ``PreflightError/Code/notConfiguration`` when no line sets an
    /// option: whatever the text is, it is not a kernel configuration.
    public init(text: String, source: String) throws(PreflightError) {
        self.source = source
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("CONFIG_") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[line.index(line.startIndex, offsetBy: 7)..<equals])] = String(line[line.index(after: equals)...])
        }
        guard !values.isEmpty else {
            throw PreflightError(.notConfiguration, path: source,
                "sets no CONFIG_ option: not a kernel .config; give the .config the kernel was built with (a distribution kernel's is /boot/config-RELEASE)")
        }
        self.values = values
    }

    /// Reads a `.config` file.
    public init(contentsOf path: String) throws(PreflightError) {
        let file = try InputFile(path: path, what: "the kernel's .config (a distribution kernel's is /boot/config-RELEASE)")
        guard file.size <= Self.sizeLimit else {
            throw PreflightError(.notConfiguration, path: path, "is \(file.size) bytes, more than a kernel .config ever is (\(Self.sizeLimit)): give the kernel's .config")
        }
        let bytes = try file.read(at: 0, count: file.size) ?? []
        try self.init(text: String(decoding: bytes, as: UTF8.self), source: path)
    }

    /// `option` (without `CONFIG_`) as this configuration sets it.
    public func setting(_ option: String) -> Setting {
        switch values[option] {
        case nil: .notSet
        case "y": .builtIn
        case "m": .module
        case let value?: .value(value)
        }
    }

    /// The markers around the gzip-compressed `.config` a kernel built with `CONFIG_IKCONFIG=y`
    /// carries in its read-only data (kernel/configs.c in the kernel source).
    static let startMarker = Array("IKCFG_ST".utf8)
    static let endMarker = Array("IKCFG_ED".utf8)

    /// The configuration embedded in a kernel image (`CONFIG_IKCONFIG=y`): the first "IKCFG_ST"
    /// followed by a gzip stream within `ranges` of `bytes`, up to the next "IKCFG_ED", gunzipped.
    /// Nil when there is none. Throws ``PreflightError/Code/corruptPayload`` when the markers are
    /// there but what they hold does not decompress, or is not a configuration.
    static func embedded(in bytes: UnsafeRawBufferPointer, ranges: [Range<Int>], source: String, path: String) throws(PreflightError) -> KernelConfiguration? {
        for range in ranges {
            var from = range.lowerBound
            while let marker = bytes.firstOffset(of: startMarker, in: from..<range.upperBound) {
                let start = marker + startMarker.count
                from = start
                guard start + 2 <= range.upperBound, bytes[start] == 0x1f, bytes[start + 1] == 0x8b else { continue }
                guard let end = bytes.firstOffset(of: endMarker, in: start..<range.upperBound) else {
                    throw PreflightError(.corruptPayload, path: path,
                        "\(source) starts (IKCFG_ST) but never ends (no IKCFG_ED): a corrupt kernel image; give the kernel's .config instead")
                }
                let text = try Decompressor.decompress(
                    UnsafeRawBufferPointer(rebasing: bytes[start..<end]), format: .gzip, limit: sizeLimit, what: source, path: path)
                return try KernelConfiguration(text: String(decoding: text, as: UTF8.self), source: source)
            }
        }
        return nil
    }
}
