import Foundation
import Glibc
import KernelSymbolizer

// Symbolization against addr2line: answers compared PC by PC, each difference cross-checked with
// llvm-symbolizer, and (for the large vmlinux) peak memory of both sides from wait4's rusage.

/// One frame as addr2line prints it: function, file, line, and the innermost frame's discriminator.
struct PrintedFrame: Equatable {
    var function: String?
    var file: String
    var line: Int
    var discriminator: Int
}

/// Our frames as addr2line would print them.
func printed(_ frames: [SymbolFrame]) -> [PrintedFrame] {
    frames.enumerated().map { index, frame in
        PrintedFrame(function: frame.function, file: frame.file, line: frame.line, discriminator: index == 0 ? frame.discriminator : 0)
    }
}

/// Our frames in addr2line's `-afi` output format, as bytes (built without String concatenation,
/// so that printing costs the measured side little).
func gnuText(_ pcs: [UInt64], _ frames: [[SymbolFrame]]) -> [UInt8] {
    var text: [UInt8] = []
    text.reserveCapacity(pcs.count * 160)
    func append(_ string: String) { text.append(contentsOf: string.utf8) }
    let digits = Array("0123456789abcdef".utf8)
    for (pc, stack) in zip(pcs, frames) {
        text.append(contentsOf: "0x".utf8)
        for shift in stride(from: 60, through: 0, by: -4) { text.append(digits[Int(pc >> UInt64(shift) & 0xf)]) }
        text.append(0x0a)
        if stack.isEmpty { append("??\n??:0\n") }
        for (index, frame) in stack.enumerated() {
            append(frame.function ?? "??")
            text.append(0x0a)
            append(frame.file)
            text.append(UInt8(ascii: ":"))
            append(frame.line == 0 ? "?" : String(frame.line))
            if index == 0 && frame.discriminator != 0 { append(" (discriminator \(frame.discriminator))") }
            text.append(0x0a)
        }
    }
    return text
}

/// Parses GNU-style `-a -f -i` output (addr2line, or llvm-symbolizer `--output-style=GNU`): a PC
/// line, then a function line and a `file:line [(discriminator N)]` line per frame.
func parseGNU(_ text: String) throws -> [[PrintedFrame]] {
    var result: [[PrintedFrame]] = []
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var index = 0
    while index < lines.count {
        let line = lines[index]
        index += 1
        if line.isEmpty { continue }
        guard line.hasPrefix("0x") else { throw BenchmarkError("unexpected symbolizer output line: \(line)") }
        var frames: [PrintedFrame] = []
        while index + 1 < lines.count, !lines[index].hasPrefix("0x"), !lines[index].isEmpty {
            let function = lines[index] == "??" ? nil : String(lines[index])
            var location = lines[index + 1]
            index += 2
            var discriminator = 0
            if let open = location.range(of: " (discriminator ") {
                discriminator = Int(location[open.upperBound...].dropLast()) ?? -1
                location = location[..<open.lowerBound]
            }
            guard let colon = location.lastIndex(of: ":") else { throw BenchmarkError("no file:line in \(location)") }
            frames.append(PrintedFrame(
                function: function, file: String(location[..<colon]), line: Int(location[location.index(after: colon)...]) ?? 0,
                discriminator: frames.isEmpty ? discriminator : 0))
        }
        if frames == [PrintedFrame(function: nil, file: "??", line: 0, discriminator: 0)] { frames = [] }
        result.append(frames)
    }
    return result
}

/// How our answers compare with addr2line's.
struct Differences {
    var compared = 0
    var same = 0
    /// llvm-symbolizer gives our answer (function, file, line of every frame; or, where only the
    /// innermost file differs from addr2line's, that file and line): binutils misread.
    var binutilsMisreads = 0
    /// Of those, how many differ only in the innermost file (the DWARF 5 file-register-1 misread).
    var initialFileOnly = 0
    /// addr2line alone on the PC gives our answer: its batch answer depended on the PC before.
    var historyDependent = 0
    var unexplained: [String] = []

