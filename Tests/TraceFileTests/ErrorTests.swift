import CoverageAPI
import Foundation
import Testing
@testable import TraceFile

@Suite("Trace file errors")
struct ErrorTests {
    /// A valid version-1 file of one PC-mode task, with `task` and `header` spliced in.
    func file(header: String = #""backend": "linux", "unit": "pc", "mode": "pc""#, task: String = #""truncated": false, "pcs": ["0x10"]"#) -> String {
        #"{"format": "kcovctl-trace", "version": 1, \#(header), "tasks": [{\#(task)}]}"#
    }

    @Test("The spliced template itself is valid")
    func templateIsValid() throws {
        #expect(try decode(file()) == TraceFile(backend: "linux", unit: .pc, mode: .pc, tasks: [.init(truncated: false, pcs: [0x10])]))
    }

    @Test("A later version names itself, the highest this reader knows, and says to upgrade")
    func futureVersion() {
        let message = failure(#"{"format": "kcovctl-trace", "version": 4, "backend": "linux", "samples": []}"#)
        #expect(message == "version: this file is version 4 of the kcovctl trace format, and this kcovctl reads versions up to 3: upgrade kcovctl")
        #expect(failure(#"{"format": "kcovctl-trace", "version": 0}"#) == "version: expected a format version from 1 to 3, found 0")
    }

    @Test("A malformed kernel layout names the field")
    func malformedKernelLayout() {
        let base = #"{"format": "kcovctl-trace", "version": 3, "backend": "linux", "unit": "pc", "mode": "pc", "tasks": [], "kernel": "#
        #expect(failure(base + #"{"modules": []}}"#)?.hasPrefix("kernel.release: expected the kernel release as a string") == true)
        #expect(failure(base + #"{"release": "6.12", "text": 12}}"#)?.hasPrefix("kernel.text: expected a hex PC string") == true)
        let module = #"{"release": "6.12", "modules": [{"name": "m", "base": "0xffffffffc0000000", "size": -1, "sections": {}}]}}"#
        #expect(failure(base + module)?.hasPrefix("kernel.modules[0].size: expected the module's size in bytes") == true)
    }

    @Test("A file that is no trace at all: one clear error")
    func neitherFormat() {
        let neither = [
            "hello world\n", "\u{0}\u{1}binary", #"{"pcs": []}"#, #"{"backend": "linux"}"#, "[1, 2]", #""text""#,
        ]
        for text in neither {
            let message = failure(text)
            #expect(message?.hasPrefix("not a kcovctl trace: ") == true, "\(text.debugDescription) → \(message ?? "no error")")
        }
        #expect(failure("[1, 2]") == "not a kcovctl trace: expected a JSON object, found a list")
        #expect(failure(#"{"pcs": []}"#)?.contains(#""mode""#) == true)
        #expect(failure(#"{"format": "perf-script", "version": 1}"#) == #"format: expected "kcovctl-trace", found "perf-script""#)
    }

    @Test("Malformed fields: the message starts with the field's path, then what was expected and found")
    func malformedFields() {
        let cases: [(String, String)] = [
            (file(task: #""truncated": false, "pcs": ["0x10", "0x20", "0x30", 12]"#),
             #"tasks[0].pcs[3]: expected a hex PC string such as "0xffffffff81000010", found 12 (a number, not a hex string)"#),
            (file(header: #""backend": "linux", "unit": "blocks", "mode": "pc""#), #"unit: expected one of pc, synthetic-block, function, found "blocks""#),
            (file(task: #""truncated": false, "pcs": ["0x1ffffffffffffffff"]"#),
             #"tasks[0].pcs[0]: expected a hex PC string such as "0xffffffff81000010", found "0x1ffffffffffffffff" (more than 16 hex digits)"#),
            (file(task: #""truncated": false, "pcs": ["ffffffff81000010"]"#), #"tasks[0].pcs[0]: expected a hex PC string such as "0xffffffff81000010", found "ffffffff81000010" (no 0x prefix)"#),
            (file(task: #""truncated": "no", "pcs": []"#), #"tasks[0].truncated: expected true or false, found "no""#),
            (file(task: #""pcs": []"#), "tasks[0].truncated: expected true or false, found nothing"),
            (file(task: #""truncated": false"#), "tasks[0].pcs: expected a list of hex PC strings, found nothing"),
            (file(task: #""truncated": false, "pcs": {}"#), "tasks[0].pcs: expected a list of hex PC strings, found an object"),
            (file(task: #""truncated": false, "pcs": [], "comparisons": []"#),
             #"tasks[0].comparisons: a unit pc trace in mode pc keeps its entries in "pcs", found "comparisons" too"#),
            (file(task: #""pid": 3000000000, "truncated": false, "pcs": []"#), "tasks[0].pid: expected a process id (a whole number), found 3000000000"),
            (file(task: #""exit": {"status": 0, "signal": 9}, "truncated": false, "pcs": []"#),
             #"tasks[0].exit: expected {"status": N}, {"signal": N} or {"timedOut": true}, found more than one of them"#),
            (file(task: #""exit": {"timedOut": false}, "truncated": false, "pcs": []"#),
             #"tasks[0].exit: expected {"status": N}, {"signal": N} or {"timedOut": true}, found "timedOut": false"#),
            (file(task: #""order": -2, "truncated": false, "pcs": []"#), "tasks[0].order: expected the task's order (a whole number from 0), found -2"),
            (file(header: #""backend": "linux", "unit": "pc", "mode": "cmp""#, task: #""truncated": false, "comparisons": [{"pc": "0x10", "type": 1, "arg1": "0x1"}]"#),
             #"tasks[0].comparisons[0].arg2: expected a hex operand string such as "0x000000000000002a", found nothing"#),
            (file(header: #""backend": "linux", "unit": "pc", "mode": "cmp""#, task: #""truncated": false, "comparisons": [{"pc": "0x10", "type": "1", "arg1": "0x1", "arg2": "0x2"}]"#),
             #"tasks[0].comparisons[0].type: expected the kcov type word (a whole number from 0), found "1""#),
            (file(header: #""backend": "linux", "unit": "pc", "mode": "cmp""#, task: #""truncated": false, "comparisons": [{"pc": "0x10", "type": 1, "arg1": true, "arg2": "0x2"}]"#),
             #"tasks[0].comparisons[0].arg1: expected a hex operand string such as "0x000000000000002a", found true (not a hex string)"#),
            (file(header: #""backend": "kprobe", "unit": "function", "mode": "pc", "probedFunctions": [{"name": "f", "pc": "0x10"}, {"pc": "0x20"}]"#, task: #""truncated": false, "functions": []"#),
             "probedFunctions[1].name: expected a function name, found nothing"),
            (file(header: #""backend": "kprobe", "unit": "function", "mode": "pc""#, task: #""truncated": false, "functions": [{"name": "f", "pc": "0x10", "hits": -1}]"#),
             "tasks[0].functions[0].hits: expected a hit count (a whole number from 0), found -1"),
            (file(header: #""backend": "kprobe", "unit": "function", "mode": "cmp""#, task: #""truncated": false, "functions": []"#),
             #"mode: expected pc for unit function (a probe counts entries, not comparisons), found "cmp""#),
            (file(header: #""backend": "gvisor", "unit": "synthetic-block", "mode": "pc""#), "pcFormat: expected one of current, legacy, unknown for unit synthetic-block, found nothing"),
            (file(header: #""backend": "gvisor", "unit": "synthetic-block", "mode": "pc", "pcFormat": "new""#), #"pcFormat: expected one of current, legacy, unknown, found "new""#),
            (file(header: #""backend": "linux", "unit": "pc", "mode": "pc", "pcFormat": "current""#), #"pcFormat: only unit synthetic-block has a pcFormat, found "current" with unit pc"#),
            (file(header: #""backend": "linux", "unit": "pc", "mode": "pc", "command": ["/bin/cat", 7]"#), "command[1]: expected a string, found 7"),
            (file(header: #""backend": "linux", "unit": "pc", "mode": "pc", "bufferWords": -1"#), "bufferWords: expected the buffer size in words (a whole number from 0), found -1"),
            (file(header: #""backend": 3, "unit": "pc", "mode": "pc""#), "backend: expected the backend's name as a string, found 3"),
            (#"{"format": "kcovctl-trace", "version": 1, "backend": "linux", "unit": "pc", "mode": "pc", "tasks": {}}"#, "tasks: expected a list of tasks, found an object"),
            (#"{"format": "kcovctl-trace", "version": 1, "backend": "linux", "unit": "pc", "mode": "pc", "tasks": [7]}"#, "tasks[0]: expected a task {"),
            (#"{"format": "kcovctl-trace", "version": "1"}"#, #"version: expected the format version (a whole number such as 1), found "1""#),
        ]
        for (text, expected) in cases {
            let message = failure(text)
            #expect(message?.hasPrefix(expected) == true, "\(text)\n→ \(message ?? "no error")\nexpected \(expected)")
        }
    }

    @Test("Invalid JSON says where it breaks")
    func invalidJSON() {
        #expect(failure(#"{"mode": "pc""#) == "not valid JSON: unexpected end of the file at line 1, column 14")
        #expect(failure("{\n  \"mode\": pc\n}") == "not valid JSON: expected a value, found 'p' at line 2, column 11")
        #expect(failure(#"{"format": "kcovctl-trace" "version": 1}"#) == "not valid JSON: expected , or }, found '\"' at line 1, column 28")
    }

    @Test("Deep nesting is an error, not a stack overflow")
    func deepNesting() {
        for text in [String(repeating: "[", count: 100_000), String(repeating: #"{"a": "#, count: 100_000), #"{"mode": "pc", "pcs": "# + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}"] {
            #expect(failure(text) != nil)
        }
    }

    @Test("Errors read `source: message`")
    func description() {
        #expect {
            try TraceFile.decode(Data("{}".utf8), source: "run.json")
        } throws: { error in
            (error as? TraceFileError)?.description.hasPrefix("run.json: not a kcovctl trace: ") == true
        }
    }

    @Test("No input traps: every prefix of a valid file, and random byte damage, decode or throw; the fast reader never disagrees")
    func damagedInputs() throws {
        var rng = SeededGenerator(seed: 0xda_a6ed)
        let files = validKinds.map { unit, mode in TraceFile.random(unit: unit, mode: mode, taskCount: 2, entries: 3, using: &rng) }
        for original in files {
            let bytes = [UInt8](try original.jsonData())
            var inputs: [[UInt8]] = (0...bytes.count).map { Array(bytes[..<$0]) }
            for _ in 0..<300 {
                var damaged = bytes
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let at = Int.random(in: 0..<damaged.count, using: &rng)
                    damaged[at] = [UInt8(ascii: "\""), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: "0"), 0xff, 0x00, UInt8(ascii: "\\")]
                        .randomElement(using: &rng) ?? 0
                }
                inputs.append(damaged)
            }
            for input in inputs {
                let data = Data(input)
                let reference = try? JSONDecoder().decode(TraceFile.self, from: data)
                if let quick = fast(data) {
                    #expect(quick == reference, "the fast reader accepted what JSONDecoder reads differently: \(String(decoding: input, as: UTF8.self))")
                }
                _ = try? TraceFile.decode(data, source: "damaged")
            }
        }
    }
}

@Suite("Rawcover")
struct RawcoverTests {
    @Test("One hex PC a line, 0x optional, either case, CRs and blank lines skipped, repeats kept")
    func rawcover() throws {
        let file = try decode("0xffffffff81000005\nffffffff8100000a\n\n  0xFFFFFFFF81000005\r\n")
        #expect(file == TraceFile(backend: "unknown", unit: .pc, mode: .pc, tasks: [.init(truncated: false, pcs: [0xffff_ffff_8100_0005, 0xffff_ffff_8100_000a, 0xffff_ffff_8100_0005])]))
        #expect(try decode("") == TraceFile(backend: "unknown", unit: .pc, mode: .pc, tasks: [.init(truncated: false)]), "an empty trace is an empty file")
    }

    @Test("A bad line is an error naming its number; more than 16 digits is a bad line")
    func badLines() {
        #expect(failure("0xffffffff81000005\nnot a pc\n") == #"line 2: "not a pc" is not a hex PC; expected rawcover (one 0x… PC a line) or the JSON of `kcovctl trace --format json`"#)
        #expect(failure("0x10\n0x1ffffffffffffffff\n")?.hasPrefix("line 2: ") == true)
        #expect(failure("0x10\n0x\n")?.hasPrefix("line 2: ") == true)
    }
}
