import CoverageAPI
import Foundation
import KernelImage
import KernelSymbolizer
import TestKernel
import TestSupport
import Testing
import TraceFile

/// `kcovctl report --module` on made-up traces of the real test kernel and test module
/// (Docs/modules.md): a module PC recorded under a KASLR slide is placed at its line, and every
/// way the mapping cannot be done is refused with the reason.
@Suite struct ModuleReportTests {
    static let name = TestModule.name
    static let vmlinuxText: UInt64 = 0xffff_ffff_8100_0000
    static let slide: UInt64 = 0x1e40_0000
    static let moduleText: UInt64 = 0xffff_ffff_c03a_1000

    struct Fixture {
        var kernel: TestKernel
        var folder: String
        /// A module PC as kcov records it (slide subtracted), and its line in the module's source.
        var modulePC: UInt64
        var moduleLine: Int
        /// A core coverable PC.
        var corePC: UInt64
        var buildID: String?

        func layout(modules: [KernelLayout.Module]? = nil, text: UInt64? = ModuleReportTests.vmlinuxText &+ ModuleReportTests.slide, unavailable: String? = nil) -> KernelLayout {
            KernelLayout(
                release: "6.12.117", text: text, unavailable: unavailable,
                modules: modules ?? [.init(
                    name: ModuleReportTests.name, base: ModuleReportTests.moduleText, size: 16_384,
                    sections: [".text": ModuleReportTests.moduleText, ".init.text": 0xffff_ffff_c03a_8000], buildID: buildID)])
        }

        func write(_ layout: KernelLayout?, pcs: [UInt64]? = nil) throws -> String {
            var file = TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [.init(truncated: false, pcs: pcs ?? [corePC, modulePC, modulePC])])
            file.kernel = layout
            let path = folder + "/trace-\(UInt32.random(in: 0...UInt32.max)).json"
            try file.jsonData().write(to: URL(fileURLWithPath: path))
            return path
        }

