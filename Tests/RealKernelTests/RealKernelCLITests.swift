import Foundation
import TestSupport
import Testing
import TraceFile

/// kcovctl against the real device, inside the guest.
@Suite(.serialized)
struct RealKernelCLITests {
    func run(_ arguments: [String]) throws -> ProgramResult {
        try spawnProgram([try builtKcovctl()] + arguments, capturingErrors: false)
    }

    @Test func rawcoverIsOneKernelPCPerLine() throws {
        let result = try run(["trace", "--format", "rawcover", "--", "/bin/true"])
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count > 1000)
        for line in lines.prefix(5000) {
            let value = UInt64(line.dropFirst(2), radix: 16)
            #expect(line.count == 18 && line.hasPrefix("0x") && value.map { $0 >= kernelTextStart } == true, "\(line)")
        }
    }

    /// The JSON a run printed, through the typed reader.
    func traceFile(_ result: ProgramResult) throws -> TraceFile {
        try TraceFile.decode(result.standardOutput, source: "kcovctl trace --format json")
    }

    @Test func jsonInPCMode() throws {
        let result = try run(["trace", "--format", "json", "--", "/bin/true"])
        #expect(result.status == 0)
        let file = try traceFile(result)
        #expect(file.backend == "linux")
        #expect(file.mode == .pc && file.unit == .pc)
        #expect(!file.isTruncated)
        #expect(file.tasks.count == 1)
        #expect(file.pcs.count > 1000)
        #expect(file.pcs.allSatisfy { $0 >= 0xffff_ffff_0000_0000 })
        #expect(file.exit == .status(0))
    }

    @Test func jsonInComparisonMode() throws {
        // 64 Ki words hold 16383 records: enough to check their shape without parsing megabytes.
        let result = try run(["trace", "--mode", "cmp", "--buffer-words", "65536", "--format", "json", "--", "/bin/true"])
        #expect(result.status == 0)
        let file = try traceFile(result)
        #expect(file.mode == .comparisons)
        #expect(file.comparisons.count == 16383)
        #expect(file.entryCount == file.comparisons.count)
        #expect(file.isTruncated)
        #expect(file.comparisons.allSatisfy { [1, 2, 4, 8].contains($0.operandSize) && $0.isWellFormed })
        #expect(file.comparisons.contains { $0.isConstant })
    }

    @Test func smallBufferIsReportedTruncated() throws {
        let result = try run(["trace", "--format", "json", "--buffer-words", "512", "--", "/bin/true"])
        #expect(result.status == 0)
        let file = try traceFile(result)
        #expect(file.isTruncated)
        #expect(file.entryCount == 511)
    }

    @Test func commandExitStatusIsReported() throws {
        let result = try run(["trace", "--format", "json", "--", "/bin/sh", "-c", "exit 7"])
        #expect(result.status == 0)
        #expect(try traceFile(result).exit == .status(7))
    }

    @Test func backendsSeesTheDevice() throws {
        let result = try run(["backends", "--format", "json"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        let backends = try #require(json["backends"] as? [[String: Any]])
        #expect(backends.first { $0["name"] as? String == "linux" }?["available"] as? Bool == true)
        let environment = try #require(json["environment"] as? [String: Any])
        #expect(environment["debugfsMounted"] as? Bool == true)
    }
}
