import CoverageAPI
import Foundation
import GVisorBackend
import Testing
import TraceFile
@testable import kcovctl

@Suite struct TraceReportTests {
    let pcTrace = Trace(unit: .pc, mode: .pc, pcs: [0xffff_ffff_8100_0000, 0x1, 0xffff_ffff_ffff_ffff], truncated: true)

    func report(_ trace: Trace, command: [String] = ["/bin/true"], exit: CommandExit = .exited(0)) -> TraceReport {
        TraceReport(backend: "linux", command: command, exit: exit, trace: trace, bufferWords: 512)
    }

    /// What a tool reading the JSON gets: the typed trace file.
    func decoded(_ report: TraceReport) throws -> TraceFile {
        try TraceFile.decode(Data(try report.render(.json).utf8), source: "trace.json")
    }

    @Test func rawcoverIsFixedWidthHexInTraceOrder() throws {
        let text = try report(pcTrace).render(.rawcover)
        #expect(text == "0xffffffff81000000\n0x0000000000000001\n0xffffffffffffffff\n")
    }

    @Test func jsonParsesAndKeepsEveryPCExact() throws {
        let command = ["sh", "-c", "echo \"quoted\" \\ back\nslash\t\u{1}"]
        let text = try report(pcTrace, command: command, exit: .signaled(9)).render(.json)
        #expect(text.hasPrefix("{\"format\":\"kcovctl-trace\",\"version\":1,") || text.hasPrefix("{\n  \"format\": \"kcovctl-trace\",\n  \"version\": 1,"), "\(text.prefix(80))")
        #expect(text.contains("\"0xffffffff81000000\""), "PCs are hex strings")
        let file = try decoded(report(pcTrace, command: command, exit: .signaled(9)))
        #expect(file.backend == "linux")
        #expect(file.mode == .pc && file.unit == .pc)
        #expect(file.isTruncated)
        #expect(file.entryCount == 3)
        #expect(file.pcs == [0xffff_ffff_8100_0000, 0x1, 0xffff_ffff_ffff_ffff])
        #expect(file.command == command)
        #expect(file.exit == .signal(9))
        #expect(file.comparisons.isEmpty)
        #expect(file.bufferWords == 512)
    }

    @Test func jsonOfAnEmptyTraceIsValid() throws {
        let file = try decoded(report(Trace(unit: .pc, mode: .pc)))
        #expect(file.pcs == [])
        #expect(file.exit == .status(0))
    }

    @Test func comparisonsInJSONAndRawcover() throws {
        let trace = Trace(unit: .pc, mode: .comparisons, comparisons: [
            ComparisonRecord(type: 0b111, first: 0x10, second: 0xffff_ffff_ffff_fff0, pc: 0xffff_ffff_8100_0040),
            ComparisonRecord(type: 0b010, first: 1, second: 2, pc: 0xffff_ffff_8100_0080),
        ])
        let file = try decoded(report(trace))
        #expect(file.mode == .comparisons)
        #expect(file.entryCount == 2)
        #expect(file.comparisons == trace.comparisons, "type, both operands and the PC survive exactly")
        #expect(file.comparisons[0].operandSize == 8 && file.comparisons[0].isConstant)
        #expect(file.comparisons[1].operandSize == 2 && !file.comparisons[1].isConstant)
        #expect(file.pcs == [0xffff_ffff_8100_0040, 0xffff_ffff_8100_0080])
        #expect(try report(trace).render(.rawcover) == "0xffffffff81000040\n0xffffffff81000080\n")
    }

    @Test func syntheticTracesNameTheirFormat() throws {
        let current = Trace(unit: .syntheticBlock, mode: .pc, pcs: [SyntheticPC.current(package: 3, function: 7, block: 1).pc])
        #expect(try decoded(report(current)).pcFormat == .current)
        #expect(try decoded(report(current)).unit == .syntheticBlock)
        #expect(try report(current).render(.summary).contains("(synthetic, current format)"))
        let legacy = Trace(unit: .syntheticBlock, mode: .pc, pcs: [SyntheticPC.legacy(file: 2, block: 9).pc])
        #expect(try report(legacy).render(.summary).contains("(synthetic, legacy format)"))
        #expect(try decoded(report(pcTrace)).pcFormat == nil, "kernel addresses have no synthetic format")
    }

    @Test func summaryCountsUniquePCsAndSaysWhatTruncationMeans() throws {
        let text = try report(pcTrace).render(.summary)
        #expect(text.contains("entries: 3\n"))
        #expect(text.contains("unique PCs: 3\n"))
        #expect(text.contains("truncated: yes"))
        #expect(text.contains("--buffer-words"))
        let clean = try report(Trace(unit: .pc, mode: .pc, pcs: [5, 5, 6])).render(.summary)
        #expect(clean.contains("entries: 3\n") && clean.contains("unique PCs: 2\n") && clean.contains("truncated: no"))
    }
}
