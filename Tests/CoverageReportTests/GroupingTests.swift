import CoverageAPI
@testable import CoverageReport
import Foundation
import TestKernel
import TestSupport
import Testing

/// MAINTAINERS sections for the rules of its header (Docs/reports.md, "Subsystems").
let sampleMaintainers = """
    List of maintainers
    ===================

    Descriptions of section entries and preferred order
    \tF: *Files* and directories wildcard patterns.

    NETWORKING DRIVERS
    M:\tSomeone <someone@example.org>
    F:\tdrivers/net/
    X:\tdrivers/net/wireless/

    NET TOP LEVEL ONLY
    F:\tdrivers/net/*

    ANY NET
    S:\tMaintained
    F:\t*/net/*

    DIALOG CODECS
    F:\tsound/soc/codecs/da[79]*.[ch]
    F:\tdrivers/input/misc/da72??.[ch]

    MM
    F:\tmm

    PREFIX QUIRK
    F:\tinclude/linux/fs

    THE REST
    F:\t*
    F:\t*/

    """

func sampleSubsystems(_ path: String) throws -> [String] {
    try Maintainers(text: sampleMaintainers, source: "MAINTAINERS") { $0 == "mm" }.subsystems(of: path)
}

@Suite("Subsystems from MAINTAINERS, and groups by directory")
struct GroupingTests {
    @Test("F: and X: as the MAINTAINERS header and get_maintainer.pl say: trailing /, *, ?, [..], depth, exclusion, directories")
    func patternRules() throws {
        #expect(try sampleSubsystems("drivers/net/loopback.c") == ["NETWORKING DRIVERS", "NET TOP LEVEL ONLY", "ANY NET", "THE REST"])
        #expect(try sampleSubsystems("drivers/net/ethernet/intel/e1000.c") == ["NETWORKING DRIVERS", "THE REST"], "* stays at its depth")
        #expect(try sampleSubsystems("drivers/net/wireless/ath.c") == ["THE REST"], "X: excludes before F: matches")
        #expect(try sampleSubsystems("a/b/net/x.c") == ["THE REST"], "*/net/* only at its own depth")
        #expect(try sampleSubsystems("fs/net/x.c") == ["ANY NET", "THE REST"])
        #expect(try sampleSubsystems("sound/soc/codecs/da7219.c") == ["DIALOG CODECS", "THE REST"])
        #expect(try sampleSubsystems("sound/soc/codecs/da8219.c") == ["THE REST"], "[79] is a set")
        #expect(try sampleSubsystems("sound/soc/codecs/da7219.o") == ["THE REST"])
        #expect(try sampleSubsystems("drivers/input/misc/da7280.c") == ["DIALOG CODECS", "THE REST"])
        #expect(try sampleSubsystems("drivers/input/misc/da728.c") == ["THE REST"], "? is exactly one character")
        #expect(try sampleSubsystems("mm/slub.c") == ["MM", "THE REST"], "a directory of the tree named without /")
        #expect(try sampleSubsystems("mmap.c") == ["THE REST"])
        // get_maintainer.pl matches the pattern against the path's start at the pattern's depth.
        #expect(try sampleSubsystems("include/linux/fs.h") == ["PREFIX QUIRK", "THE REST"])
        #expect(try sampleSubsystems("include/linux/fsnotify.h") == ["PREFIX QUIRK", "THE REST"])
        #expect(try sampleSubsystems("include/linux/fs/x.h") == ["THE REST"])
        #expect(try sampleSubsystems("Makefile") == ["THE REST"])
    }

