import CoverageAPI
import Foundation
import GVisorBackend
import Testing
@testable import kcovctl

@Suite struct TraceReportTests {
    let pcTrace = Trace(unit: .pc, mode: .pc, pcs: [0xffff_ffff_8100_0000, 0x1, 0xffff_ffff_ffff_ffff], truncated: true)

    func report(_ trace: Trace, command: [String] = ["/bin/true"], exit: CommandExit = .exited(0)) -> TraceReport {
        TraceReport(backend: "linux", command: command, exit: exit, trace: trace, bufferWords: 512)
    }

    @Test func rawcoverIsFixedWidthHexInTraceOrder() {
        let text = report(pcTrace).render(.rawcover)
        #expect(text == "0xffffffff81000000\n0x0000000000000001\n0xffffffffffffffff\n")
    }

    @Test func jsonParsesAndKeepsEveryPCExact() throws {
        let text = report(pcTrace, command: ["sh", "-c", "echo \"quoted\" \\ back\nslash\t\u{1}"], exit: .signaled(9)).render(.json)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(json["backend"] as? String == "linux")
        #expect(json["mode"] as? String == "pc")
        #expect(json["truncated"] as? Bool == true)
        #expect(json["count"] as? Int == 3)
        #expect(json["pcs"] as? [String] == ["0xffffffff81000000", "0x0000000000000001", "0xffffffffffffffff"])
        #expect(json["command"] as? [String] == ["sh", "-c", "echo \"quoted\" \\ back\nslash\t\u{1}"])
        #expect(json["signal"] as? Int == 9)
        #expect(json["exitStatus"] == nil)
        #expect(json["comparisons"] == nil)
    }

    @Test func jsonOfAnEmptyTraceIsValid() throws {
        let text = report(Trace(unit: .pc, mode: .pc)).render(.json)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(json["pcs"] as? [String] == [])
        #expect(json["exitStatus"] as? Int == 0)
    }

    @Test func comparisonsInJSONAndRawcover() throws {
        let trace = Trace(unit: .pc, mode: .comparisons, comparisons: [
            ComparisonRecord(type: 0b111, first: 0x10, second: 0xffff_ffff_ffff_fff0, pc: 0xffff_ffff_8100_0040),
            ComparisonRecord(type: 0b010, first: 1, second: 2, pc: 0xffff_ffff_8100_0080),
        ])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report(trace).render(.json).utf8)) as? [String: Any])
        #expect(json["mode"] as? String == "cmp")
        #expect(json["count"] as? Int == 2)
        let records = try #require(json["comparisons"] as? [[String: Any]])
        #expect(records.count == 2)
        #expect(records[0]["pc"] as? String == "0xffffffff81000040")
        #expect(records[0]["size"] as? Int == 8)
        #expect(records[0]["const"] as? Bool == true)
        #expect(records[0]["arg2"] as? String == "0xfffffffffffffff0")
        #expect(records[1]["size"] as? Int == 2)
        #expect(records[1]["const"] as? Bool == false)
        #expect(json["pcs"] as? [String] == ["0xffffffff81000040", "0xffffffff81000080"])
        #expect(report(trace).render(.rawcover) == "0xffffffff81000040\n0xffffffff81000080\n")
    }

    @Test func syntheticTracesNameTheirFormat() throws {
        let current = Trace(unit: .syntheticBlock, mode: .pc, pcs: [SyntheticPC.current(package: 3, function: 7, block: 1).pc])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report(current).render(.json).utf8)) as? [String: Any])
        #expect(json["pcFormat"] as? String == "current")
        #expect(report(current).render(.summary).contains("(synthetic, current format)"))
        let legacy = Trace(unit: .syntheticBlock, mode: .pc, pcs: [SyntheticPC.legacy(file: 2, block: 9).pc])
        #expect(report(legacy).render(.summary).contains("(synthetic, legacy format)"))
        let kernel = try #require(try JSONSerialization.jsonObject(with: Data(report(pcTrace).render(.json).utf8)) as? [String: Any])
        #expect(kernel["pcFormat"] == nil, "kernel addresses have no synthetic format")
    }

    @Test func summaryCountsUniquePCsAndSaysWhatTruncationMeans() {
        let text = report(pcTrace).render(.summary)
        #expect(text.contains("entries: 3\n"))
        #expect(text.contains("unique PCs: 3\n"))
        #expect(text.contains("truncated: yes"))
        #expect(text.contains("--buffer-words"))
        let clean = report(Trace(unit: .pc, mode: .pc, pcs: [5, 5, 6])).render(.summary)
        #expect(clean.contains("entries: 3\n") && clean.contains("unique PCs: 2\n") && clean.contains("truncated: no"))
    }
}
