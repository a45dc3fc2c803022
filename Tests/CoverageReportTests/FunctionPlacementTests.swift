import CoverageAPI
@testable import CoverageReport
import Testing

/// A symbolizer from a table that, like `KernelCoverageMap`, says where each PC's function is defined.
struct DefiningTable: FunctionDefining {
    var coverable: [(pc: UInt64, source: SourceRange)]
    var definitions: [FunctionDefinition?]

    /// (pc, file, line, function, defined in file, at line); a definition line of 0 is none.
    init(_ rows: [(UInt64, String, Int, String?, String, Int)]) {
        coverable = rows.map { pc, file, line, function, _, _ in
            (pc, SourceRange(file: file, function: function, startLine: line, startColumn: 0, endLine: line, endColumn: 0))
        }
        definitions = rows.map { _, _, _, function, file, line in
            guard let function, line > 0 else { return nil }
            return FunctionDefinition(name: function, file: file, line: line)
        }
    }

    func sourceRange(of pc: UInt64) -> SourceRange? { coverable.first { $0.pc == pc }?.source }
}

/// What issue 15 saw in `__do_sys_setns` (kernel/nsproxy.c:546, SYSCALL_DEFINE2): one PC whose
/// line row is in include/linux/file.h:63 (inside `fdput`) while DWARF gives it no inlined
/// `fdput` scope; the macro's other functions defined on the same line.
let setns = DefiningTable([
    (0x10, "kernel/nsproxy.c", 546, "__se_sys_setns", "kernel/nsproxy.c", 546),
    (0x15, "kernel/nsproxy.c", 546, "__x64_sys_setns", "kernel/nsproxy.c", 546),
    (0x20, "kernel/nsproxy.c", 548, "__do_sys_setns", "kernel/nsproxy.c", 546),
    (0x25, "kernel/nsproxy.c", 560, "__do_sys_setns", "kernel/nsproxy.c", 546),
    (0x2a, "include/linux/file.h", 63, "__do_sys_setns", "kernel/nsproxy.c", 546),
    (0x30, "include/linux/file.h", 61, "fdput", "include/linux/file.h", 60),
    (0x35, "include/linux/file.h", 62, "fdput", "include/linux/file.h", 60),
    (0x40, "kernel/nsproxy.c", 0, "__do_sys_setns", "kernel/nsproxy.c", 546),
    (0x50, "kernel/nsproxy.c", 570, "put_nsset", "kernel/nsproxy.c", 565),
    (0x55, "kernel/nsproxy.c", 575, "put_nsset", "kernel/nsproxy.c", 565),
])

