import Foundation
import KernelImage
import TestSupport
import Testing

/// `report --format lcov` over the whole test kernel (every coverable PC is a record): the
/// tracefile lcov 2.x would read, checked rule by rule, with functions where DWARF defines them.
@Suite("LCOV of the test kernel", .serialized)
final class KernelLCOVTests {
    let directory = temporaryDirectory("kernel-lcov")
    let vmlinux: String
    let source: String
    /// Every 7th coverable PC, recorded: some functions hit, most not.
    let cover: String
    let callSites: [UInt64]

    init() throws {
        vmlinux = try testKernelImage()
        source = (vmlinux as NSString).deletingLastPathComponent + "/src/"
        callSites = try KernelImage(path: vmlinux).coverablePCs().pc.callSites
        cover = directory + "/sample.cover"
        try stride(from: 0, to: callSites.count, by: 7).map { "0x" + String(callSites[$0], radix: 16) }.joined(separator: "\n")
            .write(toFile: cover, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// FN records as (SF path, start, end, name).
    func functionRecords(_ text: String) -> [(file: String, start: Int, end: Int, name: String)] {
        var file = ""
        var records: [(file: String, start: Int, end: Int, name: String)] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("SF:") { file = String(line.dropFirst(3)) }
            guard line.hasPrefix("FN:") else { continue }
            let fields = line.dropFirst(3).split(separator: ",", maxSplits: 2)
            records.append((file, Int(fields[0]) ?? 0, Int(fields[1]) ?? 0, String(fields[2])))
        }
        return records
    }

    @Test("Every rule of an lcov 2.x tracefile holds over the whole kernel; functions sit at their DWARF definition")
    func wholeKernelTracefile() throws {
        let result = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--test-name", "sample", cover])
        try #require(result.status == 0, "\(result.errors)")
        let text = result.output
        let violations = LCOVTracefileChecker.check(text)
        #expect(violations.isEmpty, "\(violations.count) violations: \(violations.prefix(10).map(\.description))")

        let paths = text.split(separator: "\n").filter { $0.hasPrefix("SF:") }.map { String($0.dropFirst(3)) }
        #expect(paths.count > 1000 && Set(paths).count == paths.count, "one record per source file")
        #expect(!paths.contains { $0.contains("//") || $0.contains("/./") || $0.contains("/../") }, "normalized paths")
        #expect(paths.contains(source + "arch/x86/include/asm/msr-trace.h"), "asm//msr-trace.h is normalized, not dropped")

        let functions = functionRecords(text)
        // The functions issue 15 found in the wrong file: once each, where they are defined.
        for (name, file, definition) in [
            ("__do_sys_setns", "kernel/nsproxy.c", "SYSCALL_DEFINE2(setns"), ("filemap_get_read_batch", "mm/filemap.c", "filemap_get_read_batch("),
            ("do_open_execat", "fs/exec.c", "do_open_execat("),
        ] {
            let placed = functions.filter { $0.name == name }
            #expect(placed.map(\.file) == [source + file], "\(name): \(placed.map { "\($0.file):\($0.start)" })")
            guard let record = placed.first else { continue }
            let lines = try String(contentsOfFile: record.file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines[record.start - 1].contains(definition), "\(name) at line \(record.start): \(lines[record.start - 1])")
            #expect(record.end > record.start, "\(name) spans its body")
        }
        // The whole kind: the line each function starts on is its definition, which names it, or
        // the use at file scope of a macro that makes it (SYSCALL_DEFINE2(…), define_id_show_func(…);).
        var texts: [String: [Substring]] = [:]
        var misplaced: [String] = []
        for record in functions {
            if texts[record.file] == nil {
                texts[record.file] = (try? String(contentsOfFile: record.file, encoding: .utf8))?.split(separator: "\n", omittingEmptySubsequences: false) ?? []
            }
            let lines = texts[record.file]!
            guard record.start <= lines.count else {
                misplaced.append("\(record.name) at \(record.file):\(record.start) past the end")
                continue
            }
            let line = lines[record.start - 1]
            let bare = record.name.split(separator: ".").first.map(String.init) ?? record.name
            // Assembly has no DWARF function: it starts at its first line with a coverable PC.
            let head = line.prefix { $0 != "(" }
            let callee = head.split(separator: " ").last ?? ""
            let macro = head.count < line.count && !line.hasPrefix("\t") && !line.hasPrefix(" ") && !callee.isEmpty
                && callee.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
            if !line.contains(bare) && !macro && !record.file.hasSuffix(".S") {
                misplaced.append("\(record.name) at \(record.file.dropFirst(source.count)):\(record.start): \(line)")
            }
        }
        #expect(misplaced.isEmpty, "\(misplaced.count) of \(functions.count) function records start on a line that is not their definition: \(misplaced.prefix(10))")
        // A name is defined once per file; one defined in several files is a static function of each.
        let byName = Dictionary(grouping: functions, by: \.name)
        #expect(!byName.values.contains { Set($0.map(\.file)).count != $0.count })
    }

    @Test("genhtml 1.16 takes --lcov-version 1 without a warning, with the same functions")
    func genhtmlOne() throws {
        let info = directory + "/v1.info"
        let result = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", "--lcov-version", "1", "--output", info, cover])
        try #require(result.status == 0, "\(result.errors)")
        let genhtml = try runProgram(["/usr/bin/genhtml", "--output-directory", directory + "/html", "--quiet", info])
        #expect(genhtml.status == 0, "\(genhtml.errors)")
        #expect(!(genhtml.output + genhtml.errors).localizedCaseInsensitiveContains("warning"), "\(genhtml.errors)")
        let v1 = try String(contentsOfFile: info, encoding: .utf8)
        let v2 = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "lcov", cover]).output
        let names = { (text: String) in text.split(separator: "\n").filter { $0.hasPrefix("FNDA:") } }
        #expect(names(v1) == names(v2), "the same functions and counts, only FN differs")
        #expect(v1.split(separator: "\n").filter { $0.hasPrefix("FN:") }.allSatisfy { $0.split(separator: ",").count == 2 })
    }

    @Test("32-bit PCs (old syzkaller coverfiles) get the text's upper half back, with a warning; the report is the full PCs'")
    func truncatedRawcover() throws {
        let sample = Array(callSites.prefix(400))
        let full = directory + "/full.cover"
        let truncated = directory + "/truncated.cover"
        try sample.map { "0x" + String($0, radix: 16) }.joined(separator: "\n").write(toFile: full, atomically: true, encoding: .utf8)
        try sample.map { "0x" + String($0 & 0xffff_ffff, radix: 16) }.joined(separator: "\n").write(toFile: truncated, atomically: true, encoding: .utf8)
        let expected = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", full])
        let restored = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", truncated])
        #expect(restored.status == 0, "\(restored.errors)")
        #expect(restored.errors.contains("32-bit") && restored.errors.contains("restored the upper half 0xffffffff"), "\(restored.errors)")
        let totals = { (json: String) -> [Int?] in
            let counts = (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["totals"] as? [String: Any]
            return ["covered", "coverable", "hits"].map { counts?[$0] as? Int }
        }
        #expect(totals(restored.output) == totals(expected.output) && totals(expected.output)[0] == 400)
    }
}
