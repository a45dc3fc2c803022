import Foundation
import TestKernel
import TestSupport
import Testing
import TraceFile
import VirtualMachine

/// Modules and KASLR on the real kernel (Docs/modules.md): the project's test module is loaded in
/// three boots — two with KASLR, one with `nokaslr` — and one write to its debugfs file is traced
/// in each. The traces' core PCs match the vmlinux unchanged and their module PCs, mapped through
/// each trace's own layout, give the same lines of the module's source in LCOV every time.
@Suite(.serialized) struct ModuleGuestTests {
    struct Boot {
        var trace: TraceFile
        var path: String
        var lcov: String
    }

    /// One boot: load the module, trace `printf a` into its branch file, report with the module.
    static func boot(randomizeBase: Bool, kernel: TestKernel, kcovctl: String, folder: String, index: Int) throws -> Boot {
        let machine = VirtualMachine(
            kernelImage: kernel.bzImage, workDirectory: TestKernelBuilder().cacheDirectory + "/vm", randomizeBase: randomizeBase)
        let script = "/usr/sbin/insmod \(kernel.testModule) && \(kcovctl) trace --backend linux --format json -- /bin/sh -c 'printf a > \(TestModule.branchFile)'"
        let result = try machine.run(["/bin/sh", "-c", script])
        #expect(result.exitStatus == 0, "the guest failed: \(String(decoding: result.standardError, as: UTF8.self).suffix(2000))")
        let path = folder + "/boot\(index).json"
        try result.standardOutput.write(to: URL(fileURLWithPath: path))
        let trace = try TraceFile.read(path: path)
        let report = try runKcovctl([
            "report", "--vmlinux", kernel.vmlinux, "--module", "\(TestModule.name)=\(kernel.testModule)", "--format", "lcov", path,
        ])
        #expect(report.status == 0, "report failed: \(report.errors)")
        return Boot(trace: trace, path: path, lcov: report.output)
    }

    /// LCOV's `DA:LINE,HITS` of one source file, as line → hits.
    static func lines(of file: String, in lcov: String) -> [Int: Int] {
        var result: [Int: Int] = [:]
        var inFile = false
        for line in lcov.split(separator: "\n") {
            if line.hasPrefix("SF:") { inFile = line.hasSuffix("/" + file) }
            if inFile, line.hasPrefix("DA:") {
                let fields = line.dropFirst(3).split(separator: ",")
                if fields.count >= 2, let number = Int(fields[0]), let hits = Int(fields[1]) { result[number] = hits }
            }
        }
        return result
    }

    /// Functions with hits (`FNDA:N,NAME`, N > 0) outside the module.
    static func coreFunctions(_ lcov: String) -> Set<String> {
        var result: Set<String> = []
        var inModule = false
        for line in lcov.split(separator: "\n") {
            if line.hasPrefix("SF:") { inModule = line.hasSuffix("/kcov_test_module.c") }
            guard !inModule, line.hasPrefix("FNDA:") else { continue }
            let fields = line.dropFirst(5).split(separator: ",", maxSplits: 1)
            if fields.count == 2, let hits = Int(fields[0]), hits > 0 { result.insert(String(fields[1])) }
        }
        return result
    }

    @Test(.timeLimit(.minutes(20)))
    func moduleLinesAndCoreFunctionsAreTheSameInThreeBootsWithAndWithoutKASLR() throws {
        let kernel = try TestKernelBuilder().build { print("test kernel: \($0)") }
        let kcovctl = try builtKcovctl()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kcov-modules-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let boots = try [true, true, false].enumerated().map { index, random in
            try Self.boot(randomizeBase: random, kernel: kernel, kcovctl: kcovctl, folder: folder, index: index)
        }
        let vmlinuxText: UInt64 = 0xffff_ffff_8100_0000  // the test kernel links _text here (no KASLR)
        let slides = boots.map { $0.trace.kernel?.slide(vmlinuxText: vmlinuxText) }
        let bases = boots.map { $0.trace.kernel?.modules.first { $0.name == TestModule.name }?.base }
        print("KASLR: slides \(slides.map { $0.map { String(format: "0x%llx", $0) } ?? "none" }), module bases \(bases.map { $0.map { String(format: "0x%llx", $0) } ?? "none" })")
        #expect(slides[2] == 0, "nokaslr: no slide")
        #expect(slides[0] != 0 || slides[1] != 0, "a KASLR boot moved the kernel")
        #expect(Set(bases).count >= 2, "the module was loaded at different addresses")

        let source = try String(contentsOfFile: URL(fileURLWithPath: kernel.testModule).deletingLastPathComponent().path + "/kcov_test_module.c", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
        func line(_ fragment: String) throws -> Int { try #require(source.firstIndex { $0.contains(fragment) }) + 1 }
        let branchA = try line("return length * 3 + 1;")
        let branchB = [try line("return length - 4;"), try line("return 4 - length;")]
        let moduleLines = boots.map { Self.lines(of: "kcov_test_module.c", in: $0.lcov) }
        print("module lines covered: \(moduleLines.map { $0.filter { $0.value > 0 }.keys.sorted() })")
        for (index, lines) in moduleLines.enumerated() {
            #expect(lines[branchA] ?? 0 > 0, "boot \(index): writing 'a' covers branch a (line \(branchA)): \(lines.sorted { $0.key < $1.key })")
            for line in branchB { #expect(lines[line] == 0, "boot \(index): branch b (line \(line)) is coverable and not covered") }
            #expect(lines.filter { $0.value > 0 }.keys.sorted() == moduleLines[0].filter { $0.value > 0 }.keys.sorted(), "boot \(index): the same module lines")
        }
        let core = boots.map { Self.coreFunctions($0.lcov) }
        let shared = core.dropFirst().reduce(core[0]) { $0.intersection($1) }
        let all = core.reduce(Set<String>()) { $0.union($1) }
        print("core functions: \(core.map(\.count)) per boot, \(shared.count) in all three of \(all.count)")
        #expect(Double(shared.count) >= 0.95 * Double(all.count), "the same command covers the same core functions in each boot")
        #expect(["ksys_write", "vfs_write"].allSatisfy(shared.contains))
    }
}
