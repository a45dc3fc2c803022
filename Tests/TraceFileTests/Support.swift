import CoverageAPI
import Foundation
@testable import TraceFile

/// SplitMix64: random values that repeat from run to run (the seed is in each test).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var value = state
        value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
        value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
        return value ^ (value >> 31)
    }
}

/// Every unit and mode a file can have (unit function is PC mode only).
let validKinds: [(TraceFile.Unit, CoverageMode)] = [(.pc, .pc), (.pc, .comparisons), (.syntheticBlock, .pc), (.syntheticBlock, .comparisons), (.function, .pc)]

/// Strings that exercise JSON escaping: quotes, backslashes, control characters, non-ASCII, slashes.
let awkwardStrings = ["", "/bin/cat", "sh -c \"echo 'hi'\"", "back\\slash", "new\nline\ttab\r", "\u{1}\u{1f}\u{7f}", "é 日本 🦀", "a/b\\/c"]

extension TraceFile {
    /// A random file of `unit` and `mode` with `taskCount` tasks of up to `entries` entries each,
    /// every optional field sometimes set.
    static func random(unit: Unit, mode: CoverageMode, taskCount: Int, entries: Int = 50, using rng: inout SeededGenerator) -> TraceFile {
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Bool.random(using: &rng) ? value() : nil }
        func word() -> UInt64 {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: 0
            case 1: .max
            case 2: UInt64.random(in: 0...0xffff, using: &rng)
            default: UInt64.random(in: 0...UInt64.max, using: &rng)
            }
        }
        func name() -> String { awkwardStrings.randomElement(using: &rng) ?? "" }
        func exit() -> Exit {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: .timedOut
            case 1, 2: .status(Int32.random(in: Int32.min...Int32.max, using: &rng))
            default: .signal(Int32.random(in: 1...64, using: &rng))
            }
        }
        var tasks: [Task] = []
        for _ in 0..<taskCount {
            var task = Task(
                pid: maybe(Int32.random(in: Int32.min...Int32.max, using: &rng)), tid: maybe(Int32.random(in: 1...4_000_000, using: &rng)),
                parentPid: maybe(Int32.random(in: 0...4_000_000, using: &rng)), executable: maybe(name()),
                order: maybe(Int.random(in: 0...Int.max, using: &rng)), exit: maybe(exit()), truncated: Bool.random(using: &rng),
                end: maybe(TaskEnd.allCases.randomElement(using: &rng) ?? .exit), endOrder: maybe(Int.random(in: 0...Int.max, using: &rng)),
                withoutAgent: maybe(name()), agentTail: maybe(Int.random(in: 0...Int.max, using: &rng)))
            let count = Int.random(in: 0...entries, using: &rng)
            switch TraceFile.listKey(unit: unit, mode: mode) {
            case .pcs: task.pcs = (0..<count).map { _ in word() }
            case .comparisons:
                task.comparisons = (0..<count).map { _ in
                    ComparisonRecord(type: Bool.random(using: &rng) ? UInt64.random(in: 0...7, using: &rng) : word(), first: word(), second: word(), pc: word())
                }
            default:
                task.functions = (0..<count).map { _ in FunctionEntry(name: name(), pc: word(), hits: word()) }
            }
            tasks.append(task)
        }
        let functionLevel = unit == .function
        return TraceFile(
            backend: ["linux", "netbsd", "gvisor", "kprobe", "unknown", "odd \"name\""].randomElement(using: &rng) ?? "linux", unit: unit, mode: mode,
            pcFormat: unit == .syntheticBlock ? PCFormat.allCases.randomElement(using: &rng) : nil, command: maybe((0..<Int.random(in: 0...4, using: &rng)).map { _ in name() }),
            exit: maybe(exit()), bufferWords: maybe(Int.random(in: 0...Int.max, using: &rng)),
            probedFunctions: functionLevel ? maybe((0..<Int.random(in: 0...5, using: &rng)).map { _ in ProbedFunction(name: name(), pc: word()) }) : nil,
            skippedFunctions: functionLevel ? (0..<Int.random(in: 0...3, using: &rng)).map { _ in SkippedFunction(name: name(), reason: name()) } : [],
            tasks: tasks,
            untraced: (0..<Int.random(in: 0...2, using: &rng)).map { _ in
                UntracedTask(pid: maybe(Int32.random(in: 1...4_000_000, using: &rng)), tid: maybe(Int32.random(in: 1...4_000_000, using: &rng)), executable: maybe(name()), reason: name())
            })
    }
}

/// `text` decoded as a file named `test`.
func decode(_ text: String) throws(TraceFileError) -> TraceFile { try TraceFile.decode(Data(text.utf8), source: "test") }

/// The message `text` fails with (`nil` when it decodes).
func failure(_ text: String) -> String? {
    do {
        _ = try decode(text)
        return nil
    } catch {
        return error.message
    }
}

/// The fast reader's answer for `data`: a value, or `nil` when it left the file to JSONDecoder.
func fast(_ data: Data) -> TraceFile? { data.withUnsafeBytes { fastDecode(TraceFile.self, from: $0) } }
