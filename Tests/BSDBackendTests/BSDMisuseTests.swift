import CoverageAPI
import FreeBSDBackend
import KernelSeam
import LinuxBackend
import OpenBSDBackend
import ReferenceModels
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bad input (issue 18): each kernel's own misuses give the code the same misuse gives on Linux,
/// with that kernel's errno in the error (Docs/kcov-freebsd.md#check-order, Docs/kcov-openbsd.md#check-order).
@Suite struct BSDMisuseTests {
    /// The errno each kernel answers a shared misuse with; nil where the backend refuses before
    /// any syscall.
    static let errnos: [String: (freebsd: Int32?, openbsd: Int32?)] = [
        "initialize twice": (EBUSY, EBUSY),
        "initialize below the range": (EINVAL, EINVAL),
        "initialize above the range": (EINVAL, EINVAL),
        "enable before initialize": (EBUSY, ENXIO),
        "map before initialize": (EINVAL, EINVAL),
        "enable twice": (EBUSY, EBUSY),
        "a second fd on the same thread": (EINVAL, EBUSY),
        "initialize while enabled": (EBUSY, EBUSY),
        "disable without enable": (EINVAL, EPERM),
        "disable from a thread that did not enable": (EINVAL, EPERM),
        "an undefined request": (EINVAL, ENOTTY),
        "remote enable of an unsupported target kind": (nil, nil),
    ]

