import Foundation
import TestSupport
import Testing

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

    @Test func jsonInPCMode() throws {
        let result = try run(["trace", "--format", "json", "--", "/bin/true"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect(json["backend"] as? String == "linux")
        #expect(json["mode"] as? String == "pc")
        #expect(json["truncated"] as? Bool == false)
        let pcs = try #require(json["pcs"] as? [String])
        #expect(json["count"] as? Int == pcs.count)
        #expect(pcs.count > 1000)
        #expect(pcs.allSatisfy { $0.hasPrefix("0xffffffff") })
        #expect(json["exitStatus"] as? Int == 0)
    }

    @Test func jsonInComparisonMode() throws {
        // 64 Ki words hold 16383 records: enough to check their shape without parsing megabytes.
        let result = try run(["trace", "--mode", "cmp", "--buffer-words", "65536", "--format", "json", "--", "/bin/true"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect(json["mode"] as? String == "cmp")
        let comparisons = try #require(json["comparisons"] as? [[String: Any]])
        #expect(comparisons.count == 16383)
        #expect(json["count"] as? Int == comparisons.count)
        #expect(json["truncated"] as? Bool == true)
        #expect(comparisons.allSatisfy { [1, 2, 4, 8].contains($0["size"] as? Int ?? 0) })
        #expect(comparisons.contains { $0["const"] as? Bool == true })
    }

    @Test func smallBufferIsReportedTruncated() throws {
        let result = try run(["trace", "--format", "json", "--buffer-words", "512", "--", "/bin/true"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect(json["truncated"] as? Bool == true)
        #expect(json["count"] as? Int == 511)
    }

    @Test func commandExitStatusIsReported() throws {
        let result = try run(["trace", "--format", "json", "--", "/bin/sh", "-c", "exit 7"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect(json["exitStatus"] as? Int == 7)
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
