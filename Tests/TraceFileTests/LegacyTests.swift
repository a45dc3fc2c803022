import CoverageAPI
import Foundation
import Testing
@testable import TraceFile

/// The JSON of `kcovctl trace --format json` before version 1, copied by hand from each version
/// of Sources/kcovctl/TraceReport.swift's writer (the commit that introduced the shape in brackets).
@Suite("Older kcovctl trace JSON")
struct LegacyTests {
    let cat = ["/bin/cat", "/proc/version"]

    @Test("PC mode, JSONEncoder pretty-printed with sorted keys [522e5d5]")
    func firstPCShape() throws {
        let file = try decode("""
            {
              "backend" : "linux",
              "command" : [
                "/bin/cat",
                "/proc/version"
              ],
              "count" : 3,
              "exitStatus" : 0,
              "mode" : "pc",
              "pcs" : [
                "0xffffffff81000010",
                "0xffffffff81000020",
                "0xffffffff81000010"
              ],
              "truncated" : false
            }

            """)
        #expect(
            file
                == TraceFile(
                    backend: "linux", unit: .pc, mode: .pc, command: cat, exit: .status(0),
                    tasks: [.init(truncated: false, pcs: [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0020, 0xffff_ffff_8100_0010])]))
    }

    @Test("CMP mode with a signal, JSONEncoder pretty-printed with sorted keys [522e5d5]")
    func firstCmpShape() throws {
        let file = try decode("""
            {
              "backend" : "linux",
              "command" : [
                "/bin/true"
              ],
              "comparisons" : [
                {
                  "arg1" : "0x0000000000000010",
                  "arg2" : "0xfffffffffffffff0",
                  "const" : true,
                  "pc" : "0xffffffff81000040",
                  "size" : 8,
                  "type" : 7
                }
              ],
              "count" : 1,
              "mode" : "cmp",
              "pcs" : [
                "0xffffffff81000040"
              ],
              "signal" : 9,
              "truncated" : true
            }

            """)
        #expect(file.unit == .pc && file.mode == .comparisons && file.exit == .signal(9) && file.isTruncated)
        #expect(file.tasks == [.init(truncated: true, comparisons: [ComparisonRecord(type: 7, first: 0x10, second: 0xffff_ffff_ffff_fff0, pc: 0xffff_ffff_8100_0040)])])
        #expect(file.pcs == [0xffff_ffff_8100_0040], "the comparison sites, not the redundant \"pcs\"")
    }

    @Test("PC mode, the byte writer: escaped command, a signal, truncated [46f7fc5]")
    func handWrittenPCShape() throws {
        let file = try decode(#"""
            {
              "backend": "linux",
              "mode": "pc",
              "truncated": true,
              "count": 3,
              "command": ["sh", "-c", "echo \"quoted\" \\ back\nslash\t\u0001"],
              "signal": 9,
              "pcs": [
                "0xffffffff81000000",
                "0x0000000000000001",
                "0xffffffffffffffff"
              ]
            }

            """#)
        #expect(
            file
                == TraceFile(
                    backend: "linux", unit: .pc, mode: .pc, command: ["sh", "-c", "echo \"quoted\" \\ back\nslash\t\u{1}"], exit: .signal(9),
                    tasks: [.init(truncated: true, pcs: [0xffff_ffff_8100_0000, 1, .max])]))
    }

    @Test("An empty trace, the byte writer [46f7fc5]")
    func handWrittenEmpty() throws {
        let file = try decode("""
            {
              "backend": "linux",
              "mode": "pc",
              "truncated": false,
              "count": 0,
              "command": ["/bin/true"],
              "exitStatus": 0,
              "pcs": []
            }

            """)
        #expect(file == TraceFile(backend: "linux", unit: .pc, mode: .pc, command: ["/bin/true"], exit: .status(0), tasks: [.init(truncated: false)]))
    }

    @Test("CMP mode, the byte writer, empty and not [46f7fc5]")
    func handWrittenCmpShape() throws {
        let file = try decode("""
            {
              "backend": "netbsd",
              "mode": "cmp",
              "truncated": false,
              "count": 2,
              "command": ["/bin/true"],
              "exitStatus": 0,
              "comparisons": [
                {"pc": "0xffffffff81000040", "type": 7, "size": 8, "const": true, "arg1": "0x0000000000000010", "arg2": "0xfffffffffffffff0"},
                {"pc": "0xffffffff81000080", "type": 2, "size": 2, "const": false, "arg1": "0x0000000000000001", "arg2": "0x0000000000000002"}
              ],
              "pcs": [
                "0xffffffff81000040",
                "0xffffffff81000080"
              ]
            }

            """)
        #expect(
            file
                == TraceFile(
                    backend: "netbsd", unit: .pc, mode: .comparisons, command: ["/bin/true"], exit: .status(0),
                    tasks: [
                        .init(truncated: false, comparisons: [
                            ComparisonRecord(type: 7, first: 0x10, second: 0xffff_ffff_ffff_fff0, pc: 0xffff_ffff_8100_0040),
                            ComparisonRecord(type: 2, first: 1, second: 2, pc: 0xffff_ffff_8100_0080),
                        ])
                    ]))
        #expect(file.constantComparisonCount == 1)
        let empty = try decode("""
            {
              "backend": "linux",
              "mode": "cmp",
              "truncated": false,
              "count": 0,
              "command": ["/bin/true"],
              "exitStatus": 0,
              "comparisons": [],
              "pcs": []
            }

            """)
        #expect(empty.mode == .comparisons && empty.tasks == [.init(truncated: false)])
    }

    @Test("gVisor: pcFormat makes the unit synthetic-block [f42ba72]")
    func gVisorShape() throws {
        for format in TraceFile.PCFormat.allCases {
            let file = try decode("""
                {
                  "backend": "gvisor",
                  "mode": "pc",
                  "truncated": false,
                  "count": 2,
                  "command": ["/bin/true"],
                  "pcFormat": "\(format.rawValue)",
                  "exitStatus": 0,
                  "pcs": [
                    "0x0000000300070001",
                    "0x0000000300070002"
                  ]
                }

                """)
            #expect(
                file
                    == TraceFile(
                        backend: "gvisor", unit: .syntheticBlock, mode: .pc, pcFormat: format, command: ["/bin/true"], exit: .status(0),
                        tasks: [.init(truncated: false, pcs: [0x3_0007_0001, 0x3_0007_0002])]))
            #expect(file.mergedTrace.pcKind == .synthetic)
        }
    }

    @Test("kprobe before probedFunctions: functions and skipped, no denominator [acb5978]")
    func firstKprobeShape() throws {
        let file = try decode("""
            {
              "backend": "kprobe",
              "mode": "pc",
              "truncated": false,
              "count": 1,
              "command": ["/bin/cat", "/proc/version"],
              "exitStatus": 0,
              "granularity": "function",
              "probed": 2,
              "functions": [
                {"name": "ksys_read", "pc": "0xffffffff81300000", "hits": 3}
              ],
              "skipped": [
                {"name": "do_idle", "reason": "on the kprobe blacklist"}
              ],
              "pcs": [
                "0xffffffff81300000"
              ]
            }

            """)
        #expect(
            file
                == TraceFile(
                    backend: "kprobe", unit: .function, mode: .pc, command: cat, exit: .status(0), probedFunctions: nil,
                    skippedFunctions: [.init(name: "do_idle", reason: "on the kprobe blacklist")],
                    tasks: [.init(truncated: false, functions: [.init(name: "ksys_read", pc: 0xffff_ffff_8130_0000, hits: 3)])]))
    }

    @Test("kprobe with probedFunctions, the shape of today's writer [224aeaf, 5b6c2b3]")
    func kprobeShape() throws {
        let file = try decode("""
            {
              "backend": "kprobe",
              "mode": "pc",
              "truncated": false,
              "count": 1,
              "command": ["/bin/cat", "/proc/version"],
              "signal": 15,
              "granularity": "function",
              "probed": 2,
              "probedFunctions": [
                {"name": "ksys_read", "pc": "0xffffffff81300000"},
                {"name": "vfs_read", "pc": "0xffffffff81300100"}
              ],
              "functions": [
                {"name": "ksys_read", "pc": "0xffffffff81300000", "hits": 3}
              ],
              "skipped": [],
              "pcs": [
                "0xffffffff81300000"
              ]
            }

            """)
        let expected = TraceFile(
            backend: "kprobe", functions: [.init(name: "ksys_read", pc: 0xffff_ffff_8130_0000, hits: 3)],
            probedFunctions: [.init(name: "ksys_read", pc: 0xffff_ffff_8130_0000), .init(name: "vfs_read", pc: 0xffff_ffff_8130_0100)],
            command: cat, exit: .signaled(15))
        #expect(file == expected)
        #expect(file.hitsByPC == [0xffff_ffff_8130_0000: 3] && file.pcs == [0xffff_ffff_8130_0000])
        let empty = try decode("""
            {
              "backend": "kprobe",
              "mode": "pc",
              "truncated": false,
              "count": 0,
              "command": ["/bin/true"],
              "exitStatus": 0,
              "granularity": "function",
              "probed": 1,
              "probedFunctions": [
                {"name": "ksys_read", "pc": "0xffffffff81300000"}
              ],
              "functions": [],
              "skipped": [],
              "pcs": []
            }

            """)
        #expect(empty.unit == .function && empty.tasks == [.init(truncated: false)] && empty.probedFunctions?.count == 1)
    }

    @Test("A legacy file converts to version 1 and back without loss")
    func legacyUpgrades() throws {
        let legacy = try decode(#"{"backend": "kprobe", "mode": "pc", "granularity": "function", "probed": 0, "functions": [{"name": "f", "pc": "0x10", "hits": 1}], "skipped": [], "pcs": ["0x10"]}"#)
        #expect(try decode(String(decoding: try legacy.jsonData(), as: UTF8.self)) == legacy)
    }

    @Test("Malformed legacy files name the field")
    func legacyErrors() {
        let cases = [
            (#"{"mode": "pc", "pcs": [12]}"#, #"pcs[0]: expected a hex PC string such as "0xffffffff81000010", found 12 (a number, not a hex string)"#),
            (#"{"mode": "blocks", "pcs": []}"#, #"mode: expected one of pc, cmp, found "blocks""#),
            (#"{"mode": "cmp", "comparisons": [{"type": 1}]}"#, #"comparisons[0].pc: expected a hex PC string"#),
            (#"{"mode": "pc", "pcs": [], "exitStatus": 0, "signal": 9}"#, "signal: expected an exitStatus or a signal, found both"),
            (#"{"mode": "pc", "granularity": "block", "pcs": []}"#, #"granularity: expected "function", found "block""#),
            (#"{"mode": "pc", "granularity": "function", "probedFunctions": [{"name": "f"}], "functions": []}"#, "probedFunctions[0].pc: expected a hex PC string"),
            (#"{"mode": "pc"}"#, "pcs: expected a list of hex PC strings, found nothing"),
        ]
        for (text, expected) in cases {
            let message = failure(text)
            #expect(message?.hasPrefix(expected) == true, "\(text) → \(message ?? "no error")")
        }
    }
}