@Suite("Functions in their own file, with spans lcov 2.x accepts")
struct FunctionPlacementTests {
    @Test("A function appears once, in the file and at the line DWARF defines it, whatever file its lines are in")
    func functionInItsDefiningFile() throws {
        let report = try CoverageReport(inputs: [input([0x2a])], symbolizer: setns, imageName: "vmlinux")
        let placed = report.files.flatMap { file in file.functions.map { (file.path, $0.name, $0.line) } }
        #expect(placed.filter { $0.1 == "__do_sys_setns" }.map { "\($0.0):\($0.2)" } == ["kernel/nsproxy.c:546"])
        let header = try #require(report.files.first { $0.path == "include/linux/file.h" })
        #expect(header.functions.map(\.name) == ["fdput"])
        #expect(header.lines.map(\.number) == [61, 62, 63], "the header's lines are the line table's")
        // Line 63 is past fdput's own code: in no function, so fdput is not hit by it.
        #expect(header.functions[0].line == 60 && header.functions[0].endLine == 62 && header.functions[0].counts.covered == 0)
        let text = report.lcov()
        #expect(LCOVTracefileChecker.check(text).map(\.description) == [])
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("DA:0,") || $0.hasPrefix("FN:0,") }, "no line 0")
    }

    @Test("Functions generated on one line share its span; spans end before the next function; cut spans stay consistent")
    func sharedStartLines() throws {
        let report = try CoverageReport(inputs: [input([0x10, 0x50])], symbolizer: setns, imageName: "vmlinux")
        let nsproxy = try #require(report.files.first { $0.path == "kernel/nsproxy.c" })
        let macro = nsproxy.functions.filter { $0.line == 546 }
        #expect(macro.map(\.name) == ["__do_sys_setns", "__se_sys_setns", "__x64_sys_setns"])
        #expect(Set(macro.map(\.endLine)) == [560], "one group, one end")
        #expect(nsproxy.functions.first { $0.name == "put_nsset" }.map { "\($0.line)…\($0.endLine)" } == "565…575")
        // __se_sys_setns ran; the group is hit, and so is a line of its span.
        #expect(macro.first { $0.name == "__se_sys_setns" }?.counts.covered == 1)
        #expect(LCOVTracefileChecker.check(report.lcov()).map(\.description) == [])

        // A function whose own lines run into the next function's span is cut before it.
        let overlapping = DefiningTable([
            (0x1, "a.c", 10, "outer", "a.c", 10), (0x2, "a.c", 30, "outer", "a.c", 10),
            (0x3, "a.c", 22, "inner", "a.c", 20), (0x4, "a.c", 25, "inner", "a.c", 20),
        ])
        let cut = try CoverageReport(inputs: [input([0x2])], symbolizer: overlapping, imageName: "vmlinux")
        let functions = cut.files[0].functions
        #expect(functions.map { "\($0.name) \($0.line)…\($0.endLine)" } == ["outer 10…19", "inner 20…25"])
        // Line 30 (outer's code by its scope) is past both spans: hit, in no function, and no function is hit.
        #expect(functions.map(\.counts.covered) == [0, 0])
        #expect(cut.files[0].lines.first { $0.number == 30 }?.counts.covered == 1)
        #expect(LCOVTracefileChecker.check(cut.lcov()).map(\.description) == [])
    }

    @Test("FNDA of a span equals the DA hits of its lines; a line's PCs count once")
    func hitCountsAgree() throws {
        let report = try CoverageReport(inputs: [input([0x20, 0x20, 0x25, 0x15, 0x2a, 0x30, 0x55])], symbolizer: setns, imageName: "vmlinux")
        for file in report.files {
            for start in Set(file.functions.map(\.line)) {
                let group = file.functions.filter { $0.line == start }
                let span = group[0].line...group[0].endLine
                let lineHits = file.lines.filter { span.contains($0.number) }.reduce(0) { $0 + $1.counts.hits }
                #expect(group.reduce(0) { $0 + $1.counts.hits } == lineHits, "\(file.path):\(start)")
            }
        }
    }

    @Test("Random tables: every tracefile written keeps every lcov 2.x rule", arguments: 0..<40)
    func randomTablesPass(_ seed: Int) throws {
        var generator = SplitMix(seed: UInt64(seed))
        let files = ["a.c", "include/b.h", "arch/x86/include/asm//c.h", "arch/x86/include/asm/c.h", "d/../e.c"]
        let names = ["f", "g", "h", "k", "m", "n"]
        var rows: [(UInt64, String, Int, String?, String, Int)] = []
        for index in 0..<Int.random(in: 5...60, using: &generator) {
            let name = Bool.random(using: &generator) || index == 0 ? names.randomElement(using: &generator) : nil
            let definedIn = files.randomElement(using: &generator)!
            let definedAt = Int.random(in: 0...40, using: &generator)
            rows.append((
                UInt64(0x1000 + index * 5), files.randomElement(using: &generator)!, Int.random(in: 0...50, using: &generator), name, definedIn,
                definedAt
            ))
        }
        let symbolizer = DefiningTable(rows)
        let recorded = rows.map(\.0).filter { _ in Int.random(in: 0..<3, using: &generator) == 0 }
        let report = try CoverageReport(inputs: [input(recorded + [rows[0].0])], symbolizer: symbolizer, imageName: "vmlinux")
        let text = report.lcov(testName: "random")
        let violations = LCOVTracefileChecker.check(text)
        #expect(violations.isEmpty, "\(violations.prefix(5).map(\.description))\n\(text)")
        #expect(Set(report.files.map(\.path)).count == report.files.count)
        #expect(!report.files.contains { $0.path.contains("//") || $0.path.contains("..") })
    }

    @Test("32-bit PCs: restored from the coverable PCs' upper half with a warning; refused when that half is ambiguous")
    func truncatedPCs() throws {
        let kernel = DefiningTable([
            (0xffff_ffff_8120_0056, "fs/a.c", 3, "f", "fs/a.c", 2), (0xffff_ffff_8120_0060, "fs/a.c", 4, "f", "fs/a.c", 2),
        ])
        let report = try CoverageReport(inputs: [input([0x8120_0056, 0x8120_0056])], symbolizer: kernel, imageName: "vmlinux")
        #expect(report.totals.covered == 1 && report.totals.hits == 2 && report.unknownPCs.isEmpty)
        #expect(report.warnings.contains { $0.contains("32-bit") && $0.contains("restored the upper half 0xffffffff") })
        // Full PCs, or a mix, are taken as they are (a mix's 32-bit ones are unknown PCs).
        let mixed = try CoverageReport(inputs: [input([0xffff_ffff_8120_0056, 0x8120_0060])], symbolizer: kernel, imageName: "vmlinux")
        #expect(mixed.totals.covered == 1 && mixed.unknownPCs == [0x8120_0060])
        #expect(!mixed.warnings.contains { $0.contains("restored") })
        // Code in two 4 GiB windows: which upper half is unknowable.
        let split = DefiningTable([(0xffff_ffff_8120_0056, "a.c", 1, "f", "a.c", 1), (0xffff_fffe_0000_0010, "a.c", 2, "f", "a.c", 1)])
        #expect {
            try CoverageReport(inputs: [input([0x8120_0056])], symbolizer: split, imageName: "vmlinux")
        } throws: { error in
            (error as? CoverageInputError)?.message.contains("32-bit PCs") == true
        }
        // Small coverable PCs (a program, gVisor's synthetic blocks): nothing to restore.
        let small = try CoverageReport(inputs: [input([0x100])], symbolizer: table, imageName: "vmlinux")
        #expect(small.totals.covered == 1 && small.warnings.isEmpty)
    }
}

