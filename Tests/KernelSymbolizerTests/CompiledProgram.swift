import Foundation
import TestSupport

/// A small C program with two levels of always-inline functions, compiled once per test run with
/// `gcc -O2 -g` (DWARF 5), and copies without DWARF.
struct CompiledProgram: Sendable {
    /// Line 1 `leaf`, line 3 calls it twice from `middle`, line 6 `outer` calls `middle`; line 8
    /// `split`, whose unlikely branch (it calls a cold function) gcc moves to `split.cold`.
    static let source = """
        static inline __attribute__((always_inline)) int leaf(int x) { return x * 3 + 1; }
        static inline __attribute__((always_inline)) int middle(int x) {
            if (x > 2) return leaf(x) + leaf(x + 1);
            return x;
        }
        __attribute__((noinline)) int outer(int x) { return middle(x) * 2; }
        __attribute__((noinline, cold)) void complain(int x) { __asm__ volatile("" :: "r"(x)); }
        __attribute__((noinline)) int split(int x) {
            if (x > 1000) { complain(x); return x * 7 + 3; }
            return x + 1;
        }
        int main(int argc, char **argv) { (void)argv; return outer(argc) + split(argc); }

        """

    /// Where it was compiled: its DW_AT_comp_dir.
    var directory: String
    var binary: String
    /// `objcopy --strip-debug`: symbols, no DWARF.
    var withoutDebugInfo: String
    /// `strip --strip-all`: neither.
    var stripped: String

    var sourceFile: String { directory + "/prog.c" }

    static func shared() throws -> CompiledProgram { try built.get() }

    private static let built = Result { try CompiledProgram.build() }

    private static func build() throws -> CompiledProgram {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("symbolizer-program-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try source.write(toFile: directory + "/prog.c", atomically: true, encoding: .utf8)
        let program = CompiledProgram(
            directory: directory, binary: directory + "/prog", withoutDebugInfo: directory + "/prog.nodebug",
            stripped: directory + "/prog.stripped")
        // Relative source name, run in the directory: the way the kernel's build names files.
        _ = try runTool("/bin/sh", ["-c", "cd '\(directory)' && gcc -O2 -g -o prog prog.c"])
        _ = try runTool("/usr/bin/objcopy", ["--strip-debug", program.binary, program.withoutDebugInfo])
        _ = try runTool("/usr/bin/strip", ["--strip-all", "-o", program.stripped, program.binary])
        return program
    }

    /// Every byte of every executable section (`readelf -S`): crt code without DWARF and the PLT included.
    func codeBytes() throws -> [UInt64] {
        try runTool("/usr/bin/readelf", ["-S", "-W", binary]).split(separator: "\n").flatMap { line -> [UInt64] in
            guard let bracket = line.firstIndex(of: "]") else { return [] }
            let fields = line[line.index(after: bracket)...].split(separator: " ")
            guard fields.count >= 7, fields[6].contains("X"), let address = UInt64(fields[2], radix: 16),
                  let size = UInt64(fields[4], radix: 16)
            else { return [] }
            return Array(address..<address + size)
        }
    }
}
