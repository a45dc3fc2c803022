/// Why a kernel was refused before booting it: what was wrong with which file, and what to do.
public struct PreflightError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of input was wrong.
    public enum Code: String, Sendable, Hashable {
        /// A file that cannot be opened or read, or is not a regular file.
        case unreadable
        /// No x86 boot header ("HdrS" at 0x202): not a bzImage.
        case notBootImage
        /// A boot header cut short, or a boot protocol without payload fields (before 2.08).
        case truncatedHeader
        /// The header's payload (or setup) lies outside the file.
        case payloadOutOfBounds
        /// The payload starts with no compression magic the kernel's decompressors use.
        case unknownCompression
        /// The payload's decompressor is not installed.
        case toolMissing
        /// The payload (or the embedded config) does not decompress, or to the wrong size.
        case corruptPayload
        /// The decompressed payload is not a kernel ELF.
        case notKernelPayload
        /// A vmlinux that is not an ELF file.
        case notELF
        /// An ELF file that is not a Linux kernel (no `linux_banner`), or not an x86_64 executable.
        case notKernel
        /// A vmlinux without a symbol table.
        case stripped
        /// A vmlinux of another build than the bzImage.
        case mismatch
        /// No configuration to check: the kernel embeds none and no .config was given.
        case noConfiguration
        /// A given .config that is not one.
        case notConfiguration
        /// The kernel lacks options the guest needs (``PreflightError/missing`` names them).
        case missingOptions
    }

    public var code: Code
    /// The file the error is about.
    public var path: String
    /// One or more sentences: what was wrong, and what to do.
    public var message: String
    /// With ``Code/missingOptions``: every option the kernel lacks, in ``GuestRequirements`` order.
    public var missing: [MissingOption]

    public init(_ code: Code, path: String, _ message: String, missing: [MissingOption] = []) {
        self.code = code
        self.path = path
        self.message = message
        self.missing = missing
    }

    public var description: String { "\(path): \(message)" }
}

/// An option a kernel lacks: not set at all, or built as a module the guest cannot load.
public struct MissingOption: Sendable, Hashable, CustomStringConvertible {
    /// How the kernel has it.
    public enum State: Sendable, Hashable {
        /// `# CONFIG_X is not set`, or absent (its dependencies are off).
        case notSet
        /// `CONFIG_X=m`: the runner boots without an initramfs, so no module can be loaded before
        /// the root file system is mounted, and the root itself needs these.
        case module
        /// Some other value (`CONFIG_X=n` written out, or a string where `y` is needed).
        case other(String)
    }

    public var requirement: KernelRequirement
    public var state: State

    public var description: String {
        let name = "CONFIG_\(requirement.option)"
        switch state {
        case .notSet: return "\(name) is not set (\(requirement.reason))"
        case .module: return "\(name)=m is a module, which the guest cannot load: it boots without an initramfs (\(requirement.reason))"
        case .other(let value): return "\(name)=\(value), not y (\(requirement.reason))"
        }
    }
}
