import CoverageAPI
import KernelSeam
import LinuxBackend
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Each misuse of Docs/kcov-gvisor.md#differences-from-linux, rows D6, D9, D11, D12, D19, D21, D22, D23, D25, D28, D29, D31 and D32,
/// against the real kernel: the typed error and the errno behind it.
@Suite(.serialized)
struct RealKernelMisuseTests {
    let backend = LinuxKcovBackend()

    /// Asserts `body` fails with `code` and `errno`.
    func expectFailure(
        _ code: CoverageError.Code, errno expected: Int32, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        let error = coverageError(body)
        #expect(error?.code == code, sourceLocation: sourceLocation)
        #expect(error?.errno == expected, sourceLocation: sourceLocation)
    }

    @Test(arguments: [UInt(0), 1])
    func d6InitTraceTooSmall(words: UInt) throws {
        try withDevice(backend) { fd in
            expectFailure(.bufferSize, errno: EINVAL) { try backend.initTrace(fd, words: words) }
        }
    }

    @Test func d6InitTraceTooLarge() throws {
        try withDevice(backend) { fd in
            expectFailure(.bufferSize, errno: EINVAL) { try backend.initTrace(fd, words: 268_435_456) }
        }
    }

    @Test func d9InitTraceTwiceIsBusyButSizeIsCheckedFirst() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            expectFailure(.busy, errno: EBUSY) { try backend.initTrace(fd, words: 512) }
            expectFailure(.bufferSize, errno: EINVAL) { try backend.initTrace(fd, words: 1) }
        }
    }

    @Test func d11MapBeforeInit() throws {
        try withDevice(backend) { fd in
            expectFailure(.invalidState, errno: EINVAL) { _ = try backend.mapBuffer(fd, words: 512) }
        }
    }

    @Test func d12MapWrongLength() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 1024)
            expectFailure(.invalidState, errno: EINVAL) { _ = try backend.mapBuffer(fd, words: 512) }
            expectFailure(.invalidState, errno: EINVAL) { _ = try backend.mapBuffer(fd, words: 2048) }
            let mapping = try backend.mapBuffer(fd, words: 1024)
            backend.unmapBuffer(mapping, words: 1024)
        }
    }

    @Test func d19EnableBeforeInit() throws {
        try withDevice(backend) { fd in
            expectFailure(.invalidState, errno: EINVAL) { try backend.enable(fd, mode: .pc) }
        }
    }

    @Test func d20EnableWithoutMapSucceeds() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            try backend.enable(fd, mode: .pc)
            try backend.disable(fd)
        }
    }

    @Test func d21EnableTwiceOnOneThread() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            try backend.enable(fd, mode: .pc)
            expectFailure(.invalidState, errno: EINVAL) { try backend.enable(fd, mode: .pc) }
            try backend.disable(fd)
        }
    }

    @Test func d22EnableFromSecondThreadWhileEnabled() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            try backend.enable(fd, mode: .pc)
            let error = POSIXThread.run { coverageError { try LinuxKcovBackend().enable(fd, mode: .pc) } }
            #expect(error?.code == .invalidState)
            #expect(error?.errno == EINVAL)
            try backend.disable(fd)
        }
    }

    @Test func d23EnableWhileThreadOwnsAnotherFd() throws {
        try withDevice(backend) { first in
            try withDevice(backend) { second in
                try backend.initTrace(first, words: 512)
                try backend.initTrace(second, words: 512)
                try backend.enable(first, mode: .pc)
                expectFailure(.busy, errno: EBUSY) { try backend.enable(second, mode: .pc) }
                try backend.disable(first)
                try backend.enable(second, mode: .pc)
                try backend.disable(second)
            }
        }
    }

    @Test(arguments: [UInt(2), 7, 256, 1 << 32])
    func d25UnknownModeLeavesStateUnchanged(mode: UInt) throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            expectFailure(.invalidArgument, errno: EINVAL) { try backend.enable(fd, rawMode: mode) }
            try backend.enable(fd, mode: .pc)
            try backend.disable(fd)
        }
    }

    @Test func d28DisableWithNonZeroArgument() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            try backend.enable(fd, mode: .pc)
            expectFailure(.invalidArgument, errno: EINVAL) { try backend.disable(fd, argument: 1) }
            try backend.disable(fd)
        }
    }

    @Test func d29DisableWhenNotEnabled() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            expectFailure(.notOwner, errno: EINVAL) { try backend.disable(fd) }
        }
    }

    @Test func d29DisableFromNonOwnerThread() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            try backend.enable(fd, mode: .pc)
            let error = POSIXThread.run { coverageError { try LinuxKcovBackend().disable(fd) } }
            #expect(error?.code == .notOwner)
            #expect(error?.errno == EINVAL)
            try backend.disable(fd)
        }
    }

    @Test func d31InitTraceAfterDisable() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            try backend.enable(fd, mode: .pc)
            try backend.disable(fd)
            expectFailure(.busy, errno: EBUSY) { try backend.initTrace(fd, words: 512) }
        }
    }

    @Test(arguments: [UInt(0x6366), 0x6367, 0x6368, 0x4008_6367, 0xdead_beef])
    func d32UnknownIoctl(request: UInt) throws {
        try withDevice(backend) { fd in
            expectFailure(.unsupportedOperation, errno: ENOTTY) { try backend.rawIoctl(fd, request: request, value: 0) }
        }
    }

    @Test func remoteOnUninitialisedFdIsRefused() throws {
        try withDevice(backend) { fd in
            expectFailure(.invalidArgument, errno: EINVAL) {
                try backend.remoteEnable(fd, mode: 0, sectionWords: 512, common: 0, handles: [])
            }
        }
    }

    @Test func remoteWithTooManyHandles() throws {
        try withDevice(backend) { fd in
            try backend.initTrace(fd, words: 512)
            let handles = (0..<257).map { LinuxKcovABI.remoteHandle(subsystem: LinuxKcovABI.subsystemUSB, instance: UInt32($0)) }
            expectFailure(.invalidArgument, errno: EINVAL) {
                try backend.remoteEnable(fd, mode: 0, sectionWords: 512, common: 0, handles: handles)
            }
        }
    }
}
