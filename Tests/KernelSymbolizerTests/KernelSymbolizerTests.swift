import Foundation
import KernelImage
import KernelSymbolizer
import TestSupport
import Testing

/// The symbolizer on the test kernel's vmlinux (gcc 12, DWARF 5, CONFIG_DEBUG_INFO_REDUCED),
/// against binutils' `addr2line -afi`.
@Suite struct KernelSymbolizerTests {
    /// PCs spread over the kernel's code: for every `stride`-th function symbol of `nm -S -n`
    /// (C and assembly), its first byte, two inner bytes and its last byte.
    static func functionSample(_ vmlinux: String, stride: Int) throws -> [UInt64] {
        let functions = try runTool("/usr/bin/nm", ["-S", "-n", "--defined-only", vmlinux]).split(separator: "\n").compactMap {
            line -> (address: UInt64, size: UInt64)? in
            let fields = line.split(separator: " ")
            guard fields.count == 4, "tTwW".contains(fields[2]), let address = UInt64(fields[0], radix: 16),
                  let size = UInt64(fields[1], radix: 16), size > 0
            else { return nil }
            return (address, size)
        }
        return Swift.stride(from: 0, to: functions.count, by: stride).flatMap { index -> [UInt64] in
            let function = functions[index]
            return [0, function.size / 3, function.size * 2 / 3, function.size - 1].map { function.address + $0 }
        }
    }

    @Test func agreesWithAddr2lineOnEveryFrame() throws {
        let vmlinux = try testKernelVMLinux()
        let pcs = try Self.functionSample(vmlinux, stride: 25)
        #expect(pcs.count >= 1000)
        let symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
        let frames = symbolizer.frames(for: pcs)
        let agreement = try compareWithAddr2line(binary: vmlinux, pcs: pcs, ours: frames)
        #expect(agreement.unexplained.isEmpty, "\(agreement.unexplained.count) PCs disagree:\n\(agreement.unexplained.prefix(30).joined(separator: "\n"))")
        #expect(agreement.exact >= pcs.count * 95 / 100, "only \(agreement.exact) of \(pcs.count) PCs agree exactly")
        // The sample exercises inlining and assembly (no DWARF function: symbol-table names).
        #expect(frames.filter { $0.count > 1 }.count >= pcs.count / 10)
        #expect(frames.contains { $0.count >= 3 })
        #expect(frames.contains { $0.first?.file.hasSuffix(".S") == true })
    }

    /// What reports symbolize: the call before every coverable PC (every 40th, from the scan).
    @Test func agreesWithAddr2lineOnKcovCallSites() throws {
        let vmlinux = try testKernelVMLinux()
        let coverable = try KernelImage(path: vmlinux).coverablePCs()
        let pcs = Swift.stride(from: 0, to: coverable.pc.all.count, by: 40).map { coverable.pc.all[$0] - CoverablePCs.callLength }
        #expect(pcs.count >= 1000)
        let frames = try KernelSymbolizer(vmlinux: vmlinux).frames(for: pcs)
        let agreement = try compareWithAddr2line(binary: vmlinux, pcs: pcs, ours: frames)
        #expect(agreement.unexplained.isEmpty, "\(agreement.unexplained.count) PCs disagree:\n\(agreement.unexplained.prefix(30).joined(separator: "\n"))")
        #expect(agreement.exact >= pcs.count * 95 / 100, "only \(agreement.exact) of \(pcs.count) PCs agree exactly")
        #expect(frames.allSatisfy { !$0.isEmpty }, "every call site is in a function with DWARF")
    }

    @Test func singleLookupsEqualTheBatch() throws {
        let vmlinux = try testKernelVMLinux()
        let pcs = try Self.functionSample(vmlinux, stride: 97)
        let symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
        let batch = symbolizer.frames(for: pcs)
        for (pc, frames) in zip(pcs, batch) {
            #expect(symbolizer.frames(at: pc) == frames, "0x\(String(pc, radix: 16))")
        }
    }

    @Test func pcsOutsideTheKernelsCodeHaveNoFrames() throws {
        let symbolizer = try KernelSymbolizer(vmlinux: try testKernelVMLinux())
        // Null, user space, a data address, the top of the address space: no code of this kernel.
        let strangers: [UInt64] = [0, 0x1234, 0x0000_7fff_f7a0_1000, 0xffff_ffff_ffff_fff0]
        for pc in strangers {
            #expect(symbolizer.frames(at: pc).isEmpty, "0x\(String(pc, radix: 16))")
            #expect(symbolizer.sourceRange(of: pc) == nil)
        }
        #expect(symbolizer.frames(for: strangers).allSatisfy { $0.isEmpty })
    }

    @Test func sourceRangeIsTheInnermostFrame() throws {
        let vmlinux = try testKernelVMLinux()
        let symbolizer = try KernelSymbolizer(vmlinux: vmlinux)
        let pcs = try Self.functionSample(vmlinux, stride: 50)
        let pc = try #require(pcs.first { symbolizer.frames(at: $0).count > 1 })
        let innermost = try #require(symbolizer.frames(at: pc).first)
        let range = try #require(symbolizer.sourceRange(of: pc))
        #expect(range.file == innermost.file && range.function == innermost.function)
        #expect(range.startLine == innermost.line && range.endLine == innermost.line && range.startLine > 0)
        #expect(range.startColumn == innermost.column && range.endColumn == innermost.column)
    }

    /// A frame keeps its numbers in 32 bits, as DWARF's line-table registers are: each reads back
    /// what was set, a discriminator up to `UInt32.max` included, and a value past 32 bits is
    /// clamped rather than wrapped.
    @Test func frameNumbersReadBackAsSet() {
        var frame = SymbolFrame(function: "f", file: "a.c", line: 7, column: 3, discriminator: 0xffff_ffff, functionFile: "a.c", functionLine: 5)
        #expect(frame.line == 7 && frame.column == 3 && frame.discriminator == 0xffff_ffff && frame.functionLine == 5)
        frame.line = 1 << 40
        frame.column = -2
        frame.discriminator = 4
        frame.functionLine = Int(Int32.max)
        #expect(frame.line == Int(Int32.max) && frame.column == -2 && frame.discriminator == 4 && frame.functionLine == Int(Int32.max))
        #expect(frame == SymbolFrame(function: "f", file: "a.c", line: 1 << 40, column: -2, discriminator: 4, functionFile: "a.c", functionLine: Int(Int32.max)))
        #expect(frame != SymbolFrame(function: "f", file: "a.c", line: 1 << 40, column: -2, discriminator: 5, functionFile: "a.c", functionLine: Int(Int32.max)))
    }
}
