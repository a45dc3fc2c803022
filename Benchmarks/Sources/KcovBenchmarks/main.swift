import CoverageAPI
import CoverageSignal
import Foundation
import Glibc
import KernelImage
import KernelSymbolizer
import Baselines
import LinuxBackend
import TraceFile

// Each benchmark times the project's path and the baseline tool on the same vmlinux in this run
// (best of 3 each, or of rounds that alternate the two), checks they found about the same thing,
// and prints the ratio (baseline / ours).

/// Wall-clock seconds of `body`, best of `repeats`.
func best<T>(of repeats: Int, _ body: () throws -> T) rethrows -> (seconds: Double, result: T) {
    var fastest = Double.infinity
    var last: T?
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        last = result
    }
    return (fastest, last!)
}

/// The fastest of `rounds` runs of each side, the two run in turn (ours, baseline, ours, …), so a
/// change in the machine's load falls on both sides alike.
func alternating<A, B>(rounds: Int, _ ours: () throws -> A, _ baseline: () throws -> B) rethrows -> (ours: (seconds: Double, result: A), baseline: (seconds: Double, result: B)) {
    var first = try best(of: 1, ours)
    var second = try best(of: 1, baseline)
    for _ in 1..<rounds {
        let a = try best(of: 1, ours)
        if a.seconds < first.seconds { first = a }
        let b = try best(of: 1, baseline)
        if b.seconds < second.seconds { second = b }
    }
    return (first, second)
}

/// Runs `/bin/sh -c script`, feeding `input` to it, and returns its standard output.
func shell(_ script: String, input: Data? = nil) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    let output = Pipe()
    process.standardOutput = output
    let feeder = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : feeder
    try process.run()
    if let input {
        let writer = Thread {
            feeder.fileHandleForWriting.write(input)
            try? feeder.fileHandleForWriting.close()
        }
        writer.start()
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchmarkError("`\(script)` exited with status \(process.terminationStatus)")
    }
    return data
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func report(_ name: String, ours: Double, baseline: Double, baselineName: String, detail: String) {
    print(String(format: "%@\n  kcov-benchmarks: %8.3f s\n  %@: %8.3f s\n  ratio (baseline / ours): %.1fx   %@",
                 name, ours, baselineName, baseline, baseline / ours, detail))
}

