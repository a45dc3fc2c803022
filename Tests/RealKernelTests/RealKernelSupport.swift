import CoverageAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KernelSeam
import LinuxBackend
import Testing

// The suites of this target need the real /sys/kernel/debug/kcov: the test command skips them on
// the host by name (`swift test --skip RealKernel`) and GuestSuiteTests runs them, by name, inside
// the test kernel, failing unless every one of them ran and passed there.

/// The lowest address of the x86_64 kernel text mapping.
let kernelTextStart: UInt64 = 0xffff_ffff_8000_0000

/// The calling thread's coverage error from `body`, if any.
func coverageError(_ body: () throws -> Void) -> CoverageError? {
    do {
        try body()
        return nil
    } catch let error as CoverageError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// Opens a fresh kcov fd for `body` and closes it after.
func withDevice(_ backend: LinuxKcovBackend, _ body: (Int32) throws -> Void) throws {
    let fd = try backend.openDevice()
    defer { backend.closeDevice(fd) }
    try body(fd)
}

/// This process's open kcov descriptors (links to the kcov file), perf event descriptors
/// (kprobe sessions) and kcov mappings, for leak checks. Only these: the test runner and
/// Foundation open and close other descriptors on their own threads (a `Process` of an earlier
/// test has its pipes closed later), so a count of all descriptors moves under a test.
func processResources() throws -> (kcovFDs: Int, perfFDs: Int, kcovMappings: Int) {
    let folder = "/proc/self/fd"
    var kcov = 0
    var perf = 0
    for entry in try FileManager.default.contentsOfDirectory(atPath: folder) {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + entry) else { continue }
        if target.hasSuffix("/kcov") { kcov += 1 }
        if target == "anon_inode:[perf_event]" { perf += 1 }
    }
    let maps = try readProcFile("/proc/self/maps")
    precondition(maps.contains("[stack]"), "/proc/self/maps was not read")
    return (kcov, perf, maps.split(separator: "\n").count { $0.hasSuffix("/kcov") })
}

/// Address ranges of the kernel's text symbols whose names contain `fragment`, from
/// `/proc/kallsyms` (the test kernel has no KASLR, so they match kcov's PCs): each symbol runs
/// to the next symbol's address.
func kernelSymbolRanges(containing fragment: String) throws -> [Range<UInt64>] {
    let symbols = try kernelTextSymbols()
    return symbols.indices.compactMap { index in
        guard symbols[index].name.contains(fragment), index + 1 < symbols.count else { return nil }
        return symbols[index].address..<symbols[index + 1].address
    }
}

/// The text symbols of `/proc/kallsyms` with their addresses, in address order.
func kernelTextSymbols() throws -> [(address: UInt64, name: Substring)] {
    let table = try readProcFile("/proc/kallsyms")
    return table.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count >= 3, "tTwW".contains(fields[1]), let address = UInt64(fields[0], radix: 16), address != 0 else { return nil }
        return (address, fields[2])
    }.sorted { $0.address < $1.address }
}

/// A procfs or tracefs file read to its end by the seam's reader; one that cannot be read throws.
func readProcFile(_ path: String) throws -> String {
    guard let text = SystemKernel().readTextFile(path) else { throw CocoaError(.fileReadUnknown, userInfo: ["path": path, "errno": errno]) }
    return text
}

/// The PCs a round of `collect` records once two rounds in a row record the same set, trying at
/// most `rounds` rounds; nil when no two in a row agree. A single round can record more than the
/// code it runs: a page fault of the thread's user code (fresh stack and buffer pages, a page of the
/// program read over 9p), the return to user space after an interrupt, and preemption all record
/// PCs in the thread's context (Docs/kcov-linux.md, "Which code is recorded"). The conformance
/// check `collect.same-path-twice` waits for its path the same way.
func repeatedPath(rounds: Int = 8, _ collect: () throws -> [UInt64]) rethrows -> Set<UInt64>? {
    var previous: Set<UInt64>?
    for _ in 0..<rounds {
        let pcs = Set(try collect())
        if pcs == previous { return pcs }
        previous = pcs
    }
    return nil
}
