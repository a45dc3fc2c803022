import Foundation
import KernelImage
import TestSupport
import Testing

/// kcov PCs by objdump: for each `call` to one of `callbacks`, the address of the next instruction.
func objdumpCallSites(_ path: String, callbacks: [String]) throws -> (pc: Set<UInt64>, comparisons: Set<UInt64>) {
    // grep keeps each call and the instruction after it: a few MB instead of the whole disassembly.
    let listing = try runTool(
        "/bin/sh", ["-c", "objdump -d --no-show-raw-insn \"$0\" | grep -A1 'call.*<__sanitizer_cov_'", path])
    var pcs = Set<UInt64>()
    var comparisons = Set<UInt64>()
    var pending: Bool?  // the previous instruction called a callback: true for trace_pc
    for line in listing.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":"), let address = UInt64(line[..<colon].trimmingCharacters(in: .whitespaces), radix: 16)
        else { continue }
        if let isPC = pending {
            if isPC { pcs.insert(address) } else { comparisons.insert(address) }
            pending = nil
        }
        guard line.contains("call"), let open = line.lastIndex(of: "<"), let close = line.lastIndex(of: ">") else { continue }
        let target = String(line[line.index(after: open)..<close])
        if target == CoverageCallbacks.pc[0] {
            pending = true
        } else if callbacks.contains(target) {
            pending = false
        }
    }
    return (pcs, comparisons)
}

@Suite("KernelImage on the test kernel's vmlinux")
struct KernelImageVmlinuxTests {
    /// objdump's linear sweep loses its place after instructions binutils 2.40 cannot decode
    /// (LKGS, `f2 0f 00 f7`, in `native_load_gs_index`) and misses the calls that follow; the scan
    /// does not. So: everything objdump finds, the scan finds, and each PC only the scan finds is
    /// confirmed by disassembling its call instruction alone.
    @Test("The coverable-PC scan finds every call site objdump finds, and each extra one is a real call")
    func coverablePCsMatchObjdump() throws {
        let path = try testKernelImage()
        let coverable = try KernelImage(path: path).coverablePCs()
        let expected = try objdumpCallSites(path, callbacks: CoverageCallbacks.comparisons)
        #expect(expected.pc.count > 10_000, "objdump found only \(expected.pc.count) trace_pc calls: not a kcov vmlinux?")
        #expect(!expected.comparisons.isEmpty)
        let sites = coverable.pc.callSites
        #expect(sites == sites.sorted() && Set(sites).count == sites.count, "unsorted or duplicate PCs")
        for (found, objdump) in [(sites, expected.pc), (coverable.comparisons.callSites, expected.comparisons)] {
            let found = Set(found)
            #expect(objdump.subtracting(found).sorted().prefix(5) == [], "found by objdump only")
            let extra = found.subtracting(objdump).sorted()
            #expect(extra.count < 20, "\(extra.count) PCs found by the scan only")
            for pc in extra.prefix(20) {
                let call = try runTool("/usr/bin/objdump", [
                    "-d", "--no-show-raw-insn", "--start-address=0x\(String(pc - CoverablePCs.callLength, radix: 16))", "--stop-address=0x\(String(pc, radix: 16))", path,
                ])
                #expect(call.contains("call") && call.contains("<__sanitizer_cov_"), "\(String(pc, radix: 16)) is not after a callback call:\n\(call)")
            }
        }
    }

    @Test("Function symbols: lookup by name and by an address inside")
    func functionLookup() throws {
        let image = try KernelImage(path: try testKernelImage())
        let read = try #require(image.address(of: "ksys_read"))
        #expect(image.function(containing: read)?.name == "ksys_read")
        #expect(image.function(containing: read + 4)?.name == "ksys_read")
        #expect(image.executableSections.contains { $0.name == ".text" })
        let coverable = try image.coverablePCs()
        let inside = try #require(coverable.pc.callSites.first { image.function(containing: $0)?.name == "ksys_read" })
        #expect(coverable.pc.contains(inside))
        #expect(!coverable.pc.contains(inside + 1))
        #expect(!coverable.comparisons.contains(inside))
        #expect(!image.followsIndirectCall(inside), "after a direct call")
    }
}

