import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import ReferenceModels
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The kcov buffer's protection against the traced code's writes: guard pages around every real
/// mapping (checked on an ordinary file, which maps like a device) and the write-protected mode.
@Suite struct BufferProtectionTests {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// The permissions of the mapping that contains `address`, from /proc/self/maps; `nil` when
    /// nothing is mapped there.
    func permissions(at address: UnsafeMutableRawPointer) throws -> String? {
        let target = UInt(bitPattern: address)
        // Read to the end: procfs reports a size of 0, which Foundation's file reading trusts.
        let maps = try #require(SystemKernel().readTextFile("/proc/self/maps"))
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ")
            let bounds = fields[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            if bounds.count == 2, bounds[0] <= target, target < bounds[1] { return String(fields[1]) }
        }
        return nil
    }

    /// An unlinked temporary file of `bytes` zeroed bytes; closed by the caller.
    func memfd(bytes: Int) throws -> Int32 {
        var template = Array("/tmp/kcov-buffer-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0, "mkstemp: errno \(errno)")
        unlink(template)
        try #require(ftruncate(fd, off_t(bytes)) == 0)
        return fd
    }

    /// How a forked child that stores one word at `address` ends.
    func childStoring(at address: UnsafeMutableRawPointer) -> (exited: Int32?, signal: Int32?) {
        let pid = fork()
        if pid == 0 {
            signal(SIGSEGV, SIG_DFL)  // no backtrace from the runtime's handler: just die
            address.storeBytes(of: 0x8000_7000_c000_8, as: UInt64.self)
            _exit(0)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? ((status >> 8) & 0xff, nil) : (nil, status & 0x7f)
    }

    @Test func aRealMappingSitsBetweenTwoInaccessiblePages() throws {
        let kernel = SystemKernel()
        let bytes = 3 * page
        let fd = try memfd(bytes: bytes)
        defer { close(fd) }
        let buffer = try #require(kernel.mmapBetweenGuards(length: bytes, fd: fd, offset: 0))
        #expect(try permissions(at: buffer - page) == "---p", "the page before the buffer is a guard")
        #expect(try permissions(at: buffer) == "rw-s")
        #expect(try permissions(at: buffer + (bytes - 8)) == "rw-s")
        #expect(try permissions(at: buffer + bytes) == "---p", "the page after the buffer is a guard")

        #expect(childStoring(at: buffer + (bytes - 8)) == (0, nil), "the last word is writable")
        #expect(childStoring(at: buffer + bytes) == (nil, SIGSEGV), "one word past the end faults")
        #expect(childStoring(at: buffer - 8) == (nil, SIGSEGV), "one word before the start faults")

        #expect(kernel.munmapBetweenGuards(buffer, length: bytes) == 0)
        for address in [buffer - page, buffer, buffer + bytes] {
            #expect(try permissions(at: address) == nil, "unmapping releases the buffer and both guards")
        }
    }

    @Test func aRefusedDeviceMappingKeepsItsErrno() throws {
        let kernel = SystemKernel()
        let fd = try memfd(bytes: page)
        defer { close(fd) }
        // An offset past a 1-page file maps, but a negative length cannot.
        #expect(kernel.mmapBetweenGuards(length: -1, fd: fd, offset: 0) == nil)
        #expect(errno == EINVAL)
        #expect(kernel.mmapBetweenGuards(length: page, fd: -1, offset: 0) == nil)
        #expect(errno == EBADF, "the device mapping's errno, not the reservation's")
        #expect(kernel.mmapBetweenGuards(length: page, fd: fd, offset: 1) == nil)
        #expect(errno == EINVAL, "an unaligned offset")
    }

    /// Whether this machine's CPU and kernel offer memory protection keys.
    var hasProtectionKeys: Bool {
        (SystemKernel().readTextFile("/proc/cpuinfo") ?? "").contains(" ospke")
    }

    @Test func writeProtectionNeedsProtectionKeysAndLeavesNothingWhenRefused() throws {
        let model = LinuxKcovModel()
        let backend = LinuxKcovBackend(kernel: model)
        let refusal = coverageError {
            let collector = try CoverageCollector(backend: backend, bufferWords: 512, protection: .writeProtected)
            #expect(collector.protection == .writeProtected)
        }
        if let refusal {
            #expect(!hasProtectionKeys, "write protection failed where protection keys exist: \(refusal)")
            #expect(refusal.code == .unsupportedOperation)
            #expect(refusal.syscall == "pkey_alloc")
            #expect(refusal.message.contains("CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS"))
        } else {
            #expect(hasProtectionKeys, "write protection succeeded on a machine without protection keys")
        }
        #expect(model.openDescriptorCount == 0)
        #expect(model.liveMappingCount == 0)
        #expect(model.liveBufferCount == 0)
    }
}
