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