/// Edge signal plus the new-signal check over traces recorded from the test kernel
/// (`Benchmarks/Inputs`, `kcovctl trace --vm --format rawcover`, stored as xz'd little-endian
/// words), cut into calls of `callLength` PCs and run `passes` times, as a fuzzer revisits calls.
func signalBenchmarks() throws {
    let inputs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Inputs").standardized
    var pcs: [UInt64] = []
    var names: [String] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: inputs.path).sorted() where file.hasSuffix(".pcs.xz") {
        let data = try shell("xz -dc '\(inputs.path)/\(file)'")
        data.withUnsafeBytes { raw in
            for index in 0..<(raw.count / 8) { pcs.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))) }
        }
        names.append(file)
    }
    let callLength = 2000
    let passes = 10
    var starts = Array(stride(from: 0, to: pcs.count, by: callLength))
    starts.append(pcs.count)
    let calls = starts.count - 1
    print("signal: \(pcs.count) PCs recorded from the test kernel (\(names.joined(separator: ", "))), \(calls) calls of \(callLength) PCs, \(passes) passes")

    let (ours, unordered) = alternating(rounds: 15, { () -> Int in
        let shared = MaxSignal()
        var worker = MaxSignal.Worker(shared)
        var fresh = 0
        pcs.withUnsafeBufferPointer { all in
            for _ in 0..<passes {
                for call in 0..<calls {
                    fresh += worker.newSignals(EdgeSignal.lazy(all[starts[call]..<starts[call + 1]])).count
                }
            }
        }
        return fresh
    }, {
        pcs.withUnsafeBufferPointer { all in starts.withUnsafeBufferPointer { kcb_unordered_set_new_signals(all.baseAddress, $0.baseAddress, calls, Int32(passes)) } }
    })
    guard UInt64(ours.result) == unordered.result else {
        throw BenchmarkError("CoverageSignal found \(ours.result) new signals, the std::unordered_set version \(unordered.result)")
    }
    report(
        "edge signal + new-signal check (\(ours.result) new signals of \(pcs.count * passes))",
        ours: ours.seconds, baseline: unordered.seconds, baselineName: "C++ std::unordered_set<uint64_t>",
        detail: "both found \(ours.result)")
    // Merging 10,000 per-call sets (block PCs of 200-PC calls cut at 57-PC steps) into one: the
    // sparse set, the dense bitmap over the PCs' index, and std::unordered_set.
    let callSets = (0..<10_000).map { call -> [UInt64] in
        let start = (call * 57) % (pcs.count - 200)
        return Array(Set(pcs[start..<(start + 200)]))
    }
    let index = CoverableIndex(pcs)
    let sparseSets = callSets.map { PCSet($0) }
    let denseSets = callSets.map { set -> DensePCSet in
        var dense = DensePCSet(index: index)
        for pc in set { dense.insert(pc) }
        return dense
    }
    var flat: [UInt64] = []
    var flatStarts: [Int] = [0]
    for set in callSets {
        flat += set
        flatStarts.append(flat.count)
    }
    let sparseMerge = best(of: 5) { () -> Int in
        var merged = PCSet()
        for set in sparseSets { merged.formUnion(set) }
        return merged.count
    }
    let denseMerge = best(of: 5) { () -> Int in
        var merged = DensePCSet(index: index)
        for set in denseSets { merged.formUnion(set) }
        return merged.count
    }
    let unorderedMerge = best(of: 5) {
        flat.withUnsafeBufferPointer { all in flatStarts.withUnsafeBufferPointer { kcb_unordered_set_merge(all.baseAddress, $0.baseAddress, callSets.count) } }
    }
    guard sparseMerge.result == denseMerge.result, sparseMerge.result == unorderedMerge.result else {
        throw BenchmarkError("the merges disagree: sparse \(sparseMerge.result), dense \(denseMerge.result), unordered_set \(unorderedMerge.result)")
    }
    report(
        "merge 10,000 per-call sets (sparse PCSet)", ours: sparseMerge.seconds, baseline: unorderedMerge.seconds,
        baselineName: "C++ std::unordered_set<uint64_t>", detail: "\(sparseMerge.result) PCs in the union")
    report(
        "merge 10,000 per-call sets (dense bitmap over \(index.pcs.count) coverable PCs)", ours: denseMerge.seconds, baseline: sparseMerge.seconds,
        baselineName: "sparse PCSet", detail: "\(denseMerge.result) PCs in the union")

    let table = best(of: 5) {
        pcs.withUnsafeBufferPointer { all in starts.withUnsafeBufferPointer { kcb_dedup_table_signals(all.baseAddress, $0.baseAddress, calls, Int32(passes)) } }
    }
    report(
        "edge signal + dedup, against syzkaller's lossy table",
        ours: ours.seconds, baseline: table.seconds, baselineName: "C 8192-entry 4-probe dedup table",
        detail: "the table let \(table.result) signals through (it forgets; the set reports each once: \(ours.result))")
}

/// Trace files of a whole program's size (4 Mi PCs, and 1 Mi comparisons: a 4 Mi-word buffer
/// each): TraceFile's byte writer and reader against JSONEncoder and JSONDecoder, which read and
/// write the same format through TraceFile's Codable conformance.
func traceFileBenchmarks() throws {
    var generator = SystemRandomNumberGenerator()
    let pcs = (0..<(1 << 22)).map { _ in 0xffff_ffff_8100_0000 + UInt64.random(in: 0..<(1 << 24), using: &generator) }
    let files = [
        ("4 Mi PCs", TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .pc, pcs: pcs), command: ["/bin/cat", "/proc/version"])),
        ("1 Mi comparisons", TraceFile(
            backend: "linux",
            trace: Trace(unit: .pc, mode: .comparisons, comparisons: pcs.prefix(1 << 20).map {
                ComparisonRecord(type: $0 & 7, first: $0 >> 3, second: UInt64.random(in: 0...UInt64.max, using: &generator), pc: $0)
            }))),
    ]
    for (name, file) in files {
        let written = try best(of: 3) { try file.jsonData() }
        let encoded = try best(of: 3) { try JSONEncoder().encode(file) }
        report(
            "write a trace file of \(name)", ours: written.seconds, baseline: encoded.seconds, baselineName: "JSONEncoder",
            detail: "\(written.result.count >> 20) MiB; JSONEncoder's \(encoded.result.count >> 20) MiB (no line breaks)")
        let read = try best(of: 3) { try TraceFile.decode(written.result, source: name) }
        let decoded = try best(of: 3) { try JSONDecoder().decode(TraceFile.self, from: written.result) }
        guard read.result == file, decoded.result == file else { throw BenchmarkError("a trace file of \(name) did not read back equal") }
        report(
            "read a trace file of \(name)", ours: read.seconds, baseline: decoded.seconds, baselineName: "JSONDecoder",
            detail: "both read back the value written")
    }
}

