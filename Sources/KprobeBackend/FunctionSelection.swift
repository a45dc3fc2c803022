#if canImport(Glibc)
import Glibc
#endif
import CoverageAPI
package import KernelSeam

/// `/proc/kallsyms` text symbols and the kprobe blacklist, read once.
struct KernelSymbols {
    /// Text symbol name → every address it has (static functions can share a name).
    var addresses: [String: [UInt64]] = [:]
    /// Names in kallsyms order, for deterministic glob expansion.
    var names: [String] = []
    /// Names on `/sys/kernel/debug/kprobes/blacklist` (empty when debugfs is not readable).
    var blacklist: Set<String> = []
    /// The blacklist's address ranges (`0xSTART-0xEND\tname`, kernel/kprobes.c,
    /// `kprobe_blacklist_seq_show`): a function is refused by where it is, so one of two static
    /// functions that share a name can be on it alone.
    var blacklistedRanges: [Range<UInt64>] = []

    static let kallsymsPath = "/proc/kallsyms"
    static let blacklistPath = "/sys/kernel/debug/kprobes/blacklist"

    init(kernel: any KprobeKernel) throws(CoverageError) {
        guard let table = kernel.readTextFile(Self.kallsymsPath) else {
            let code = errno
            throw CoverageError(
                .deviceMissing, "cannot read \(Self.kallsymsPath): the kernel needs CONFIG_KALLSYMS to name functions",
                syscall: "open(\(Self.kallsymsPath))", errno: code)
        }
        var sawZero = false
        // Byte by byte: kallsyms has ~100k lines and this runs for every session.
        var utf8 = Array(table.utf8)
        utf8.append(UInt8(ascii: "\n"))
        var index = 0
        let end = utf8.count
        while index < end {
            let lineStart = index
            while utf8[index] != UInt8(ascii: "\n") { index += 1 }
            let lineEnd = index
            index += 1
            // "<hex address> <type> <name>[\t[module]]"
            var cursor = lineStart
            var address: UInt64 = 0
            var digits = 0
            while cursor < lineEnd, let digit = hexValue(utf8[cursor]) {
                address = address &<< 4 | UInt64(digit)
                digits += 1
                cursor += 1
            }
            guard digits > 0, cursor + 3 < lineEnd, utf8[cursor] == UInt8(ascii: " "), utf8[cursor + 2] == UInt8(ascii: " ") else { continue }
            let type = utf8[cursor + 1]
            guard type == UInt8(ascii: "t") || type == UInt8(ascii: "T") || type == UInt8(ascii: "w") || type == UInt8(ascii: "W") else { continue }
            let nameStart = cursor + 3
            var nameEnd = nameStart
            while nameEnd < lineEnd && utf8[nameEnd] != UInt8(ascii: "\t") && utf8[nameEnd] != UInt8(ascii: " ") { nameEnd += 1 }
            if nameEnd < lineEnd { continue }  // module symbols ("\t[module]"): not offered
            let name = String(decoding: utf8[nameStart..<nameEnd], as: UTF8.self)
            // Compiler padding and CFI stubs are symbols, not functions.
            if name.hasPrefix("__pfx_") || name.hasPrefix("__cfi_") { continue }
            if address == 0 { sawZero = true }
            if addresses[name] == nil { names.append(name) }
            addresses[name, default: []].append(address)
        }
        if sawZero && addresses.values.allSatisfy({ $0.allSatisfy { $0 == 0 } }) {
            throw CoverageError(
                .permissionDenied,
                "\(Self.kallsymsPath) shows every address as 0 to this process: reading them needs CAP_SYSLOG and kernel.kptr_restrict at most 1 (or kernel.kptr_restrict=0 with kernel.perf_event_paranoid at most 1); run as root",
                syscall: "read(\(Self.kallsymsPath))")
        }
        if let list = kernel.readTextFile(Self.blacklistPath) {
            for line in list.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                let bounds = fields.first?.split(separator: "-").map { UInt64($0.dropFirst($0.hasPrefix("0x") ? 2 : 0), radix: 16) }
                if fields.count >= 2, let bounds, bounds.count == 2, let start = bounds[0], let end = bounds[1], start < end {
                    blacklistedRanges.append(start..<end)
                } else if let name = fields.last {
                    blacklist.insert(String(name))
                }
            }
        }
    }

    /// The functions `selection` names that are worth a probe, and those skipped before trying.
    func resolve(_ selection: FunctionSelection, kernel: any KprobeKernel) throws(CoverageError) -> (candidates: [ProbedFunction], skipped: [SkippedFunction]) {
        var patterns = selection.patterns
        for file in selection.files {
            guard let text = kernel.readTextFile(file) else {
                throw CoverageError(.invalidArgument, "cannot read the function list \(file): \(String(cString: strerror(errno)))", errno: errno)
            }
            patterns += text.split(separator: "\n").map { $0.trimmingSpaces() }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        var candidates: [ProbedFunction] = []
        var skipped: [SkippedFunction] = []
        var seen = Set<String>()
        func consider(_ name: String, explicit: Bool) {
            guard seen.insert(name).inserted else { return }
            guard let found = addresses[name] else {
                skipped.append(SkippedFunction(
                    name: name, reason: "not in /proc/kallsyms: inlined into its callers, removed by the compiler, or misspelled"))
                return
            }
            // Static functions can share a name (and gcc's clones keep theirs): each is probed at
            // its own address, and a report tells them apart by the file DWARF gives each PC.
            for address in found {
                if blacklist.contains(name) || blacklistedRanges.contains(where: { $0.contains(address) }) {
                    skipped.append(SkippedFunction(name: name, reason: "on the kprobe blacklist (\(Self.blacklistPath)): the kernel refuses probes there"))
                } else {
                    candidates.append(ProbedFunction(name: name, pc: address))
                }
            }
        }
        for pattern in patterns {
            if FunctionSelection.isGlob(pattern) {
                var matched = false
                for name in names where fnmatch(pattern, name, 0) == 0 {
                    matched = true
                    consider(name, explicit: false)
                }
                if !matched {
                    skipped.append(SkippedFunction(name: pattern, reason: "the pattern matches no text symbol in /proc/kallsyms"))
                }
            } else {
                consider(pattern, explicit: true)
            }
        }
        return (candidates, skipped)
    }
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
