import Foundation
import KernelSymbolizer
import TestKernel
import TestSupport

/// Why a test could not get what it needs from the machine.
struct SetupError: Error, CustomStringConvertible {
    var description: String
}

/// The test kernel's vmlinux (built with DWARF). Missing is a failure, never a skip.
func testKernelVMLinux() throws -> String {
    guard let kernel = try TestKernelBuilder().cached() else {
        throw SetupError(description: "the test kernel is not built: run `kcovctl vm build` (about 10 minutes), then test again")
    }
    return kernel.vmlinux
}

/// `executable` found on `PATH`.
func onPath(_ executable: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(executable)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A frame as `addr2line -afi` prints it: what is compared.
struct PrintedFrame: Hashable, CustomStringConvertible {
    var function: String?
    var file: String
    var line: Int
    /// Only for the innermost frame (addr2line repeats it on the inlined-by lines).
    var discriminator: Int

    var description: String {
        "\(function ?? "??") \(file):\(line)" + (discriminator == 0 ? "" : " (discriminator \(discriminator))")
    }
}

/// Our frames as addr2line would print them.
func printed(_ frames: [SymbolFrame]) -> [PrintedFrame] {
    frames.enumerated().map { index, frame in
        PrintedFrame(function: frame.function, file: frame.file, line: frame.line, discriminator: index == 0 ? frame.discriminator : 0)
    }
}

/// Parses GNU-style `-a -f -i` output (addr2line, or llvm-symbolizer `--output-style=GNU`): a PC
/// line, then a function line and a `file:line [(discriminator N)]` line per frame. `?? ??:0` is
/// no frame at all.
func parseSymbolizerOutput(_ text: String) throws -> [(pc: UInt64, frames: [PrintedFrame])] {
    var result: [(pc: UInt64, frames: [PrintedFrame])] = []
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var index = 0
    while index < lines.count {
        let line = lines[index]
        index += 1
        if line.isEmpty { continue }
        guard line.hasPrefix("0x"), let pc = UInt64(line.dropFirst(2), radix: 16) else {
            throw SetupError(description: "unexpected symbolizer output line: \(line)")
        }
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
            guard let colon = location.lastIndex(of: ":") else { throw SetupError(description: "no file:line in \(location)") }
            frames.append(PrintedFrame(
                function: function, file: String(location[..<colon]), line: Int(location[location.index(after: colon)...]) ?? 0,
                discriminator: frames.isEmpty ? discriminator : 0))
        }
        if frames == [PrintedFrame(function: nil, file: "??", line: 0, discriminator: 0)] { frames = [] }
        result.append((pc, frames))
    }
    return result
}

/// How our frames compare with addr2line's, PC by PC.
struct Agreement {
    /// PCs where every frame (function, file, line; the innermost's discriminator) is the same.
    var exact = 0
    /// PCs addr2line names differently in a batch than alone: it keeps its last symbol-table
    /// answer while later PCs fall inside it (assembly labels); alone, it agrees with us.
    var historyDependent: [UInt64] = []
    /// PCs where only the innermost file differs, in the first rows of a DWARF 5 line sequence
    /// that use the initial file register (1): binutils 2.40's BFD reads it as file entry 0 (the
    /// unit's own source), libdw, llvm-symbolizer and readelf as entry 1. llvm-symbolizer must
    /// agree with us on file and line.
    var initialFileEntry: [UInt64] = []
    /// Anything else, one line each: a failure.
    var unexplained: [String] = []
}

/// Compares `ours` (frames for `pcs`) with one `addr2line -afi` batch over the same PCs, and
/// explains each difference or reports it.
func compareWithAddr2line(binary: String, pcs: [UInt64], ours: [[SymbolFrame]]) throws -> Agreement {
    let input = pcs.map { "0x" + String($0, radix: 16) }.joined(separator: "\n") + "\n"
    let theirs = try parseSymbolizerOutput(try runTool("/usr/bin/addr2line", ["-afi", "-e", binary], input: input))
    guard theirs.count == pcs.count else { throw SetupError(description: "addr2line answered \(theirs.count) of \(pcs.count) PCs") }
    var agreement = Agreement()
    var differing: [Int] = []
    for index in pcs.indices {
        if printed(ours[index]) == theirs[index].frames { agreement.exact += 1 } else { differing.append(index) }
    }
    guard !differing.isEmpty else { return agreement }
    func difference(_ index: Int) -> String {
        "0x\(String(pcs[index], radix: 16)): ours \(printed(ours[index])), addr2line \(theirs[index].frames)"
    }

    let initialFileCandidates = differing.filter { index in
        let mine = printed(ours[index])
        let other = theirs[index].frames
        return mine.count == other.count && !mine.isEmpty && mine[0].file != other[0].file
            && mine[0].function == other[0].function && mine[0].line == other[0].line && mine.dropFirst() == other.dropFirst()
    }
    var confirmed = Set<Int>()
    if !initialFileCandidates.isEmpty, let llvm = onPath("llvm-symbolizer") {
        let candidatePCs = initialFileCandidates.map { "0x" + String(pcs[$0], radix: 16) }.joined(separator: "\n") + "\n"
        let answers = try parseSymbolizerOutput(try runTool(llvm, ["--obj=\(binary)", "--output-style=GNU", "-a", "-f", "-i"], input: candidatePCs))
        for (index, answer) in zip(initialFileCandidates, answers) {
            guard let theirsInnermost = answer.frames.first, let mine = ours[index].first else { continue }
            // llvm joins paths without repeated slashes; binutils and libdw keep a directory's trailing one.
            let sameFile = theirsInnermost.file == mine.file.replacingOccurrences(of: "//", with: "/")
            if sameFile && theirsInnermost.line == mine.line { confirmed.insert(index) }
        }
    }
    agreement.initialFileEntry = confirmed.sorted().map { pcs[$0] }
    let remaining = differing.filter { !confirmed.contains($0) }
    // Asking addr2line about each PC alone costs a process each: only for a few.
    guard remaining.count <= 100 else {
        agreement.unexplained = remaining.map(difference)
        return agreement
    }
    for index in remaining {
        let alone = try parseSymbolizerOutput(try runTool("/usr/bin/addr2line", ["-afi", "-e", binary, "0x" + String(pcs[index], radix: 16)]))
        if alone.first?.frames == printed(ours[index]) {
            agreement.historyDependent.append(pcs[index])
            continue
        }
        agreement.unexplained.append(difference(index))
    }
    return agreement
}