/// The fuzzer's per-syscall loop, inside the test kernel: the kcov documentation's loop in C
/// (store 0 to the count, `read(-1, NULL, 0)`, load the count, copy the PCs out) against the same
/// loop through the public API (`reset()`, the syscall, `read(into:)` into a reused array), timed
/// per round with the time-stamp counter (no syscall), alternated 7 times, medians compared.
func loopBenchmark() throws {
    let rounds = 20000
    let words = 1 << 16
    func median(_ values: [UInt64]) -> UInt64 { values.sorted()[values.count / 2] }
    var cMedians: [UInt64] = []
    var swiftMedians: [UInt64] = []
    var inPlaceMedians: [UInt64] = []
    var signalView = MaxSignal.Worker(MaxSignal())
    var newSignals = 0
    var hotPathAllocations: UInt64 = 0
    var cPCs: UInt64 = 0
    var swiftPCs = 0
    let backend = LinuxKcovBackend()
    var collector = try CoverageCollector(backend: backend, mode: .pc, bufferWords: words)
    var pcs: [UInt64] = []
    pcs.reserveCapacity(words)
    var ticks = [UInt64](repeating: 0, count: rounds)
    for _ in 0..<7 {
        let error = ticks.withUnsafeMutableBufferPointer { kcb_kcov_loop(UInt(words), Int32(rounds), $0.baseAddress, &cPCs) }
        guard error == 0 else { throw BenchmarkError("the C loop's setup failed with errno \(error)") }
        cMedians.append(median(ticks))
        try collector.enable()
        swiftPCs = 0
        try ticks.withUnsafeMutableBufferPointer { ticks throws(CoverageError) in
            for round in 0..<rounds {
                let start = kcb_rdtsc()
                try collector.reset()
                _ = read(-1, nil, 0)
                try collector.read(into: &pcs)
                ticks[round] = kcb_rdtsc() - start
                swiftPCs += pcs.count
            }
        }
        try collector.disable()
        swiftMedians.append(median(ticks))
        // The fuzzer's whole hot path, allocations counted: reset, the syscall, edge signal read in
        // place and checked against the worker's seen set (after the first alternation has seen it).
        try collector.enable()
        let allocationsBefore = kcb_allocation_count()
        for _ in 0..<rounds {
            try collector.reset()
            _ = read(-1, nil, 0)
            newSignals += try collector.withPCs { signalView.newSignals(EdgeSignal.lazy($0)).count }
        }
        hotPathAllocations += kcb_allocation_count() - allocationsBefore
        try collector.disable()
        // The zero-copy path: the PCs read in place, copied into a preallocated buffer as C does.
        try collector.enable()
        let copy = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: words)
        defer { copy.deallocate() }
        try ticks.withUnsafeMutableBufferPointer { ticks throws(CoverageError) in
            for round in 0..<rounds {
                let start = kcb_rdtsc()
                try collector.reset()
                _ = read(-1, nil, 0)
                try collector.withPCs { view in
                    for index in 0..<view.count { copy[index] = view[index] }
                }
                ticks[round] = kcb_rdtsc() - start
            }
        }
        try collector.disable()
        inPlaceMedians.append(median(ticks))
    }
    let c = median(cMedians)
    let ours = median(swiftMedians)
    print("per-syscall loop, read(-1, NULL, 0), \(rounds) rounds x 7 alternations, median time-stamp-counter ticks per round")
    print("  C twin:                     \(c) ticks (\(cPCs / UInt64(rounds)) PCs a round)")
    let inPlace = median(inPlaceMedians)
    print("  read(into:) a reused array: \(ours) ticks (\(swiftPCs / rounds) PCs a round), ratio (ours / C) \(String(format: "%.2f", Double(ours) / Double(c)))")
    print("  withPCs, copied out:        \(inPlace) ticks, ratio (ours / C) \(String(format: "%.2f", Double(inPlace) / Double(c)))")
    print("  per alternation: C \(cMedians), read(into:) \(swiftMedians), withPCs \(inPlaceMedians)")
    print("  hot path with edge signal and new-signal checks: \(hotPathAllocations) heap allocations in \(7 * rounds) rounds (\(newSignals) new signals, all in the first rounds)")
}