    @Test("Malformed MAINTAINERS input: each error names the line and what is wrong")
    func badInput() {
        func message(_ text: String) -> String {
            do {
                _ = try Maintainers(text: text, source: "M") { _ in false }
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(message("\nF:\tfs/\n") == "M: line 2: a F: entry outside a section (no section name above it): is this the kernel's MAINTAINERS?")
        #expect(message("FS\nF:\tfs/[ch\n") == "M: line 2: F: fs/[ch: a [ without its ]")
        #expect(message("FS\nF:\t\n") == "M: line 2: F: : an empty pattern")
        #expect(message("FS\nX:\t/fs/\nF:\tfs/\n").contains("line 2: X: /fs/: patterns are relative to the top of the source tree"))
        #expect(message("FS\nF:\tfs/[z-a]\n").contains("runs backwards"))
        #expect(message("just some text\nwith lines\n").contains("holds no section with an F: (files) entry"))
        #expect(message("FS\nM:\tme\n") .contains("holds no section with an F:"))
        #expect(message("FS\r\nF:\tfs/\r\n") == "accepted", "CRLF lines")
    }

    @Test("Groups roll files up: by directory depth, and by subsystem with files in several")
    func groups() throws {
        let symbolizer = TableSymbolizer([
            (0x100, "drivers/net/loopback.c", "loopback_xmit", 2), (0x105, "drivers/net/loopback.c", "loopback_xmit", 3),
            (0x200, "drivers/net/wireless/ath.c", "ath_rx", 10), (0x300, "mm/slub.c", "kmalloc", 5), (0x400, "init.c", "start", 1),
        ])
        let report = try CoverageReport(inputs: [input([0x100, 0x300])], symbolizer: symbolizer, imageName: "vmlinux")
        let byDepth = report.groups(.directory(depth: 1))
        #expect(byDepth.map(\.name) == [".", "drivers", "mm"])
        #expect(byDepth[1].coverage.pcs == CoverageReport.Counts(covered: 1, coverable: 3, hits: 1))
        #expect(byDepth[1].coverage.functions == CoverageReport.Fraction(covered: 1, coverable: 2))
        #expect(report.groups(.directory(depth: 2)).map(\.name) == [".", "drivers/net", "mm"])
        #expect(report.groups(.directory(depth: 3)).map(\.name) == [".", "drivers/net", "drivers/net/wireless", "mm"])

        let maintainers = try Maintainers(text: sampleMaintainers, source: "MAINTAINERS") { $0 == "mm" }
        let bySubsystem = report.groups(.maintainers(maintainers))
        #expect(bySubsystem.map(\.name) == ["ANY NET", "MM", "NET TOP LEVEL ONLY", "NETWORKING DRIVERS", "THE REST"])
        #expect(bySubsystem.last?.paths.count == 4 && bySubsystem.last?.coverage.pcs.coverable == 5)
        let noRest = try Maintainers(text: "MM\nF:\tmm/\n", source: "M") { _ in false }
        #expect(report.groups(.maintainers(noRest)).map(\.name) == ["(no subsystem)", "MM"])

        let text = report.groupSummary(imageName: "vmlinux", .directory(depth: 1))
        #expect(text.contains("by directory (depth 1): 3 groups, 2 with coverage"))
        #expect(text.contains("    33.3%      1/     3 PCs  1/3 lines  1/2 functions  2 files  drivers\n"), "\(text)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json(imageName: "vmlinux", grouping: .maintainers(maintainers)).utf8)) as? [String: Any])
        #expect(json["groupBy"] as? String == "subsystem")
        let groups = try #require(json["groups"] as? [[String: Any]])
        let mm = try #require(groups.first { $0["name"] as? String == "MM" })
        #expect(mm["paths"] as? [String] == ["mm/slub.c"])
        let coverage = try #require(mm["coverage"] as? [String: [String: Any]])
        #expect(coverage["pcs"]?["covered"] as? Int == 1 && coverage["lines"]?["percent"] as? Double == 100)
    }

    @Test("On the test kernel's tree: the same subsystems as scripts/get_maintainer.pl for a sample of the report's files")
    func againstGetMaintainer() throws {
        guard let kernel = try TestKernelBuilder().cached() else {
            Issue.record("the test kernel is not built: run `kcovctl vm build`")
            return
        }
        let tree = (kernel.vmlinux as NSString).deletingLastPathComponent + "/src"
        let text = try String(contentsOfFile: tree + "/MAINTAINERS", encoding: .utf8)
        let maintainers = try Maintainers(text: text, source: "MAINTAINERS") { pattern in
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: tree + "/" + pattern, isDirectory: &directory) && directory.boolValue
        }
        #expect(maintainers.sections.count > 2_500)
        let sample = [
            "fs/read_write.c", "include/linux/fs.h", "mm/slub.c", "kernel/sched/core.c", "arch/x86/kernel/cpu/common.c", "lib/maple_tree.c",
            "fs/9p/vfs_file.c", "net/9p/client.c", "drivers/virtio/virtio_ring.c", "include/linux/list.h", "security/commoncap.c",
            "arch/x86/include/asm/msr.h", "drivers/tty/serial/8250/8250_core.c", "include/linux/xarray.h", "kernel/kcov.c", "fs/netfs/buffered_read.c",
        ]
        for path in sample {
            let run = try runProgram(["/bin/sh", "-c", "cd \"$0\" && perl scripts/get_maintainer.pl --nogit --nogit-fallback --sections --no-tree -f \"$1\"", tree, path])
            try #require(run.status == 0, "get_maintainer.pl: \(run.errors)")
            // Sections are separated by blank lines; each begins with its title.
            var titles: [String] = []
            var atStart = true
            for line in run.output.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.isEmpty { atStart = true } else if atStart {
                    titles.append(String(line))
                    atStart = false
                }
            }
            #expect(Set(maintainers.subsystems(of: path)) == Set(titles), "\(path)")
        }
    }
}
