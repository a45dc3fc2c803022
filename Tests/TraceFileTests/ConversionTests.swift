import CoverageAPI
import Foundation
import Testing
@testable import TraceFile

@Suite("Conversions and the merged view")
struct ConversionTests {
    @Test("Unit from and to CoverageAPI's PC kind and granularity")
    func units() {
        #expect(TraceFile.Unit(pcKind: .kernelAddress, granularity: .basicBlock) == .pc)
        #expect(TraceFile.Unit(pcKind: .synthetic, granularity: .basicBlock) == .syntheticBlock)
        #expect(TraceFile.Unit(pcKind: .kernelAddress, granularity: .function) == .function)
        for unit in TraceFile.Unit.allCases { #expect(TraceFile.Unit(pcKind: unit.pcKind, granularity: unit.granularity) == unit) }
    }

    @Test("Exit from and to CommandExit")
    func exits() {
        for exit in [CommandExit.exited(0), .exited(3), .signaled(9), .timedOut] { #expect(TraceFile.Exit(exit).commandExit == exit) }
        #expect(TraceFile.Exit(.signaled(9)) == .signal(9))
    }

    @Test("A Trace in, the same Trace out: PC and CMP mode, kernel and synthetic PCs")
    func traces() {
        let traces = [
            Trace(backend: "linux", unit: .pc, mode: .pc, pcs: [3, 1, 3], truncated: true),
            Trace(backend: "linux", unit: .pc, mode: .comparisons, comparisons: [ComparisonRecord(type: 5, first: 1, second: 2, pc: 9)]),
            Trace(backend: "linux", unit: .syntheticBlock, mode: .pc, pcs: [7]),
        ]
        for trace in traces {
            let file = TraceFile(backend: "linux", trace: trace)
            #expect(file.mergedTrace == trace)
            #expect(file.trace(of: file.tasks[0]) == trace)
        }
        #expect(TraceFile(backend: "gvisor", trace: traces[2]).pcFormat == .unknown, "synthetic PCs always carry a format")
        #expect(TraceFile(backend: "gvisor", trace: traces[2], pcFormat: .legacy).pcFormat == .legacy)
        #expect(TraceFile(backend: "linux", trace: traces[0], pcFormat: .legacy).pcFormat == nil, "kernel PCs have none")
    }

    @Test("The merged view: all tasks' PCs in task order, truncated if any task is, and the counts")
    func merged() {
        let file = TraceFile(
            backend: "linux", unit: .pc, mode: .pc,
            tasks: [.init(tid: 1, truncated: false, pcs: [1, 2, 2]), .init(tid: 2, truncated: true, pcs: [2, 3]), .init(tid: 3, truncated: false)])
        #expect(file.pcs == [1, 2, 2, 2, 3])
        #expect(file.isTruncated && file.entryCount == 5 && file.uniquePCCount == 3)
        #expect(file.mergedTrace == Trace(backend: "linux", unit: .pc, mode: .pc, pcs: [1, 2, 2, 2, 3], truncated: true))
        #expect(file.trace(of: file.tasks[1]) == Trace(backend: "linux", unit: .pc, mode: .pc, pcs: [2, 3], truncated: true))
        let cmp = TraceFile(
            backend: "linux", unit: .pc, mode: .comparisons,
            tasks: [
                .init(truncated: false, comparisons: [ComparisonRecord(type: 1, first: 0, second: 0, pc: 5)]),
                .init(truncated: false, comparisons: [ComparisonRecord(type: 6, first: 0, second: 0, pc: 6)]),
            ])
        #expect(cmp.pcs == [5, 6] && cmp.constantComparisonCount == 1 && cmp.comparisons.count == 2 && !cmp.isTruncated)
    }

    @Test("Function hits merge over tasks by address, saturating")
    func functions() {
        let file = TraceFile(
            backend: "kprobe", unit: .function, mode: .pc, probedFunctions: [.init(name: "f", pc: 0x10), .init(name: "g", pc: 0x20)],
            tasks: [
                .init(truncated: false, functions: [.init(name: "f", pc: 0x10, hits: 2), .init(name: "g", pc: 0x20, hits: .max)]),
                .init(truncated: false, functions: [.init(name: "g", pc: 0x20, hits: 5), .init(name: "f", pc: 0x10, hits: 3)]),
            ])
        #expect(file.functions == [.init(name: "f", pc: 0x10, hits: 5), .init(name: "g", pc: 0x20, hits: .max)])
        #expect(file.hitsByPC == [0x10: 5, 0x20: .max])
        #expect(file.pcs == [0x10, 0x20, 0x20, 0x10] && file.entryCount == 4 && file.uniquePCCount == 2)
        #expect(file.mergedTrace == Trace(backend: "kprobe", functions: [.init(name: "f", pc: 0x10, hits: 5), .init(name: "g", pc: 0x20, hits: .max)]))
    }

    @Test("parsePC takes what rawcover and the command line give")
    func parsePC() {
        #expect(TraceFile.parsePC("0xffffffff81000010") == 0xffff_ffff_8100_0010)
        #expect(TraceFile.parsePC(" FFFF ") == 0xffff)
        #expect(TraceFile.parsePC("0x") == nil && TraceFile.parsePC("") == nil && TraceFile.parsePC("0x1ffffffffffffffff") == nil && TraceFile.parsePC("12g") == nil)
    }
}
