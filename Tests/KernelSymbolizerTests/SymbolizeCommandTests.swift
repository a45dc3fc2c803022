import Foundation
import KernelSymbolizer
import Testing

/// `kcovctl symbolize`, run as a process (the built kcovctl beside this test bundle).
@Suite struct SymbolizeCommandTests {
    struct Run {
        var status: Int32
        var output: String
        var error: String
    }

    static func kcovctl(_ arguments: [String], input: String = "") throws -> Run {
        let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let executable = URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("kcovctl").path
        let files = FileManager.default.temporaryDirectory.appendingPathComponent("symbolize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: files) }
        let (inputFile, outputFile, errorFile) = (files.appendingPathComponent("in"), files.appendingPathComponent("out"), files.appendingPathComponent("err"))
        try input.write(to: inputFile, atomically: false, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = try FileHandle(forReadingFrom: inputFile)
        process.standardOutput = try FileHandle(forWritingTo: outputFile)
        process.standardError = try FileHandle(forWritingTo: errorFile)
        try process.run()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, output: try String(contentsOf: outputFile, encoding: .utf8),
            error: try String(contentsOf: errorFile, encoding: .utf8))
    }

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
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.binary, String(pc, radix: 16), Self.hex(pc)])
        #expect(run.status == 0)
        #expect(run.output == lines + lines)
        #expect(run.error.isEmpty)
    }

    @Test func readsRawcoverFromStandardInput() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let input = "\(Self.hex(pc))\r\n\n  0X\(String(pc, radix: 16).uppercased())  \n"
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.binary, "-"], input: input)
        #expect(run.status == 0)
        #expect(run.output == lines + lines)
    }

    @Test func returnAddressesSymbolizeTheCallBefore() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.binary, "--return-addresses", Self.hex(pc + 1)])
        #expect(run.status == 0)
        #expect(run.output == lines.replacingOccurrences(of: Self.hex(pc), with: Self.hex(pc + 1)))
    }

    @Test func unknownPCsAreCountedInAWarning() throws {
        let (program, pc, lines) = try Self.inlinedPC()
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.binary, "0xffffffff81000000", Self.hex(pc), "0"])
        #expect(run.status == 0)
        #expect(run.output == "0xffffffff81000000 ?? ??:0\n" + lines + "0x0000000000000000 ?? ??:0\n")
        #expect(run.error.hasPrefix("kcovctl: warning: 2 of 3 PCs have no code or debug information in \(program.binary)"))
    }

    @Test(arguments: [["0xffffffff8100zz00"], ["0x"], ["12345678901234567"], ["-", "0x10"], []])
    func malformedPCsAreUsageErrors(pcs: [String]) throws {
        let program = try CompiledProgram.shared()
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.binary] + pcs)
        #expect(run.status == 64)
        if let token = pcs.first, pcs.count == 1 { #expect(run.error.contains("'\(token)' is not a hexadecimal PC")) }
    }

    @Test func malformedStandardInputNamesTheLine() throws {
        let program = try CompiledProgram.shared()
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.binary, "-"], input: "0x1140\nfunction+0x10\n")
        #expect(run.status == 64)
        #expect(run.error.hasPrefix("kcovctl: error: standard input: line 2: \"function+0x10\" is not a hex PC"))
        #expect(run.output.isEmpty)
    }

    @Test func fileWithoutDWARFFailsWithWhatToDo() throws {
        let program = try CompiledProgram.shared()
        let run = try Self.kcovctl(["symbolize", "--vmlinux", program.withoutDebugInfo, "0x1140"])
        #expect(run.status == 1)
        #expect(run.error.hasPrefix("kcovctl: error: \(program.withoutDebugInfo): has no DWARF debug information"))
        #expect(run.error.contains("CONFIG_DEBUG_INFO"))
    }
}