/// `follow KCOVCTL [KSELFTEST-RUNNER]`, in the test kernel: each workload untraced, traced on its
/// main thread only (`trace`), and whole (`trace --follow`), one round each (TCG is slow): wall
/// time and ratios, tasks, per-task setup cost, and the unique PCs whole-run tracing adds.
func followBenchmark(kcovctl: String, runner: String?) throws {
    var workloads: [(String, [String])] = [
        ("stress-ng fork+pthread+dir+rename 3 s", ["/usr/bin/stress-ng", "--fork", "2", "--pthread", "2", "--dir", "1", "--rename", "1", "--temp-path", "/dev/shm", "--timeout", "3s", "-q"]),
        ("sh: 20 x fork+exec /bin/true", ["/bin/sh", "-c", "i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done"]),
    ]
    if let runner { workloads.append(("kselftests (futex, timers, size)", [runner])) }
    /// Wall time of `command`, and its standard output. posix_spawn, not Foundation's Process,
    /// which cannot make its run-loop socket pair in the test kernel.
    func timed(_ command: [String]) throws -> (seconds: Double, output: String) {
        var pipe: [Int32] = [-1, -1]
        guard Glibc.pipe(&pipe) == 0 else { throw BenchmarkError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, pipe[0])
        var argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let start = ContinuousClock.now
        var pid: pid_t = 0
        guard posix_spawn(&pid, command[0], &actions, nil, &argv, environ) == 0 else { throw BenchmarkError("cannot run \(command[0])") }
        close(pipe[1])
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = read(pipe[0], &chunk, chunk.count)
            if got <= 0 { break }
            output += chunk[0..<got]
        }
        close(pipe[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let elapsed = ContinuousClock.now - start
        return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, String(decoding: output, as: UTF8.self))
    }
    func number(after prefix: String, in text: String) -> Int {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count).prefix { $0.isNumber }) } ?? -1
    }
    func pcs(_ path: String) throws -> Set<UInt64> {
        Set(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { UInt64($0.dropFirst(2), radix: 16) })
    }
    print("whole-run tracing (kcovctl trace --follow) against the same run untraced and traced on its main thread only;")
    print("1 Mi-word buffers, summary output (timed), then rawcover of each (untimed) for the PC sets; one round each")
    for (name, command) in workloads {
        let untraced = try timed(command).seconds
        let main = try timed([kcovctl, "trace", "--buffer-words", "1048576", "--format", "summary", "--"] + command)
        let follow = try timed([kcovctl, "trace", "--follow", "--buffer-words", "1048576", "--format", "summary", "--"] + command)
        _ = try timed([kcovctl, "trace", "--buffer-words", "1048576", "--format", "rawcover", "--output", "/dev/shm/main.cover", "--"] + command)
        _ = try timed([kcovctl, "trace", "--follow", "--buffer-words", "1048576", "--format", "rawcover", "--output", "/dev/shm/follow.cover", "--"] + command)
        let mainPCs = try pcs("/dev/shm/main.cover")
        let followPCs = try pcs("/dev/shm/follow.cover")
        let tasks = number(after: "tasks: ", in: follow.output)
        print("  \(name):")
        print("    untraced \(String(format: "%.2f", untraced)) s; main thread \(String(format: "%.2f", main.seconds)) s (ratio \(String(format: "%.2f", main.seconds / untraced))); whole run \(String(format: "%.2f", follow.seconds)) s (ratio \(String(format: "%.2f", follow.seconds / untraced)) vs untraced, \(String(format: "%.2f", follow.seconds / main.seconds)) vs main thread)")
        print("    tasks traced \(tasks); whole-run cost per task ((whole run - main thread) / (tasks - 1)): \(String(format: "%.1f", (follow.seconds - main.seconds) / Double(max(tasks - 1, 1)) * 1000)) ms")
        print("    unique PCs (summary): main thread \(number(after: "unique PCs: ", in: main.output)), whole run \(number(after: "unique PCs: ", in: follow.output)); rawcover runs: main \(mainPCs.count), whole \(followPCs.count), whole run adds \(followPCs.subtracting(mainPCs).count), lacks \(mainPCs.subtracting(followPCs).count)")
        print("    \(follow.output.split(separator: "\n").first { $0.hasPrefix("tasks: ") } ?? "")")
    }
}

