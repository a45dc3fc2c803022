import CoverageAPI
import CoverageReport
import GVisorBackend
import Testing

/// `runsc symbolize` output built from gVisor's own PC formulas, and malformed output.
@Suite struct GVisorSymbolizerTests {
    /// What a coverage-built runsc would print for these blocks: `0x<pc>` then `file:l0.c0,l1.c1`.
    static func output(_ blocks: [(SyntheticPC, String)]) -> String {
        blocks.map { "0x\(String($0.0.pc, radix: 16))\n\($0.1)\n" }.joined()
    }

    static let blocks: [(SyntheticPC, String)] = [
        (.current(package: 5, function: 61, block: 0), "gvisor.dev/gvisor/pkg/sentry/kernel/task_run.go:147.2,151.16"),
        (.current(package: 5, function: 61, block: 3), "gvisor.dev/gvisor/pkg/sentry/kernel/task_run.go:160.3,162.4"),
        (.current(package: 8, function: 112, block: 0), "gvisor.dev/gvisor/pkg/sentry/syscalls/linux/sys_read_write.go:40.95,44.2"),
        (.current(package: 2047, function: 4095, block: 255), "gvisor.dev/gvisor/pkg/tcpip/stack/nic.go:1.1,1.30"),
    ]

    @Test func parsesCurrentFormatPCs() throws {
        let table = try GVisorSymbolTable(parsing: Self.output(Self.blocks))
        #expect(table.count == 4)
        let pc = SyntheticPC.current(package: 5, function: 61, block: 3).pc
        let location = try #require(table.sourceRange(of: pc))
        #expect(location == SourceRange(file: "gvisor.dev/gvisor/pkg/sentry/kernel/task_run.go", startLine: 160, startColumn: 3, endLine: 162, endColumn: 4))
        #expect(location.lines == 160...162)
        #expect(location.description == "gvisor.dev/gvisor/pkg/sentry/kernel/task_run.go:160.3,162.4")
        #expect(SyntheticPC.format(ofTrace: table.coverable.map(\.pc)) == .current)
    }

    @Test func parsesLegacyPCsAndInputWithoutPrefix() throws {
        let legacy = SyntheticPC.legacy(file: 17, block: 300)
        let text = "\(String(legacy.pc, radix: 16))\r\npkg/sentry/fsimpl/sys/kcov.go:10.1,12.2\r\n\n"
        let table = try GVisorSymbolTable(parsing: text)
        #expect(table.sourceRange(of: legacy.pc)?.file == "pkg/sentry/fsimpl/sys/kcov.go")
    }

    @Test func allOutputGivesPerFileDenominators() throws {
        let table = try GVisorSymbolTable(parsing: Self.output(Self.blocks))
        let hit = [SyntheticPC.current(package: 5, function: 61, block: 0).pc, 0x1234]
        let coverage = try CoverageReport(
            inputs: [CoverageInput(path: "hit", mode: .pc, pcs: hit, truncated: false)], symbolizer: table, imageName: "runsc")
        #expect(coverage.files.map { [$0.path, "\($0.counts.covered)", "\($0.counts.coverable)"] } == [
            ["gvisor.dev/gvisor/pkg/sentry/kernel/task_run.go", "1", "2"],
            ["gvisor.dev/gvisor/pkg/sentry/syscalls/linux/sys_read_write.go", "0", "1"],
            ["gvisor.dev/gvisor/pkg/tcpip/stack/nic.go", "0", "1"],
        ])
        #expect(coverage.unknownPCs == [0x1234], "a PC runsc did not list is counted, not dropped")
        let symbolized = table.symbolize(hit)
        #expect(symbolized.found.count == 1 && symbolized.unknown == [0x1234])
    }

    @Test func fileNamesMayHaveColons() throws {
        let table = try GVisorSymbolTable(parsing: "0x10\nC:/src/a.go:1.2,3.4\n")
        #expect(table.sourceRange(of: 0x10)?.file == "C:/src/a.go")
    }

    @Test func repeatedIdenticalPairsAreFineConflictingOnesAreNot() throws {
        let one = Self.output([Self.blocks[0]])
        #expect(try GVisorSymbolTable(parsing: one + one).count == 1)
        let conflicting = one + "0x\(String(Self.blocks[0].0.pc, radix: 16))\nother.go:1.1,2.2\n"
        let error = #expect(throws: GVisorSymbolizeError.self) { try GVisorSymbolTable(parsing: conflicting) }
        #expect(error?.line == 4)
    }

    @Test(arguments: [
        ("0xzz\nfile.go:1.1,2.2\n", 1, "expected a PC"),
        ("0x10\nfile.go\n", 2, "no ':'"),
        ("0x10\nfile.go:1.1\n", 2, "not l0.c0,l1.c1"),
        ("0x10\nfile.go:1.1,2\n", 2, "not l0.c0,l1.c1"),
        ("0x10\nfile.go:1.x,2.2\n", 2, "not a line or column"),
        ("0x10\n:1.1,2.2\n", 2, "no file name"),
        ("0x10\nfile.go:5.1,2.2\n", 2, "ends before it starts"),
        ("0x10\nfile.go:1.1,2.2\n0x20\n", 3, "truncated"),
        ("0x10\n\nfile.go:1.1,2.2\n", 2, "blank line"),
        ("0x10\nfile.go:1.1,2.2\n0x11111111111111111\nf.go:1.1,1.2\n", 3, "expected a PC"),
        ("symbolize can only be used when coverage is available.\n", 1, "coverage build"),
        ("0x10\nfile.go:99999999999999999999.1,2.2\n", 2, "not a line or column"),
    ])
    func malformedInputNamesItsLine(text: String, line: Int, phrase: String) {
        let error = #expect(throws: GVisorSymbolizeError.self) { try GVisorSymbolTable(parsing: text) }
        #expect(error?.line == line)
        #expect(error?.description.contains(phrase) == true, "\(error?.description ?? "")")
    }

    @Test func emptyAndTruncatedAnywhereNeverCrash() throws {
        #expect(try GVisorSymbolTable(parsing: "").count == 0)
        let text = Self.output(Self.blocks)
        // Every prefix either parses or fails with a line number inside the input.
        for end in text.indices {
            let prefix = String(text[..<end])
            do {
                _ = try GVisorSymbolTable(parsing: prefix)
            } catch {
                #expect(error.line >= 1 && error.line <= prefix.split(separator: "\n", omittingEmptySubsequences: false).count)
            }
        }
    }
}
