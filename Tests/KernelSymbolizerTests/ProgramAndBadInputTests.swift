import Foundation
import KernelSymbolizer
import TestSupport
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

    @Test func framesNameWhereTheirFunctionIsDefined() throws {
        let program = try CompiledProgram.shared()
        let symbolizer = try KernelSymbolizer(vmlinux: program.binary)
        let stacks = try program.codeBytes().map(symbolizer.frames(at:))
        let deepest = try #require(stacks.first { $0.count == 3 })
        #expect(deepest.map(\.functionLine) == [1, 2, 6], "leaf, middle, outer: each frame's own function")
        #expect(deepest.allSatisfy { $0.functionFile == program.sourceFile })
        // Every frame of the program's own code names its function's definition.
        let own = stacks.joined().filter { $0.file == program.sourceFile && $0.function != nil }
        #expect(!own.isEmpty && own.allSatisfy { $0.functionFile == program.sourceFile && $0.functionLine > 0 })
        // The cold part of `split` is `split`, defined on line 8, in the DWARF (not the `split.cold` symbol).
        let symbols = try runTool("/usr/bin/nm", ["-S", program.binary]).split(separator: "\n")
        let cold = try #require(symbols.first { $0.hasSuffix(" split.cold") }, "gcc made no split.cold").split(separator: " ")
        let start = try #require(UInt64(cold[0], radix: 16))
        let size = try #require(UInt64(cold[1], radix: 16))
        for pc in start..<start + size {
            let frames = symbolizer.frames(at: pc)
            let function = try #require(frames.last, "0x\(String(pc, radix: 16)) has no frame")
            #expect(function.function == "split" && function.functionLine == 8 && function.functionFile == program.sourceFile, "\(frames)")
        }
    }

    @Test func zstdCompressedDebugSectionsAreDiagnosedWithTheFix() throws {
        let program = try CompiledProgram.shared()
        let zstd = program.directory + "/prog.zstd"
        let zlib = program.directory + "/prog.zlib"
        let plain = program.directory + "/prog.plain"
        _ = try runTool("/usr/bin/objcopy", ["--compress-debug-sections=zstd", program.binary, zstd])
        _ = try runTool("/usr/bin/objcopy", ["--compress-debug-sections=zlib", program.binary, zlib])
        _ = try runTool("/usr/bin/objcopy", ["--decompress-debug-sections", zstd, plain])
        let pcs = try program.codeBytes()
        let expected = try KernelSymbolizer(vmlinux: program.binary).frames(for: pcs)
        #expect(try KernelSymbolizer(vmlinux: zlib).frames(for: pcs) == expected, "zlib is read")
        #expect(try KernelSymbolizer(vmlinux: plain).frames(for: pcs) == expected, "the fix the message gives works")
        do {
            let symbolizer = try KernelSymbolizer(vmlinux: zstd)
            // An elfutils that decompresses zstd (0.189 and later) reads it all.
            #expect(symbolizer.frames(for: pcs) == expected)
        } catch {
            #expect(error.code == .unsupportedCompression)
            #expect(error.message.contains("zstd") && error.message.contains("elfutils 0.1"), "\(error)")
            #expect(error.message.contains("objcopy --decompress-debug-sections"), "\(error)")
        }
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