func main() throws {
    let arguments = CommandLine.arguments.dropFirst()
    if arguments.first == "follow", arguments.count >= 2 {
        return try followBenchmark(kcovctl: arguments[arguments.startIndex + 1], runner: arguments.count >= 3 ? arguments[arguments.startIndex + 2] : nil)
    }
    if arguments == ["loop"] { return try loopBenchmark() }
    if arguments == ["kprobe"] { return try kprobeBenchmark() }
    if arguments == ["signal"] { return try signalBenchmarks() }
    if arguments == ["--trace-file"] { return try traceFileBenchmarks() }
    if arguments.first == "symbolize-child", arguments.count == 2, let vmlinux = arguments.last { return try symbolizeChild(vmlinux: vmlinux) }
    let options = Array(arguments)
    guard options.count == 2 || (options.count == 4 && options[2] == "--debian-vmlinux"), options[0] == "--vmlinux" else {
        throw BenchmarkError(
            "usage: kcov-benchmarks --vmlinux PATH [--debian-vmlinux PATH]   (the test kernel's: `kcovctl vm build` prints it; "
                + "Debian's cloud kernel: Benchmarks/fetch-debian-vmlinux.sh prints it)\n       kcov-benchmarks --trace-file   (trace files only)")
    }
    let path = options[1]
    let large = options.count == 4 ? options[3] : nil
    print("vmlinux: \(path) (\(((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int ?? 0) >> 20) MiB)")

    // 1. Coverable PCs: our scan of the executable sections vs objdump's disassembly piped to grep.
    let scan = try best(of: 3) { try KernelImage(path: path).coverablePCs() }
    let objdump = try best(of: 3) {
        try shell("objdump -d --no-show-raw-insn '\(path)' | grep -c 'call.*<__sanitizer_cov_trace_pc>'")
    }
    let objdumpCount = Int(String(decoding: objdump.result, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    // objdump's sweep can lose its place after instructions it cannot decode and miss a few calls
    // (KernelImageTests confirms each one the scan alone finds); a large gap means a broken scan.
    guard abs(objdumpCount - scan.result.pc.callSites.count) < 20 else {
        throw BenchmarkError("the scan found \(scan.result.pc.callSites.count) trace_pc call sites, objdump | grep \(objdumpCount)")
    }
    report(
        "coverable-PC scan (\(scan.result.pc.callSites.count) trace_pc call sites, \(scan.result.pc.tailCallReturns.count) tail-call returns, \(scan.result.comparisons.callSites.count) comparison sites)",
        ours: scan.seconds, baseline: objdump.seconds, baselineName: "objdump -d | grep -c",
        detail: "objdump | grep counted \(objdumpCount)")

    // 2. Symbolizing every coverable PC's call site, inlined frames included: one batch each; then
    // every answer compared with addr2line's, each difference cross-checked with llvm-symbolizer.
    let sites = scan.result.pc.all.map { $0 - CoverablePCs.callLength }
    // The two in turn, five rounds, so that a change of the machine's load falls on both sides.
    let input = Data(sites.map { String($0, radix: 16) }.joined(separator: "\n").utf8 + [0x0a])
    let (ours, addr2line) = try alternating(
        rounds: 5, { try KernelSymbolizer(vmlinux: path).checkedFrames(for: sites) }, { try shell("addr2line -afi -e '\(path)'", input: input) })
    let differences = try compare(
        vmlinux: path, pcs: sites, ours: ours.result.map(printed), addr2line: try parseGNU(String(decoding: addr2line.result, as: UTF8.self)))
    report(
        "symbolize \(sites.count) call sites (\(ours.result.reduce(0) { $0 + $1.count }) frames)",
        ours: ours.seconds, baseline: addr2line.seconds, baselineName: "addr2line -afi (one batch)",
        detail: "\n  " + differences.summary)
    for line in differences.unexplained.prefix(10) { print("    " + line) }

    // 2b. A large vmlinux with full DWARF (Debian's cloud kernel, Benchmarks/fetch-debian-vmlinux.sh).
    if let large {
        try largeVMLinuxBenchmark(vmlinux: large, count: 20_000, executable: CommandLine.arguments[0])
    }

    // 3, 4. Writing and reading trace files.
    try traceFileBenchmarks()
}

do {
    try main()
} catch {
    FileHandle.standardError.write(Data("kcov-benchmarks: \(error)\n".utf8))
    exit(1)
}
