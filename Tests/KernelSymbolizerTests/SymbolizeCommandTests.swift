import Foundation
import KernelSymbolizer
import TestSupport
import Testing

/// `kcovctl symbolize`, run as a process (the built kcovctl beside this test bundle).
@Suite struct SymbolizeCommandTests {
    static func hex(_ pc: UInt64) -> String {
        let digits = String(pc, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The program's first PC with three frames, and what kcovctl must print for it.
    static func inlinedPC() throws -> (program: CompiledProgram, pc: UInt64, lines: String) {
        let program = try CompiledProgram.shared()
        let symbolizer = try KernelSymbolizer(vmlinux: program.binary)
        let pc = try #require(try program.codeBytes().first { symbolizer.frames(at: $0).count == 3 })
        let file = program.sourceFile
        return (program, pc, "\(hex(pc)) leaf \(file):1\n    (inlined by) middle \(file):3\n    (inlined by) outer \(file):6\n")
    }

    @Test func printsInlinedFramesIndentedBeneath() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let run = try runKcovctl(["symbolize", "--vmlinux", program.binary, String(pc, radix: 16), Self.hex(pc)])
        #expect(run.status == 0)
        #expect(run.output == lines + lines)
        #expect(run.errors.isEmpty)
    }

    @Test func readsRawcoverFromStandardInput() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let input = "\(Self.hex(pc))\r\n\n  0X\(String(pc, radix: 16).uppercased())  \n"
        let run = try runKcovctl(["symbolize", "--vmlinux", program.binary, "-"], input: input)
        #expect(run.status == 0)
        #expect(run.output == lines + lines)
    }

    @Test func returnAddressesSymbolizeTheCallBefore() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let run = try runKcovctl(["symbolize", "--vmlinux", program.binary, "--return-addresses", Self.hex(pc + 1)])
        #expect(run.status == 0)
        #expect(run.output == lines.replacingOccurrences(of: Self.hex(pc), with: Self.hex(pc + 1)))
    }

    @Test func unknownPCsAreCountedInAWarning() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let run = try runKcovctl(["symbolize", "--vmlinux", program.binary, "0xffffffff81000000", Self.hex(pc), "0"])
        #expect(run.status == 0)
        #expect(run.output == "0xffffffff81000000 ?? ??:0\n" + lines + "0x0000000000000000 ?? ??:0\n")
        #expect(run.errors.hasPrefix("kcovctl: warning: 2 of 3 PCs have no code or debug information in \(program.binary)"))
    }

    @Test(arguments: [["0xffffffff8100zz00"], ["0x"], ["12345678901234567"], ["-", "0x10"], []])
    func malformedPCsAreUsageErrors(pcs: [String]) throws {
        let program = try CompiledProgram.shared()
        let run = try runKcovctl(["symbolize", "--vmlinux", program.binary] + pcs)
        #expect(run.status == 64)
        if let token = pcs.first, pcs.count == 1 { #expect(run.errors.contains("'\(token)' is not a hexadecimal PC")) }
    }

    @Test func malformedStandardInputNamesTheLine() throws {
        let program = try CompiledProgram.shared()
        let run = try runKcovctl(["symbolize", "--vmlinux", program.binary, "-"], input: "0x1140\nfunction+0x10\n")
        #expect(run.status == 64)
        #expect(run.errors.hasPrefix("kcovctl: error: standard input: line 2: \"function+0x10\" is not a hex PC"))
        #expect(run.output.isEmpty)
    }

    @Test func fileWithoutDWARFFailsWithWhatToDo() throws {
        let program = try CompiledProgram.shared()
        let run = try runKcovctl(["symbolize", "--vmlinux", program.withoutDebugInfo, "0x1140"])
        #expect(run.status == 1)
        #expect(run.errors.hasPrefix("kcovctl: error: \(program.withoutDebugInfo): has no DWARF debug information"))
        #expect(run.errors.contains("CONFIG_DEBUG_INFO"))
    }
}