    @Test("the same misuse gives the same code on Linux, FreeBSD and OpenBSD, with each kernel's errno", arguments: Misuse.shared)
    func sameCodeAsLinux(_ misuse: Misuse) throws {
        let linux = try #require(misuse.error(on: LinuxKcovBackend(kernel: LinuxKcovModel())))
        let expected = try #require(Self.errnos[misuse.description], "no errno row for \(misuse)")
        let kernels: [(String, any KcovDriver, Int32?)] = [
            ("FreeBSD", FreeBSDKcovBackend(kernel: FreeBSDKcovModel()), expected.freebsd),
            ("OpenBSD", OpenBSDKcovBackend(kernel: OpenBSDKcovModel()), expected.openbsd),
        ]
        for (kernel, backend, errno) in kernels {
            let error = misuse.error(on: backend)
            #expect(error?.code == linux.code, "\(misuse) on \(kernel): \(String(describing: error)); Linux: \(linux)")
            #expect(error?.errno == errno, "\(misuse) on \(kernel): errno \(String(describing: error?.errno))")
            if let errno { #expect(error?.description.contains("errno \(errno)") == true, "\(String(describing: error))") }
        }
    }

    /// A mode the kernel lacks, by number: FreeBSD has no mode 2 (NetBSD's CMP), OpenBSD refuses
    /// KCOV_MODE_NONE (0); Linux has no mode 2 either. Each is `.invalidArgument` with EINVAL.
    @Test func aModeTheKernelLacks() throws {
        let linux = LinuxKcovBackend(kernel: LinuxKcovModel())
        let linuxError = POSIXThread.run { () -> CoverageError? in
            do throws(CoverageError) {
                let fd = try linux.openDevice()
                defer { linux.closeDevice(fd) }
                try linux.initialize(fd, words: 512)
                try linux.enable(fd, rawMode: 2)
                return nil
            } catch { return error }
        }
        #expect(linuxError?.code == .invalidArgument)
        let freebsd = FreeBSDKcovBackend(kernel: FreeBSDKcovModel())
        let openbsd = OpenBSDKcovBackend(kernel: OpenBSDKcovModel())
        for (backend, mode, enable) in [
            (freebsd as any KcovDriver, Int32(2), { (fd: Int32, mode: Int32) throws(CoverageError) in try freebsd.enable(fd, rawMode: mode) }),
            (openbsd as any KcovDriver, Int32(0), { (fd: Int32, mode: Int32) throws(CoverageError) in try openbsd.enable(fd, rawMode: mode) }),
        ] {
            let fd = try backend.openDevice()
            defer { backend.closeDevice(fd) }
            try backend.initialize(fd, words: 512)
            let error = #expect(throws: CoverageError.self) { try enable(fd, mode) }
            #expect(error?.code == linuxError?.code && error?.errno == EINVAL, "\(backend.name): \(String(describing: error))")
            #expect(error?.message.contains("\(mode) is not") == true)
        }
    }

    /// Remote attach with a bad subsystem: OpenBSD's EINVAL is Linux's bad-handle `.invalidArgument`.
    @Test func remoteAttachWithABadSubsystem() throws {
        let linux = LinuxKcovBackend(kernel: LinuxKcovModel())
        let linuxError = POSIXThread.run { () -> CoverageError? in
            do throws(CoverageError) {
                let fd = try linux.openDevice()
                defer { linux.closeDevice(fd) }
                try linux.initialize(fd, words: 512)
                // A USB handle where the common handle goes: the kernel refuses the handle.
                try linux.remoteEnable(fd, mode: 0, sectionWords: 512, common: LinuxKcovABI.subsystemUSB | 1, handles: [])
                return nil
            } catch { return error }
        }
        #expect(linuxError?.code == .invalidArgument)
        let backend = OpenBSDKcovBackend(kernel: OpenBSDKcovModel())
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        try backend.initialize(fd, words: 512)
        let error = #expect(throws: CoverageError.self) { try backend.attachRemote(fd, subsystem: 1, id: 0) }
        #expect(error?.code == linuxError?.code && error?.errno == EINVAL)
        #expect(error?.description.contains("errno \(EINVAL)") == true && error?.message.contains("KCOV_REMOTE_COMMON") == true)
    }

    /// OpenBSD keeps a descriptor attached to the process's tasks until it is closed: a remote
    /// collector enables again (after DISABLE) without a second KIOREMOTEATTACH, which the kernel
    /// would refuse (EBUSY), and after the close another descriptor may attach.
    @Test func openBSDRemoteCoverageEnablesAgainOnTheSameDescriptor() throws {
        let model = OpenBSDKcovModel()
        let backend = OpenBSDKcovBackend(kernel: model)
        let request = RemoteRequest(targets: [.common(instance: 0)], sectionWords: 0)
        for collectorNumber in 1...2 {
            var collector = try CoverageCollector(backend: backend, bufferWords: 512)
            for round in 1...2 {
                try collector.enableRemote(request)
                #expect(model.runKernelTask() > 0, "collector \(collectorNumber), round \(round): the task is recorded")
                #expect(!(try collector.read().pcs.isEmpty))
                try collector.disable()
            }
        }
        #expect(!model.remoteAttached)
        #expect(model.openDescriptorCount == 0)
    }

    /// Sizes that do not fit FreeBSD's 32-bit argument are refused before the syscall, never
    /// truncated into another size.
    @Test func freeBSDRefusesSizesItWouldTruncate() throws {
        let model = FreeBSDKcovModel()
        let backend = FreeBSDKcovBackend(kernel: model)
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        for words in [(1 << 32) + 2, -1, Int.max] {
            let error = #expect(throws: CoverageError.self) { try backend.initialize(fd, words: words) }
            #expect(error?.code == .bufferSize && error?.syscall == nil, "\(words): \(String(describing: error))")
        }
        #expect(model.state(of: fd) == .open, "nothing reached the kernel")
        // The kernel itself truncates: 2^32 + 2 by value is 2 entries.
        #expect(model.ioctl(fd, FreeBSDKcovABI.setBufferSize, value: (1 << 32) + 2) == 0)
        #expect(model.state(of: fd) == .ready)
    }

    @Test func mappingsOfImpossibleLengthsAreRefusedUpFront() throws {
        for backend in [FreeBSDKcovBackend(kernel: FreeBSDKcovModel()), OpenBSDKcovBackend(kernel: OpenBSDKcovModel())] as [any KcovDriver] {
            let fd = try backend.openDevice()
            defer { backend.closeDevice(fd) }
            try backend.initialize(fd, words: 512)
            for words in [0, -1, Int.max] {
                let error = #expect(throws: CoverageError.self) { _ = try backend.mapBuffer(fd, words: words) }
                #expect(error?.code == .bufferSize && error?.syscall == nil, "\(backend.name) \(words)")
            }
        }
    }
}
