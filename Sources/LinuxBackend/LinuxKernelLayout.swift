public import CoverageAPI
public import Foundation
import KernelSeam

/// Reads a running Linux kernel's ``KernelLayout`` from procfs and sysfs (Docs/modules.md):
/// `_text` from `/proc/kallsyms`, each module's core from `/proc/modules`, its section addresses
/// from `/sys/module/NAME/sections/`, its build id from `/sys/module/NAME/notes/.note.gnu.build-id`.
///
/// The files are read through two functions so tests can give any tree.
public struct LinuxKernelLayout: Sendable {
    /// A file's bytes, `nil` when it cannot be read.
    public var readFile: @Sendable (String) -> Data?
    /// A directory's entries (hidden ones included), `nil` when it cannot be listed.
    public var listDirectory: @Sendable (String) -> [String]?

    /// The running system's files, read to their end (procfs reports a size of 0) by the seam's reader.
    public init() {
        self.init(
            readFile: { SystemKernel().readFile($0).map { Data($0) } },
            listDirectory: { try? FileManager.default.contentsOfDirectory(atPath: $0) })
    }

    public init(readFile: @escaping @Sendable (String) -> Data?, listDirectory: @escaping @Sendable (String) -> [String]?) {
        self.readFile = readFile
        self.listDirectory = listDirectory
    }

    static let restricted =
        "the kernel shows zero addresses to this reader (kernel.kptr_restrict, or no CAP_SYSLOG): run kcovctl as root with kernel.kptr_restrict at 0 or 1"

    /// The layout now, or `nil` when `/proc/kallsyms` cannot be read at all (not Linux, or no procfs).
    /// Zeroed addresses give a layout whose ``KernelLayout/unavailable`` says why.
    public func read() -> KernelLayout? {
        guard let kallsyms = text("/proc/kallsyms") else { return nil }
        let release = text("/proc/sys/kernel/osrelease")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        var textBase: UInt64?
        for line in kallsyms.split(separator: "\n") where line.hasSuffix(" _text") {
            let fields = line.split(separator: " ")
            if fields.count == 3, let address = UInt64(fields[0], radix: 16) { textBase = address }
            break
        }
        var unavailable: String?
        if textBase == 0 {
            textBase = nil
            unavailable = "/proc/kallsyms: " + Self.restricted
        } else if textBase == nil {
            unavailable = "/proc/kallsyms has no _text symbol"
        }
        var modules: [KernelLayout.Module] = []
        for line in (text("/proc/modules") ?? "").split(separator: "\n") {
            // NAME SIZE REFCOUNT DEPENDENCIES STATE ADDRESS [TAINT]
            let fields = line.split(separator: " ")
            guard fields.count >= 6, let size = UInt64(fields[1]), let base = Self.hex(fields[5]) else { continue }
            let name = String(fields[0])
            var sections: [String: UInt64] = [:]
            let folder = "/sys/module/\(name)/sections"
            for entry in listDirectory(folder) ?? [] {
                guard let value = text(folder + "/" + entry), let address = Self.hex(value) else { continue }
                sections[entry] = address
            }
            if base == 0 || sections.values.contains(0) {
                unavailable = unavailable ?? "/proc/modules and /sys/module/\(name)/sections: " + Self.restricted
            }
            modules.append(KernelLayout.Module(
                name: name, base: base, size: size, sections: sections,
                buildID: readFile("/sys/module/\(name)/notes/.note.gnu.build-id").flatMap { KernelLayout.gnuBuildID(notes: [UInt8]($0)) }))
        }
        return KernelLayout(release: release, text: textBase, unavailable: unavailable, modules: modules.sorted { $0.name < $1.name })
    }

    private func text(_ path: String) -> String? {
        readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `0x…` or bare hex, surrounding white space ignored.
    static func hex(_ text: some StringProtocol) -> UInt64? {
        var digits = text.trimmingCharacters(in: .whitespacesAndNewlines)[...]
        if digits.hasPrefix("0x") { digits = digits.dropFirst(2) }
        return UInt64(digits, radix: 16)
    }
}

extension LinuxKcovBackend {
    /// The running kernel's layout (``LinuxKernelLayout``); `nil` over a model, or without `/proc/kallsyms`.
    public func kernelLayout() -> KernelLayout? {
        kernel.isRunningSystem ? LinuxKernelLayout().read() : nil
    }
}