@Suite("KernelImage on bad input")
final class KernelImageBadInputTests {
    let directory = temporaryDirectory("kernel-image-tests")

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    @Test("A missing file, a text file and a bzImage-like blob are refused with what to pass instead")
    func notAnELF() throws {
        #expect(throws: KernelImageError.self) { try KernelImage(path: directory + "/absent") }
        do {
            _ = try KernelImage(path: directory + "/absent")
        } catch {
            #expect(error.message.contains("cannot open"))
        }
        let text = directory + "/notes.txt"
        try "not a kernel\n".write(toFile: text, atomically: true, encoding: .utf8)
        do {
            _ = try KernelImage(path: text)
            Issue.record("a text file was accepted")
        } catch {
            #expect(error.message.contains("not an ELF"))
            #expect(error.message.contains("vmlinux"))
        }
    }

    @Test("A stripped ELF (no .symtab) is refused, naming the unstripped vmlinux")
    func stripped() throws {
        let program = try compile("int main(void) { return 0; }")
        let stripped = directory + "/stripped"
        _ = try runTool("/usr/bin/strip", ["-o", stripped, program])
        do {
            _ = try KernelImage(path: stripped)
            Issue.record("a stripped ELF was accepted")
        } catch {
            #expect(error.message.contains("no symbol table"))
        }
    }

    @Test("An ELF without kcov callbacks has no coverable PCs, and says CONFIG_KCOV")
    func withoutKcov() throws {
        let image = try KernelImage(path: try compile("int main(void) { return 0; }"))
        #expect(image.address(of: "main") != nil)
        do {
            _ = try image.coverablePCs()
            Issue.record("an ELF without __sanitizer_cov_trace_pc gave coverable PCs")
        } catch {
            #expect(error.message.contains("CONFIG_KCOV"))
        }
    }