/// A seeded generator, so a failing random table can be run again.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Function-level (kprobe) reports name a compiler's clone after the function it was cloned from.
@Suite struct CloneNamingTests {
    @Test(arguments: [
        ("kfree.isra.0", "kfree", "kfree"), ("__refcount_add.constprop.0", "__refcount_add", "__refcount_add"),
        ("do_work.part.0", "do_work", "do_work"), ("f.cold", "f", "f"), ("f.constprop.0.isra.0", "f", "f"),
        ("vfs_read", "vfs_read", "vfs_read"),
        // Not a clone of what the DWARF names: the probe's name stays.
        ("foobar.part.0", "foo", "foobar.part.0"), ("foo", "foobar", "foo"), ("foo.", "foo", "foo."),
    ])
    func aCloneCountsUnderItsOrigin(symbol: String, dwarf: String, expected: String) {
        #expect(KernelCoverageMap.cloneOrigin(symbol: symbol, dwarf: dwarf) == expected)
    }

    @Test func withoutDWARFTheProbeNameStays() {
        #expect(KernelCoverageMap.cloneOrigin(symbol: "kfree.isra.0", dwarf: nil) == "kfree.isra.0")
        #expect(KernelCoverageMap.cloneOrigin(symbol: nil, dwarf: "kfree") == nil)
    }
}
