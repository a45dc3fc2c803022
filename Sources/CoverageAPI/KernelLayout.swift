/// Where a running kernel's code was when a trace was taken: what a report needs to map module
/// PCs to a module's `.ko` and to undo KASLR (Docs/modules.md).
///
/// kcov records every PC with the KASLR slide subtracted (`canonicalize_ip` in kernel/kcov.c), core
/// and module PCs alike, so core PCs match the vmlinux unchanged; a module PC plus the slide is
/// its address in the running kernel, which the module's section addresses below locate. The
/// slide is ``text`` minus the vmlinux's `_text`.
public struct KernelLayout: Sendable, Hashable {
    /// `uname -r` of the traced kernel.
    public var release: String
    /// The running kernel's `_text` (from `/proc/kallsyms`), `nil` when it could not be read.
    public var text: UInt64?
    /// Why ``text`` or the module addresses are missing: `/proc/kallsyms` and
    /// `/sys/module/*/sections/` show zeros to a reader without `CAP_SYSLOG` or under
    /// `kernel.kptr_restrict=2`. `nil` when everything was read.
    public var unavailable: String?
    /// The modules loaded when the trace ended, by name.
    public var modules: [Module]

    public init(release: String, text: UInt64?, unavailable: String? = nil, modules: [Module] = []) {
        self.release = release
        self.text = text
        self.unavailable = unavailable
        self.modules = modules
    }

    /// A loaded module: `/proc/modules` gives its core's base and size, `/sys/module/NAME/sections/`
    /// each section's address, `/sys/module/NAME/notes/.note.gnu.build-id` its build id.
    public struct Module: Sendable, Hashable {
        public var name: String
        /// The module's core (text and data) in the running kernel: `[base, base + size)`.
        public var base: UInt64
        public var size: UInt64
        /// Section name (`.text`, `.init.text`, `.exit.text`, …) to its address in the running kernel.
        public var sections: [String: UInt64]
        /// The GNU build id as lowercase hex, when the kernel exposed it.
        public var buildID: String?

        public init(name: String, base: UInt64, size: UInt64, sections: [String: UInt64], buildID: String? = nil) {
            self.name = name
            self.base = base
            self.size = size
            self.sections = sections
            self.buildID = buildID
        }
    }

    /// The KASLR slide of a vmlinux whose `_text` is `vmlinuxText` (wrapping: the slide is added
    /// back to canonical PCs modulo 2⁶⁴). `nil` without ``text``.
    public func slide(vmlinuxText: UInt64) -> UInt64? {
        text.map { $0 &- vmlinuxText }
    }

    /// The descriptor of the first `NT_GNU_BUILD_ID` (3) note named "GNU" in an ELF note section's
    /// bytes (`.note.gnu.build-id`, `/sys/module/NAME/notes/.note.gnu.build-id`), as lowercase
    /// hex; `nil` if there is none or the notes are malformed. The last note's padding may be cut off.
    public static func gnuBuildID(notes bytes: [UInt8]) -> String? {
        func word(_ at: Int) -> Int? {
            guard at >= 0, at + 4 <= bytes.count else { return nil }
            return Int(UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
        }
        let hexDigits = Array("0123456789abcdef".utf8)
        var at = 0
        while let nameSize = word(at), let descriptorSize = word(at + 4), let type = word(at + 8) {
            let name = at + 12
            let descriptor = name + (nameSize + 3) / 4 * 4
            guard descriptor + descriptorSize <= bytes.count else { return nil }
            if type == 3, nameSize == 4, bytes[name..<name + 3].elementsEqual("GNU".utf8) {
                var text: [UInt8] = []
                for byte in bytes[descriptor..<descriptor + descriptorSize] {
                    text.append(hexDigits[Int(byte >> 4)])
                    text.append(hexDigits[Int(byte & 0xf)])
                }
                return String(decoding: text, as: UTF8.self)
            }
            at = descriptor + (descriptorSize + 3) / 4 * 4
        }
        return nil
    }
}
