import Foundation
import KernelImage
import KernelSymbolizer
import TestKernel
import TestSupport
import Testing

/// The project's test module, a relocatable `.ko`, read like a vmlinux (Docs/modules.md): its
/// coverable PCs come from its relocations against the kcov callbacks, and its DWARF, once
/// relocated, names the same lines as binutils' addr2line reading the `.ko` itself.
@Suite struct ModuleObjectTests {
    static func testModule() throws -> (ko: String, source: String) {
        guard let kernel = try TestKernelBuilder().cached() else {
            throw SetupError(description: "the test kernel is not built: run `kcovctl vm build` (about 10 minutes), then test again")
        }
        let folder = URL(fileURLWithPath: kernel.testModule).deletingLastPathComponent().path
        return (kernel.testModule, folder + "/kcov_test_module.c")
    }

    /// `readelf -rW`'s relocations against `__sanitizer_cov_trace_pc`: section-relative offsets of each call's rel32 field.
    static func callbackRelocations(_ ko: String) throws -> [(section: String, offset: UInt64)] {
        var section = ""
        var result: [(String, UInt64)] = []
        for line in try runTool(onPath("readelf") ?? "readelf", ["-rW", ko]).split(separator: "\n") {
            if line.hasPrefix("Relocation section '.rela") {
                section = String(line.split(separator: "'")[1].dropFirst(".rela".count))
                continue
            }
            let fields = line.split(separator: " ")
            if fields.count >= 5, fields[4] == "__sanitizer_cov_trace_pc", let offset = UInt64(fields[0], radix: 16) { result.append((section, offset)) }
        }
        return result
    }

    @Test func coverablePCsAreTheCallbackRelocationsAndEachNamesAddr2linesLine() throws {
        let (ko, _) = try Self.testModule()
        let base: UInt64 = 0xffff_f000_0000_0000
        let image = try KernelImage(path: ko, moduleBase: base)
        #expect(image.isRelocatable)
        let sites = try image.coverablePCs().pc
        let relocations = try Self.callbackRelocations(ko)
        try #require(relocations.count >= 8, "the module is built with kcov's instrumentation: \(relocations.count) call relocations")
        // Each `call` relocation's PC: the section's place in the layout, plus the field's offset, plus its 4 bytes.
        let expected = try relocations.map { relocation -> UInt64 in
            let section = try #require(image.allocatedSections[relocation.section], "section \(relocation.section) laid out")
            return section.address + relocation.offset + 4
        }
        #expect(Set(sites.callSites) == Set(expected), "call sites found by scanning the relocated code are exactly the relocations")

        // addr2line reads the .ko with binutils' own relocation: ask it for each call's section offset.
        let symbolizer = try KernelSymbolizer(vmlinux: ko, moduleBase: base)
        for relocation in relocations {
            let section = image.allocatedSections[relocation.section]!
            let call = relocation.offset - 1
            let theirs = try runTool(onPath("addr2line") ?? "addr2line", ["-e", ko, "-j", relocation.section, "-f", String(call, radix: 16)])
                .split(separator: "\n").map { line in
                    // The line's discriminator is not part of the comparison.
                    line.range(of: " (discriminator").map { String(line[..<$0.lowerBound]) } ?? String(line)
                }
            let ours = try symbolizer.checkedFrames(at: section.address + call)
            let innermost = try #require(ours.first, "a frame at \(relocation.section)+0x\(String(call, radix: 16))")
            #expect(theirs.count == 2)
            #expect(theirs.last?.hasSuffix("kcov_test_module.c:\(innermost.line)") == true, "\(relocation.section)+0x\(String(call, radix: 16)): addr2line \(theirs), ours \(innermost)")
            #expect(innermost.file.hasSuffix("kcov_test_module.c"))
        }
    }

    @Test func branchLinesAreCoverable() throws {
        let (ko, source) = try Self.testModule()
        let text = try String(contentsOfFile: source, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        func line(_ fragment: String) throws -> Int { try #require(text.firstIndex { $0.contains(fragment) }) + 1 }
        let image = try KernelImage(path: ko)
        let symbolizer = try KernelSymbolizer(vmlinux: ko)
        let lines = Set(try image.coverablePCs().pc.all.compactMap { try symbolizer.checkedFrames(at: $0 - 5).first?.line })
        for fragment in ["return length * 3 + 1;", "return length - 4;", "return 4 - length;"] {
            let number = try line(fragment)
            #expect(lines.contains(number), "a coverable PC at `\(fragment)` (line \(number)); lines: \(lines.sorted())")
        }
    }

    @Test func aCorruptRelocationIsAnErrorNotACrash() throws {
        let (ko, _) = try Self.testModule()
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ko)))
        // Point the first relocation of .rela.text past its section: its r_offset is the entry's first 8 bytes.
        let sections = try runTool(onPath("readelf") ?? "readelf", ["-SW", ko]).split(separator: "\n")
        let rela = try #require(sections.first { $0.contains(" .rela.text ") }).split(separator: " ").map(String.init)
        let offsetIndex = try #require(rela.firstIndex(of: "RELA")) + 2
        let fileOffset = try #require(Int(rela[offsetIndex], radix: 16))
        for index in 0..<8 { bytes[fileOffset + index] = 0xff }
        let damaged = FileManager.default.temporaryDirectory.appendingPathComponent("damaged-\(getpid()).ko").path
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        defer { try? FileManager.default.removeItem(atPath: damaged) }
        #expect(throws: KernelImageError.self) { _ = try KernelImage(path: damaged) }
        do {
            _ = try KernelImage(path: damaged)
        } catch {
            #expect(error.message.contains("past the section's"), "\(error)")
        }
    }
}
