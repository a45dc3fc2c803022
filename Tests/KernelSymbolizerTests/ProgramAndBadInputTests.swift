import Foundation
import KernelSymbolizer
import Testing

/// The symbolizer on a program compiled here, and on files it cannot symbolize against.
@Suite struct ProgramAndBadInputTests {
    @Test func agreesWithAddr2lineOnEveryByteOfAProgram() throws {
        let program = try CompiledProgram.shared()
        let pcs = try program.codeBytes()
        #expect(pcs.count >= 100)
        let frames = try KernelSymbolizer(vmlinux: program.binary).frames(for: pcs)
        let agreement = try compareWithAddr2line(binary: program.binary, pcs: pcs, ours: frames)
        #expect(agreement.unexplained.isEmpty, "\(agreement.unexplained.joined(separator: "\n"))")
        #expect(agreement.exact == pcs.count)
    }

    @Test func inlinedFramesInnermostFirst() throws {
        let program = try CompiledProgram.shared()
        let symbolizer = try KernelSymbolizer(vmlinux: program.binary)
        let stacks = try program.codeBytes().map(symbolizer.frames(at:))
        let deepest = try #require(stacks.first { $0.count == 3 })
        #expect(deepest.map(\.function) == ["leaf", "middle", "outer"])
        #expect(deepest.map(\.file) == Array(repeating: program.sourceFile, count: 3))
        #expect(deepest.map(\.line) == [1, 3, 6])
        #expect(deepest.allSatisfy { $0.column > 0 })
        // Code without DWARF (crt's) is named from the symbol table, as addr2line does.
        #expect(stacks.contains { $0 == [SymbolFrame(function: "_start", file: "??", line: 0)] })
    }

    @Test func programWithoutDWARFIsRefused() throws {
        let program = try CompiledProgram.shared()
        for path in [program.withoutDebugInfo, program.stripped] {
            let error = try #require(throws: SymbolizerError.self) { try KernelSymbolizer(vmlinux: path) }
            #expect(error.code == .noDebugInfo)
            #expect(error.description.contains("CONFIG_DEBUG_INFO"))
            #expect(error.description.contains("unstripped vmlinux"))
        }
    }

    @Test func fileThatIsNotELFIsRefused() throws {
        let directory = try CompiledProgram.shared().directory
        for (name, contents) in [("text", "0xffffffff81000000\n"), ("empty", "")] {
            let path = directory + "/" + name
            try contents.write(toFile: path, atomically: true, encoding: .utf8)
            let error = try #require(throws: SymbolizerError.self) { try KernelSymbolizer(vmlinux: path) }
            #expect(error.code == .notELF, "\(name): \(error)")
            #expect(error.description.contains("not the bzImage"))
        }
    }

    @Test func missingFileOrDirectoryIsUnreadable() throws {
        let directory = try CompiledProgram.shared().directory
        for path in [directory + "/no-such-vmlinux", directory] {
            let error = try #require(throws: SymbolizerError.self) { try KernelSymbolizer(vmlinux: path) }
            #expect(error.code == .unreadable)
            #expect(error.path == path)
        }
    }
}