        func report(_ trace: String, _ extra: [String]? = nil) throws -> ProgramResult {
            let modules = extra ?? ["--module", "\(ModuleReportTests.name)=\(kernel.testModule)"]
            return try runKcovctl(["report", "--vmlinux", kernel.vmlinux, "--format", "lcov"] + modules + [trace])
        }
    }

    static func fixture() throws -> Fixture {
        guard let kernel = try TestKernelBuilder().cached() else {
            Issue.record("the test kernel is not built: run `kcovctl vm build` (Scripts/test.sh does)")
            throw CancellationError()
        }
        let image = try KernelImage(path: kernel.testModule)
        let symbolizer = try KernelSymbolizer(vmlinux: kernel.testModule)
        let text = try #require(image.allocatedSections[".text"])
        // The coverable PC at `return length * 3 + 1;` (branch a).
        let source = try String(contentsOfFile: URL(fileURLWithPath: kernel.testModule).deletingLastPathComponent().path + "/kcov_test_module.c", encoding: .utf8)
        let line = try #require(source.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("return length * 3 + 1;") }) + 1
        let site = try #require(try image.coverablePCs().pc.all.first { pc in
            pc >= text.address && pc < text.address + text.size && (try? symbolizer.checkedFrames(at: pc - 5).first?.line) == line
        })
        let recorded = moduleText &+ (site - text.address) &- slide
        let core = try #require(try KernelImage(path: kernel.vmlinux).coverablePCs().pc.all.first)
        let buildID = image.contents(ofSection: ".note.gnu.build-id").flatMap(KernelLayout.gnuBuildID(notes:))
        return Fixture(kernel: kernel, folder: temporaryDirectory("module-report"), modulePC: recorded, moduleLine: line, corePC: core, buildID: buildID)
    }

    /// `DA:` lines of the module's source in an LCOV tracefile.
    static func moduleLines(_ lcov: String) -> [Int: Int] {
        var result: [Int: Int] = [:]
        var inModule = false
        for line in lcov.split(separator: "\n") {
            if line.hasPrefix("SF:") { inModule = line.hasSuffix("/kcov_test_module.c") }
            if inModule, line.hasPrefix("DA:") {
                let fields = line.dropFirst(3).split(separator: ",")
                if let number = Int(fields[0]), let hits = Int(fields[1]) { result[number] = hits }
            }
        }
        return result
    }

    @Test func aModulePCRecordedUnderASlideLandsOnItsLine() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(atPath: fixture.folder) }
        #expect(fixture.buildID != nil, "the test module carries a build id")
        let result = try fixture.report(try fixture.write(fixture.layout()))
        #expect(result.status == 0, "\(result.errors)")
        let lines = Self.moduleLines(result.output)
        #expect(lines[fixture.moduleLine] == 2, "branch a's line, hit twice: \(lines.sorted { $0.key < $1.key })")
        // The PC counts for its line and the lines of its block; nothing outside branch a's function.
        #expect(lines.filter { $0.value > 0 }.keys.allSatisfy { $0 <= fixture.moduleLine && $0 >= fixture.moduleLine - 3 }, "\(lines.sorted { $0.key < $1.key })")
        #expect(!result.errors.contains("not coverable"), "every PC was placed: \(result.errors)")

        // The slide matters: the same trace with the layout's _text at the vmlinux's (no slide undone) misses the line.
        let unslid = try fixture.report(try fixture.write(fixture.layout(text: Self.vmlinuxText)))
        #expect(Self.moduleLines(unslid.output)[fixture.moduleLine] != 2, "without the slide the PC is elsewhere")

        // --modules DIR finds the module by name; without either, the module's PCs are counted and named.
        let folder = URL(fileURLWithPath: fixture.kernel.testModule).deletingLastPathComponent().path
        let found = try fixture.report(try fixture.write(fixture.layout()), ["--modules", folder])
        #expect(found.status == 0 && Self.moduleLines(found.output)[fixture.moduleLine] == 2, "\(found.errors)")
        let without = try fixture.report(try fixture.write(fixture.layout()), [])
        #expect(without.status == 0)
        #expect(without.errors.contains("1 unique PCs are in module kcov_test_module, which no .ko was given for: pass --module kcov_test_module=PATH.ko"), "\(without.errors)")
    }

    @Test("symbolize places a trace's module PCs through its layout, like report; without the .ko it names the module")
    func symbolizeWithAModule() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(atPath: fixture.folder) }
        let trace = try String(contentsOfFile: try fixture.write(fixture.layout(), pcs: [fixture.modulePC, fixture.corePC]), encoding: .utf8)
        func symbolize(_ extra: [String]) throws -> ProgramResult {
            try runKcovctl(["symbolize", "--vmlinux", fixture.kernel.vmlinux, "--return-addresses"] + extra + ["-"], input: trace)
        }
        let core = try runKcovctl(["symbolize", "--vmlinux", fixture.kernel.vmlinux, "--return-addresses", String(fixture.corePC, radix: 16)])
        #expect(core.status == 0, "\(core.errors)")

        let placed = try symbolize(["--module", "\(Self.name)=\(fixture.kernel.testModule)"])
        #expect(placed.status == 0, "\(placed.errors)")
        let lines = placed.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix(String(format: "0x%016llx ", fixture.modulePC)) == true, "the PC is printed as recorded: \(lines)")
        #expect(lines.first?.hasSuffix("/kcov_test_module.c:\(fixture.moduleLine)") == true, "branch a's line: \(lines)")
        #expect(placed.output.hasSuffix(core.output), "the core PC is answered from the vmlinux as on its own")

        let found = try symbolize(["--modules", URL(fileURLWithPath: fixture.kernel.testModule).deletingLastPathComponent().path])
        #expect(found.status == 0 && found.output == placed.output, "\(found.errors)")

        let without = try symbolize([])
        #expect(without.status == 0)
        #expect(without.output.hasPrefix(String(format: "0x%016llx ?? ??:0\n", fixture.modulePC)), "\(without.output)")
        #expect(without.errors.contains("1 unique PCs are in module kcov_test_module, which no .ko was given for: pass --module kcov_test_module=PATH.ko"), "\(without.errors)")

        let rawcover = try runKcovctl(
            ["symbolize", "--vmlinux", fixture.kernel.vmlinux, "--module", "\(Self.name)=\(fixture.kernel.testModule)", "-"], input: String(fixture.modulePC, radix: 16) + "\n")
        #expect(rawcover.status == 1 && rawcover.errors.contains("has no kernel layout"), "\(rawcover.errors)")
        let onTheCommandLine = try runKcovctl(["symbolize", "--vmlinux", fixture.kernel.vmlinux, "--module", "\(Self.name)=\(fixture.kernel.testModule)", "0x10"])
        #expect(onTheCommandLine.status == 64 && onTheCommandLine.errors.contains("pipe a `kcovctl trace --format json` file in with -"), "\(onTheCommandLine.errors)")
    }

    @Test("report --covered-by names the records that covered a module line, asked by FILE:LINE or by the PC as recorded")
    func coveredByAModuleLine() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(atPath: fixture.folder) }
        var file = TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [
            .init(pid: 10, tid: 10, executable: "/bin/sh", order: 0, pcs: [fixture.corePC]),
            .init(pid: 11, tid: 11, executable: "/usr/bin/printf", order: 1, pcs: [fixture.corePC, fixture.modulePC]),
        ])
        file.kernel = fixture.layout()
        let path = fixture.folder + "/whole-run.json"
        try file.jsonData().write(to: URL(fileURLWithPath: path))
        let module = ["--module", "\(Self.name)=\(fixture.kernel.testModule)"]
        for place in ["kcov_test_module.c:\(fixture.moduleLine)", "0x" + String(fixture.modulePC, radix: 16)] {
            let result = try runKcovctl(["report", "--vmlinux", fixture.kernel.vmlinux] + module + ["--covered-by", place, path])
            #expect(result.status == 0, "\(place): \(result.errors)")
            #expect(result.output.contains("task 1 pid 11 tid 11 /usr/bin/printf: 1 of"), "\(place): \(result.output)")
            #expect(!result.output.contains("/bin/sh"), "\(place): the shell never ran the module's code: \(result.output)")
            #expect(result.output.contains("1 records covered \(place)"), "\(place): \(result.output)")
        }
    }

    @Test func everyMappingThatCannotBeDoneIsRefusedWithTheReason() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(atPath: fixture.folder) }
        func refusal(_ layout: KernelLayout?, _ extra: [String]? = nil) throws -> String {
            let result = extra.map { try? fixture.report(try fixture.write(layout), $0) } ?? (try? fixture.report(try fixture.write(layout)))
            let unwrapped = try #require(result)
            #expect(unwrapped.status != 0, "refused: \(unwrapped.output.prefix(200))")
            return unwrapped.errors
        }
        #expect(try refusal(nil).contains("has no kernel layout"))
        #expect(try refusal(fixture.layout(modules: [])).contains("no module kcov_test_module was loaded when the trace ended (loaded: none)"))
        #expect(try refusal(fixture.layout(text: nil, unavailable: "/proc/kallsyms: zero addresses (kptr_restrict)")).contains("kptr_restrict"))
        var other = fixture.layout()
        other.modules[0].buildID = "00112233445566778899aabbccddeeff00112233"
        #expect(try refusal(other).contains("is another build of kcov_test_module than the one traced"))
        #expect(try refusal(fixture.layout(), ["--module", "kcov_test_module=\(fixture.kernel.vmlinux)"]).contains("is not a kernel module"))
        #expect(try refusal(fixture.layout(), ["--module", "kcov_test_module"]).contains("--module takes NAME=PATH.ko"))

        let compressed = fixture.folder + "/modules"
        try FileManager.default.createDirectory(atPath: compressed + "/extra", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: compressed + "/extra/kcov-test-module.ko.xz", contents: Data([0xfd, 0x37]))
        #expect(try refusal(fixture.layout(), ["--modules", compressed]).contains("is compressed (xz): decompress the modules first"))
    }
}
