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

/// Open descriptors and kcov mappings of this process, for leak checks.
func processResources() throws -> (fds: Int, kcovMappings: Int) {
    let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    let maps = try readProcFile("/proc/self/maps")
    precondition(maps.contains("[stack]"), "/proc/self/maps was not read")
    return (fds, maps.split(separator: "\n").count { $0.hasSuffix("/kcov") })
}

/// Runs a program with posix_spawn, its standard output going to a file, and returns its exit
/// status and output. (Foundation's `Process` hangs in the guest: CoreFoundation cannot create
/// its wakeup socket pair there, so it never learns the child exited.)
func spawnCapturingOutput(_ command: [String]) throws -> (status: Int32, output: Data) {
    let result = try spawn(command, capturingErrors: false)
    return (result.status, result.output)
}

/// Runs a program as ``spawnCapturingOutput(_:)`` does, capturing its standard error too.
func spawnCapturingOutputAndErrors(_ command: [String]) throws -> (status: Int32, output: Data, errors: Data) {
    try spawn(command, capturingErrors: true)
}

private func spawn(_ command: [String], capturingErrors: Bool) throws -> (status: Int32, output: Data, errors: Data) {
    let outputPath = NSTemporaryDirectory() + "/spawn-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let errorPath = outputPath + ".err"
    defer {
        unlink(outputPath)
        unlink(errorPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if capturingErrors { posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600) }
    var argv = command.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
    guard spawned == 0 else { throw CocoaError(.fileNoSuchFile, userInfo: ["errno": spawned, "path": command[0]]) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = FileManager.default.contents(atPath: outputPath) ?? Data()
    let errors = FileManager.default.contents(atPath: errorPath) ?? Data()
    return (status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), output, errors)
}

/// Address ranges of the kernel's text symbols whose names contain `fragment`, from
/// `/proc/kallsyms` (the test kernel has no KASLR, so they match kcov's PCs): each symbol runs
/// to the next symbol's address.
func kernelSymbolRanges(containing fragment: String) throws -> [Range<UInt64>] {
    let table = try readProcFile("/proc/kallsyms")
    let symbols: [(address: UInt64, name: Substring)] = table.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count >= 3, "tTwW".contains(fields[1]), let address = UInt64(fields[0], radix: 16), address != 0 else { return nil }
        return (address, fields[2])
    }.sorted { $0.address < $1.address }
    return symbols.indices.compactMap { index in
        guard symbols[index].name.contains(fragment), index + 1 < symbols.count else { return nil }
        return symbols[index].address..<symbols[index + 1].address
    }
}

/// A procfs or tracefs file read to its end by the seam's reader; one that cannot be read throws.
func readProcFile(_ path: String) throws -> String {
    guard let text = SystemKernel().readTextFile(path) else { throw CocoaError(.fileReadUnknown, userInfo: ["path": path, "errno": errno]) }
    return text
}