    @Test("A directory, a FIFO and a truncated ELF are refused at once with the real reason")
    func notARegularWholeFile() throws {
        do {
            _ = try KernelImage(path: directory)
            Issue.record("a directory was accepted")
        } catch {
            #expect(error.message.contains("is a directory, not a vmlinux"), "\(error)")
        }
        let fifo = directory + "/fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        let start = ContinuousClock.now
        do {
            _ = try KernelImage(path: fifo)
            Issue.record("a FIFO was accepted")
        } catch {
            #expect(error.message.contains("not a regular file"), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(5), "opening a FIFO must not wait for a writer")
        // The whole program opens; less its last 64 bytes (the section headers) it is truncated.
        let program = try compile("int main(void) { return 0; }")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: program))
        let truncated = directory + "/truncated"
        try bytes.dropLast(64).write(to: URL(fileURLWithPath: truncated))
        _ = try KernelImage(path: program)
        do {
            _ = try KernelImage(path: truncated)
            Issue.record("a truncated ELF was accepted")
        } catch {
            #expect(error.message.contains("truncated or corrupt ELF") && error.message.contains("past the end of the file"), "\(error)")
        }
    }

    @Test("A function symbol whose size runs past the address space is left out with a warning naming it")
    func oversizedSymbol() throws {
        let program = try compile(instrumented: "int main(int argc, char **argv) { return argc > 1; }", sanitize: "trace-pc")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: program)))
        // ELF64: e_shoff at 0x28, e_shentsize 0x3a, e_shnum 0x3c; a section header's sh_type at
        // +4, sh_offset +0x18, sh_size +0x20, sh_link +0x28, sh_entsize +0x38; a symbol's st_name
        // at +0, st_info +4, st_size +0x10.
        func word(_ at: Int, _ size: Int) -> Int { (0..<size).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        let sections = (0..<word(0x3c, 2)).map { word(0x28, 8) + $0 * word(0x3a, 2) }
        let symtab = try #require(sections.first { word($0 + 4, 4) == 2 })
        let strings = sections[word(symtab + 0x28, 4)]
        let symbols = stride(from: word(symtab + 0x18, 8), to: word(symtab + 0x18, 8) + word(symtab + 0x20, 8), by: word(symtab + 0x38, 8))
        let main = try #require(symbols.first { symbol in
            let name = word(strings + 0x18, 8) + word(symbol, 4)
            return bytes[symbol + 4] & 0xf == 2 && Array(bytes[name..<name + 5]) == Array("main\0".utf8)
        })
        for index in 0..<8 { bytes[main + 0x10 + index] = 0xff }
        let corrupt = directory + "/oversized"
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        let image = try KernelImage(path: corrupt)
        #expect(image.functions.contains { $0.name == "__sanitizer_cov_trace_pc" } && !image.functions.contains { $0.name == "main" })
        #expect(image.warnings.count == 1 && image.warnings[0].contains("(first: main)"), "\(image.warnings)")
        // Every lookup near it, and the scan, run without trapping.
        _ = try image.coverablePCs()
        #expect(image.function(containing: .max) == nil || image.function(containing: .max)?.name != "main")
    }

    @Test("A chain of tail jumps to the callback is found in linear time")
    func tailJumpChain() throws {
        // n functions, each a `jmp rel32` to the next, the last to the callback; _start calls the first.
        func chain(_ count: Int) throws -> (path: String, seconds: Double) {
            var assembly = [
                ".text", ".globl __sanitizer_cov_trace_pc", ".type __sanitizer_cov_trace_pc,@function", "__sanitizer_cov_trace_pc:", "ret",
                ".size __sanitizer_cov_trace_pc, 1", ".globl _start", ".type _start,@function", "_start:", "call __sanitizer_cov_trace_pc",
                "call f0", "ret", ".size _start, .-_start",
            ]
            for index in 0..<count {
                let target = index < count - 1 ? "f\(index + 1)" : "__sanitizer_cov_trace_pc"
                assembly += [".type f\(index),@function", "f\(index):", ".byte 0xe9", ".long \(target) - . - 4", ".size f\(index), .-f\(index)"]
            }
            let base = directory + "/chain\(count)"
            try assembly.joined(separator: "\n").appending("\n").write(toFile: base + ".s", atomically: true, encoding: .utf8)
            _ = try runTool("/usr/bin/gcc", ["-c", base + ".s", "-o", base + ".o"])
            _ = try runTool("/usr/bin/ld", ["-e", "_start", base + ".o", "-o", base])
            let image = try KernelImage(path: base)
            let start = ContinuousClock.now
            let coverable = try image.coverablePCs()
            let elapsed = ContinuousClock.now - start
            // _start's call into f0 returns to a coverable PC: f0 reaches the callback through the whole chain.
            #expect(coverable.pc.tailCallReturns.count == 1, "\(count): \(coverable.pc.tailCallReturns)")
            return (base, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        let small = try chain(2_000)
        let large = try chain(20_000)
        // Ten times the functions: about ten times the time (quadratic would be a hundred).
        #expect(large.seconds < max(small.seconds, 0.01) * 40, "2,000: \(small.seconds) s, 20,000: \(large.seconds) s")
    }

    /// The callbacks, built without instrumentation so they do not record themselves.
    static let callbacks = """
        #include <stdint.h>
        void __sanitizer_cov_trace_pc(void) {}
        void __sanitizer_cov_trace_cmp4(uint32_t a, uint32_t b) {}
        void __sanitizer_cov_trace_const_cmp4(uint32_t a, uint32_t b) {}
        void __sanitizer_cov_trace_cmp8(uint64_t a, uint64_t b) {}
        void __sanitizer_cov_trace_const_cmp8(uint64_t a, uint64_t b) {}
        void __sanitizer_cov_trace_switch(uint64_t v, uint64_t *cases) {}
        """

    @Test("A program built with -fsanitize-coverage=trace-pc,trace-cmp: the scan agrees with objdump")
    func sanitizerCoverageProgram() throws {
        let program = try compile(instrumented: """
            __attribute__((noinline)) int branchy(int x, int y) {
                if (x > 3) x += y; else x -= y;
                switch (y) { case 1: return x; case 7: return -x; case 9: return 2 * x; }
                return x == y ? 1 : 0;
            }
            int main(int argc, char **argv) { return branchy(argc, argc + 1); }
            """, sanitize: "trace-pc,trace-cmp")
        let coverable = try KernelImage(path: program).coverablePCs()
        let expected = try objdumpCallSites(program, callbacks: CoverageCallbacks.comparisons)
        #expect(coverable.pc.callSites.count >= 4)
        #expect(coverable.comparisons.callSites.count >= 2)
        #expect(Set(coverable.pc.callSites) == expected.pc)
        #expect(Set(coverable.comparisons.callSites) == expected.comparisons)
    }

    @Test("gcc's tail calls: returns from calls into functions that jump to the callback, directly or through another tail call")
    func tailCalls() throws {
        // leaf's last block tail-jumps to the callback; middle tail-jumps to leaf.
        let program = try compile(instrumented: """
            __attribute__((noinline)) void leaf(int *p) { if (*p > 2) *p = 1; }
            __attribute__((noinline)) void middle(int *p) { leaf(p); }
            __attribute__((noinline)) void plain(int *p) { *p += 1; }
            int main(int argc, char **argv) {
                leaf(&argc); middle(&argc); plain(&argc);
                void (*f)(int *) = argc > 5 ? leaf : middle;
                f(&argc);
                return argc;
            }
            """, sanitize: "trace-pc")
        let image = try KernelImage(path: program)
        let coverable = try image.coverablePCs()
        // The addresses after main's calls, by callee, from objdump.
        let listing = try runTool("/usr/bin/objdump", ["-d", "--no-show-raw-insn", "--disassemble=main", program])
        var after: [String: UInt64] = [:]
        var pendingCallee: String?
        for line in listing.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), let address = UInt64(line[..<colon].trimmingCharacters(in: .whitespaces), radix: 16) else { continue }
            if let callee = pendingCallee { after[callee] = address }
            pendingCallee = nil
            if line.contains("call") {
                pendingCallee = line.contains("*") ? "indirect" : line.split(separator: "<").last.map { String($0.dropLast()) }
            }
        }
        let leaf = try #require(after["leaf"])
        let middle = try #require(after["middle"])
        let plain = try #require(after["plain"])
        let indirect = try #require(after["indirect"])
        #expect(coverable.pc.tailCallReturns.contains(leaf))
        #expect(coverable.pc.tailCallReturns.contains(middle), "middle reaches the callback through leaf")
        #expect(!coverable.pc.contains(plain), "plain calls the callback and returns: no tail call")
        #expect(!coverable.pc.contains(indirect) && image.followsIndirectCall(indirect))
        #expect(!image.followsIndirectCall(leaf) && !image.followsIndirectCall(plain))
    }

    /// Links `instrumented` (built with `-fsanitize-coverage=sanitize`) with the callbacks.
    private func compile(instrumented: String, sanitize: String) throws -> String {
        let output = directory + "/program\(UInt32.random(in: 0...UInt32.max))"
        try Self.callbacks.write(toFile: output + "-callbacks.c", atomically: true, encoding: .utf8)
        try instrumented.write(toFile: output + ".c", atomically: true, encoding: .utf8)
        _ = try runTool("/usr/bin/gcc", ["-O2", "-c", "-o", output + ".o", "-fsanitize-coverage=" + sanitize, output + ".c"])
        _ = try runTool("/usr/bin/gcc", ["-O2", "-o", output, output + "-callbacks.c", output + ".o"])
        return output
    }

    /// Compiles a plain C program.
    private func compile(_ source: String) throws -> String {
        let output = directory + "/plain\(UInt32.random(in: 0...UInt32.max))"
        try source.write(toFile: output + ".c", atomically: true, encoding: .utf8)
        _ = try runTool("/usr/bin/gcc", ["-o", output, output + ".c"])
        return output
    }
}