    var summary: String {
        "\(compared) PCs: \(same) same as addr2line; \(compared - same) differ: \(binutilsMisreads) where llvm-symbolizer agrees with us "
            + "(\(initialFileOnly) only the innermost file: binutils 2.40's DWARF 5 file-register misread), "
            + "\(historyDependent) where addr2line alone agrees with us (its batch answer depends on the PC before), \(unexplained.count) unexplained"
    }
}

/// Compares `ours` with addr2line's answers for the same PCs and explains each difference.
func compare(vmlinux: String, pcs: [UInt64], ours: [[PrintedFrame]], addr2line: [[PrintedFrame]]) throws -> Differences {
    guard ours.count == pcs.count, addr2line.count == pcs.count else {
        throw BenchmarkError("answers for \(ours.count) and \(addr2line.count) of \(pcs.count) PCs")
    }
    var result = Differences(compared: pcs.count)
    let differing = pcs.indices.filter { ours[$0] != addr2line[$0] }
    result.same = pcs.count - differing.count
    guard !differing.isEmpty else { return result }
    let input = Data(differing.map { "0x" + String(pcs[$0], radix: 16) }.joined(separator: "\n").utf8 + [0x0a])
    let llvm = try parseGNU(String(decoding: try shell("llvm-symbolizer --obj='\(vmlinux)' --output-style=GNU -a -f -i", input: input), as: UTF8.self))
    guard llvm.count == differing.count else { throw BenchmarkError("llvm-symbolizer answered \(llvm.count) of \(differing.count) PCs") }
    // llvm joins paths without repeated slashes; binutils and libdw keep a directory's trailing one.
    func normalized(_ frames: [PrintedFrame]) -> [PrintedFrame] {
        frames.map { PrintedFrame(function: $0.function, file: $0.file.replacingOccurrences(of: "//", with: "/"), line: $0.line, discriminator: 0) }
    }
    var unconfirmed: [Int] = []
    for (index, answer) in zip(differing, llvm) {
        let mine = ours[index]
        let theirs = addr2line[index]
        // Binutils 2.40's DWARF 5 misread: only the innermost file differs, and llvm-symbolizer
        // reads our file and line there (it may name the function by its symbol, `.constprop`
        // clones included, so the function is not compared).
        let onlyInnermostFile = mine.count == theirs.count && !mine.isEmpty && mine[0].file != theirs[0].file
            && mine[0].function == theirs[0].function && mine[0].line == theirs[0].line && mine.dropFirst() == theirs.dropFirst()
        if onlyInnermostFile, let llvmInnermost = normalized(answer).first, let ourInnermost = normalized(mine).first,
           llvmInnermost.file == ourInnermost.file, llvmInnermost.line == ourInnermost.line
        {
            result.binutilsMisreads += 1
            result.initialFileOnly += 1
        } else if normalized(answer) == normalized(mine) {
            result.binutilsMisreads += 1
        } else {
            unconfirmed.append(index)
        }
    }
    for index in unconfirmed {
        let alone = unconfirmed.count <= 200
            ? try parseGNU(String(decoding: try shell("addr2line -afi -e '\(vmlinux)' 0x\(String(pcs[index], radix: 16))"), as: UTF8.self)).first
            : nil
        if alone == ours[index] {
            result.historyDependent += 1
        } else {
            result.unexplained.append("0x\(String(pcs[index], radix: 16)): ours \(ours[index]), addr2line \(addr2line[index])")
        }
    }
    return result
}

