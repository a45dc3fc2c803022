import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The kcov buffer's protection on the real kernel, inside the guest: guard pages around the
/// device mapping, and the write-protected mode (the test kernel has protection keys, and QEMU's
/// `-cpu max` has PKU).
@Suite(.serialized)
struct RealKernelProtectionTests {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// The address ranges and permissions of this process's mappings.
    func mappings() throws -> [(range: Range<UInt>, permissions: Substring, path: Substring?)] {
        try readProcFile("/proc/self/maps").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            let bounds = fields[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            guard bounds.count == 2 else { return nil }
            return (bounds[0]..<bounds[1], fields[1], fields.count > 5 ? fields[5] : nil)
        }
    }

    /// The one kcov mapping of this process.
    func kcovMapping() throws -> Range<UInt> {
        let kcov = try mappings().filter { $0.path?.hasSuffix("/kcov") == true }
        try #require(kcov.count == 1, "one kcov mapping, found \(kcov.count)")
        return kcov[0].range
    }

    func permissions(at address: UInt) throws -> Substring? {
        try mappings().first { $0.range.contains(address) }?.permissions
    }

    /// How a forked child that stores one word at `address` ends: the child inherits this thread's
    /// registers, PKRU included.
    func childStoring(at address: UInt) -> (exited: Int32?, signal: Int32?) {
        let pid = fork()
        if pid == 0 {
            signal(SIGSEGV, SIG_DFL)  // no backtrace from the runtime's handler: just die
            UnsafeMutableRawPointer(bitPattern: address)!.storeBytes(of: 0x8000_7000_c000_8, as: UInt64.self)
            _exit(0)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? ((status >> 8) & 0xff, nil) : (nil, status & 0x7f)
    }

    @Test func theKcovMappingHasAGuardPageOnEachSide() throws {
        let backend = LinuxKcovBackend()
        var collector = try CoverageCollector(backend: backend, bufferWords: 512)
        let buffer = try kcovMapping()
        #expect(buffer.count == 512 * 8)
        #expect(try permissions(at: buffer.lowerBound) == "rw-s")
        #expect(try permissions(at: buffer.lowerBound - 1) == "---p", "a guard page before the buffer")
        #expect(try permissions(at: buffer.upperBound) == "---p", "a guard page after the buffer")
        #expect(childStoring(at: buffer.upperBound) == (nil, SIGSEGV), "a write just past the buffer faults")
        #expect(childStoring(at: buffer.lowerBound - 8) == (nil, SIGSEGV), "a write just before it faults")
        let trace = try collector.collect { backend.probe() }
        #expect(!trace.pcs.isEmpty, "the kernel still records into a guarded mapping")
    }

    @Test func writeProtectedBufferFaultsOnStrayWritesWhileEnabledAndStillRecords() throws {
        let backend = LinuxKcovBackend()
        var collector = try CoverageCollector(backend: backend, bufferWords: 512, protection: .writeProtected)
        let buffer = try kcovMapping()
        let entry = buffer.lowerBound + 8
        #expect(childStoring(at: entry) == (0, nil), "writable while coverage is off")

        try collector.enable()
        #expect(childStoring(at: entry) == (nil, SIGSEGV), "a stray write while enabled faults")
        let beforeReset = try collector.withPCs { Array($0) }
        #expect(!beforeReset.isEmpty, "the kernel writes through its own mapping (the fork and wait)")
        #expect(!beforeReset.contains(0x8000_7000_c000_8), "the child's stray write did not land")
        // The collector's own reset opens the buffer to this thread: the count reads back 0. An
        // interrupt between the reset and the read can add PCs of the return to user space, which
        // runs in this thread's context (Docs/kcov-linux.md, "Which code is recorded": the soak
        // once saw 33), so up to five resets are tried; a reset that wrote nothing would leave
        // the count at the fork's thousands every time.
        var afterResets: [Int] = []
        for _ in 0..<5 where afterResets.last != 0 {
            try collector.reset()
            afterResets.append(try collector.withPCs { $0.count })
        }
        #expect(afterResets.last == 0, "counts read right after each reset: \(afterResets)")
        #expect(afterResets.allSatisfy { $0 < beforeReset.count }, "counts read right after each reset: \(afterResets)")
        backend.probe()
        let probe = try collector.withPCs { Array($0) }
        #expect(!probe.isEmpty)
        #expect(probe.allSatisfy { $0 >= kernelTextStart })
        #expect(childStoring(at: entry) == (nil, SIGSEGV), "still protected after the reset")
        try collector.disable()
        #expect(childStoring(at: entry) == (0, nil), "writable again once disabled")
    }
}
