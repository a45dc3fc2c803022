import CoverageAPI
import Foundation
import Testing
@testable import TraceFile

@Suite("Trace file round trips")
struct RoundTripTests {
    @Test("Every unit and mode, one task and several: JSONEncoder → JSONDecoder gives the value back", arguments: validKinds.indices)
    func codableRoundTrip(kind: Int) throws {
        let (unit, mode) = validKinds[kind]
        var rng = SeededGenerator(seed: 0x7ace_0001 &+ UInt64(kind))
        for taskCount in [0, 1, 1, 2, 5] {
            let file = TraceFile.random(unit: unit, mode: mode, taskCount: taskCount, using: &rng)
            let data = try JSONEncoder().encode(file)
            #expect(try JSONDecoder().decode(TraceFile.self, from: data) == file)
            #expect(try TraceFile.decode(data, source: "encoded") == file)
        }
    }

    @Test("The fast writer's output reads back equal, through JSONDecoder and through the fast reader", arguments: validKinds.indices)
    func fastWriterAgreesWithCodable(kind: Int) throws {
        let (unit, mode) = validKinds[kind]
        var rng = SeededGenerator(seed: 0xfa57_0001 &+ UInt64(kind))
        for round in 0..<40 {
            let file = TraceFile.random(unit: unit, mode: mode, taskCount: round % 4, using: &rng)
            let written = try file.jsonData()
            #expect(try JSONDecoder().decode(TraceFile.self, from: written) == file, "JSONDecoder reads the fast writer's output")
            #expect(fast(written) == file, "the fast reader takes the fast writer's output without falling back")
            let encoded = try JSONEncoder().encode(file)
            #expect(fast(encoded) == file, "the fast reader takes JSONEncoder's output too")
            #expect(try TraceFile.decode(written, source: "written") == file)
        }
    }