/// Runs `command` with `input` on standard input, its standard output to `outputPath`; returns
/// its wall time and peak resident set (wait4's `ru_maxrss`, KiB).
func measured(_ command: [String], input: String, outputPath: String) throws -> (seconds: Double, peakKiB: Int) {
    let inputPath = outputPath + ".in"
    try input.write(toFile: inputPath, atomically: true, encoding: .utf8)
    defer { unlink(inputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var argv = command.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let start = ContinuousClock.now
    var pid: pid_t = 0
    guard posix_spawnp(&pid, command[0], &actions, nil, &argv, environ) == 0 else { throw BenchmarkError("cannot run \(command[0])") }
    var status: Int32 = 0
    var usage = rusage()
    guard wait4(pid, &status, 0, &usage) == pid else { throw BenchmarkError("wait4 failed for \(command[0])") }
    let elapsed = ContinuousClock.now - start
    guard status == 0 else { throw BenchmarkError("\(command.joined(separator: " ")) exited with status \(status)") }
    return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, usage.ru_maxrss)
}

/// The child side of the memory measurement: symbolizes the PCs on standard input (one `0x…` a
/// line) in one batch and prints addr2line's format.
func symbolizeChild(vmlinux: String) throws {
    var pcs: [UInt64] = []
    while let line = readLine() {
        guard let pc = UInt64(line.dropFirst(2), radix: 16) else { throw BenchmarkError("not a PC: \(line)") }
        pcs.append(pc)
    }
    let frames = try KernelSymbolizer(vmlinux: vmlinux).checkedFrames(for: pcs)
    FileHandle.standardOutput.write(Data(gnuText(pcs, frames)))
}

/// `count` PCs of a vmlinux without coverage callbacks, deterministic: function symbols
/// (`STT_FUNC` with a size) spread evenly over the symbol table, each at its start plus an offset
/// that varies with its position.
func functionPCs(_ vmlinux: String, count: Int) throws -> [UInt64] {
    let functions = String(decoding: try shell("nm -S -n --defined-only '\(vmlinux)'"), as: UTF8.self).split(separator: "\n").compactMap {
        line -> (address: UInt64, size: UInt64)? in
        let fields = line.split(separator: " ")
        guard fields.count == 4, "tTwW".contains(fields[2]), let address = UInt64(fields[0], radix: 16),
              let size = UInt64(fields[1], radix: 16), size > 0
        else { return nil }
        return (address, size)
    }
    guard !functions.isEmpty else { throw BenchmarkError("nm found no functions in \(vmlinux)") }
    return (0..<count).map { index in
        let function = functions[index * functions.count / count]
        return function.address + UInt64(index * 7919) % function.size
    }
}

/// The large-vmlinux case: `count` PCs of Debian's cloud kernel, ours (a child process: this
/// binary's `symbolize-child`) against one addr2line batch, time and peak memory of each.
func largeVMLinuxBenchmark(vmlinux: String, count: Int, executable: String) throws {
    let pcs = try functionPCs(vmlinux, count: count)
    let input = pcs.map { "0x" + String($0, radix: 16) }.joined(separator: "\n") + "\n"
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kcov-benchmarks-\(getpid())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // Warm the page cache for both sides alike.
    _ = try shell("cat '\(vmlinux)' > /dev/null")
    let ours = try measured([executable, "symbolize-child", vmlinux], input: input, outputPath: directory + "/ours.txt")
    let theirs = try measured(["addr2line", "-afi", "-e", vmlinux], input: input, outputPath: directory + "/addr2line.txt")
    let differences = try compare(
        vmlinux: vmlinux, pcs: pcs, ours: try parseGNU(try String(contentsOfFile: directory + "/ours.txt", encoding: .utf8)),
        addr2line: try parseGNU(try String(contentsOfFile: directory + "/addr2line.txt", encoding: .utf8)))
    report(
        "symbolize \(count) function PCs of \((vmlinux as NSString).lastPathComponent) (\(((try? FileManager.default.attributesOfItem(atPath: vmlinux)[.size]) as? Int ?? 0) >> 20) MiB), each side a process",
        ours: ours.seconds, baseline: theirs.seconds, baselineName: "addr2line -afi (one batch)",
        detail: String(format: "\n  peak RSS: ours %.0f MiB, addr2line %.0f MiB (ratio %.2f)\n  %@", Double(ours.peakKiB) / 1024, Double(theirs.peakKiB) / 1024,
                       Double(ours.peakKiB) / Double(theirs.peakKiB), differences.summary))
    for line in differences.unexplained.prefix(10) { print("    " + line) }
}