    @Test("Version 1 unless a whole-run field is used: single-task traces stay readable by version-1 readers")
    func writtenVersion() throws {
        var file = TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [.init(pid: 1, tid: 1, truncated: false, pcs: [0x10])])
        #expect(file.writtenVersion == 1)
        #expect(String(decoding: try file.jsonData(), as: UTF8.self).contains("\"version\": 1,"))
        let variants: [(inout TraceFile) -> Void] = [
            { $0.tasks[0].end = .killed }, { $0.tasks[0].endOrder = 0 }, { $0.tasks[0].withoutAgent = "static executable" },
            { $0.tasks[0].agentTail = 3 }, { $0.untraced = [.init(pid: 2, reason: "KCOV_INIT_TRACE failed")] },
        ]
        for change in variants {
            var changed = file
            change(&changed)
            #expect(changed.writtenVersion == 2)
            let written = try changed.jsonData()
            #expect(String(decoding: written, as: UTF8.self).contains("\"version\": 2,"))
            #expect(try TraceFile.decode(written, source: "v2") == changed)
            #expect(try TraceFile.decode(JSONEncoder().encode(changed), source: "v2 encoded") == changed)
        }
        file.tasks[0].agentTail = -1
        #expect(throws: TraceFileError.self) { try file.jsonData() }
    }

    @Test("Version 3 with a kernel layout: every writer and reader agree, and the layout's absence keeps version 1")
    func kernelLayoutRoundTrip() throws {
        let layouts = [
            KernelLayout(
                release: "6.12.117", text: 0xffff_ffff_a340_0000,
                modules: [
                    .init(
                        name: "kcov_test_module", base: 0xffff_ffff_c020_0000, size: 16_384,
                        sections: [".text": 0xffff_ffff_c020_0000, ".init.text": 0xffff_ffff_c030_1000, ".exit.text": 0xffff_ffff_c020_0130],
                        buildID: "8d0c1f2e3a4b5c6d7e8f90a1b2c3d4e5f6071829"),
                    .init(name: "other", base: 0xffff_ffff_c040_0000, size: 8_192, sections: [:]),
                ]),
            KernelLayout(release: "6.1.0", text: nil, unavailable: "/proc/kallsyms: zero addresses"),
        ]
        for layout in layouts {
            var file = TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [.init(pid: 1, tid: 1, truncated: false, pcs: [0xffff_ffff_8100_0010])])
            #expect(file.writtenVersion == 1)
            file.kernel = layout
            #expect(file.writtenVersion == 3)
            let written = try file.jsonData()
            #expect(String(decoding: written, as: UTF8.self).contains("\"version\": 3,"))
            #expect(try TraceFile.decode(written, source: "v3") == file)
            #expect(fast(written) == file)
            #expect(try JSONDecoder().decode(TraceFile.self, from: written) == file)
            #expect(try TraceFile.decode(JSONEncoder().encode(file), source: "v3 encoded") == file)
        }
    }

    @Test("The fast writer puts format and version first and one PC a line")
    func fastWriterLayout() throws {
        let file = TraceFile(
            backend: "linux", trace: Trace(unit: .pc, mode: .pc, pcs: [0xffff_ffff_8100_0010, 0x1], truncated: true),
            command: ["/bin/cat", "/proc/version"], exit: .exited(0), bufferWords: 4_194_304)
        let text = String(decoding: try file.jsonData(), as: UTF8.self)
        #expect(text == """
            {
              "format": "kcovctl-trace",
              "version": 1,
              "backend": "linux",
              "unit": "pc",
              "mode": "pc",
              "command": ["/bin/cat", "/proc/version"],
              "exit": {"status": 0},
              "bufferWords": 4194304,
              "tasks": [
                {"truncated": true, "pcs": [
                  "0xffffffff81000010",
                  "0x0000000000000001"
                ]}
              ]
            }

            """)
    }

    @Test("Comparisons are written with size and const, which the reader does not need")
    func comparisonsCarrySizeAndConst() throws {
        let record = ComparisonRecord(type: 0b111, first: 0x10, second: 0xffff_ffff_ffff_fff0, pc: 0xffff_ffff_8100_0040)
        let file = TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .comparisons, comparisons: [record]))
        let text = String(decoding: try file.jsonData(), as: UTF8.self)
        #expect(text.contains(#"{"pc": "0xffffffff81000040", "type": 7, "size": 8, "const": true, "arg1": "0x0000000000000010", "arg2": "0xfffffffffffffff0"}"#))
        let without = text.replacingOccurrences(of: #""size": 8, "const": true, "#, with: "")
        #expect(try decode(without) == file)
    }

    @Test("A value that breaks the rules is not written, by either writer, and the error names the field")
    func invalidValuesAreRefused() {
        var pcsInCmp = TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .comparisons))
        pcsInCmp.tasks[0].pcs = [1]
        var cmpFunctions = TraceFile(backend: "kprobe", functions: [], probedFunctions: [])
        cmpFunctions.mode = .comparisons
        var syntheticWithoutFormat = TraceFile(backend: "gvisor", trace: Trace(unit: .syntheticBlock, mode: .pc))
        syntheticWithoutFormat.pcFormat = nil
        var formatOnKernelPCs = TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .pc))
        formatOnKernelPCs.pcFormat = .current
        var probedOnPCs = TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .pc))
        probedOnPCs.probedFunctions = []
        var negativeOrder = TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .pc))
        negativeOrder.tasks[0].order = -1
        let cases: [(TraceFile, String)] = [
            (pcsInCmp, "tasks[0].pcs: "), (cmpFunctions, "mode: "), (syntheticWithoutFormat, "pcFormat: "), (formatOnKernelPCs, "pcFormat: "),
            (probedOnPCs, "probedFunctions: "), (negativeOrder, "tasks[0].order: "),
        ]
        for (file, prefix) in cases {
            #expect { try file.jsonData() } throws: { error in
                (error as? TraceFileError)?.message.hasPrefix(prefix) == true
            }
            #expect(throws: EncodingError.self) { try JSONEncoder().encode(file) }
        }
    }

    @Test("Big hit counts, type words and operands survive exactly (no JSON doubles)")
    func exactIntegers() throws {
        let file = TraceFile(
            backend: "kprobe", functions: [.init(name: "f", pc: .max, hits: .max), .init(name: "g", pc: 0, hits: (1 << 53) + 1)],
            probedFunctions: [.init(name: "f", pc: .max)])
        #expect(try decode(String(decoding: try file.jsonData(), as: UTF8.self)) == file)
        let cmp = TraceFile(
            backend: "linux", trace: Trace(unit: .pc, mode: .comparisons, comparisons: [ComparisonRecord(type: .max, first: .max, second: 1, pc: .max)]))
        #expect(try decode(String(decoding: try cmp.jsonData(), as: UTF8.self)) == cmp)
    }
}
