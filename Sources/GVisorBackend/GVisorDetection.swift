package import KernelSeam
import LinuxBackend

#if canImport(Glibc)
import Glibc
#endif

/// Recognises a gVisor sandbox from three independent pieces of evidence, none of which changes
/// anything: the fixed kernel version string gVisor reports, its boot banner in the kernel log,
/// and how the kcov file answers KCOV_INIT_TRACE(2) on a scratch descriptor.
///
/// gVisor does not announce itself to a kcov client, and its kcov uses Linux's numbers, so a
/// client that took it for Linux would get wrong answers silently (no per-thread coverage, no
/// order). One piece of evidence is enough; each is reported.
public enum GVisorDetection {
    /// `uname -v` (and the tail of `/proc/version`) in every gVisor release: a fixed, fake date.
    public static let versionString = GVisorSignature.kernelVersion
    /// The first line the sentry writes to its kernel log (`dmesg`).
    public static let bootBanner = "Starting gVisor..."

    /// What KCOV_INIT_TRACE(2) on a fresh descriptor says: Linux accepts any size from 2 words,
    /// gVisor wants whole 4096-byte pages (512 words) and refuses with EINVAL.
    public enum Fingerprint: String, Sendable, Hashable, Codable {
        /// INIT_TRACE(2) succeeded: Linux kcov.
        case linux
        /// INIT_TRACE(2) gave EINVAL: gVisor's kcov.
        case gVisor
        /// There is no kcov file to ask (ENOENT and the like): no answer either way.
        case noDevice
        /// Something else answered (ENOTTY: not kcov).
        case other
    }

    /// What was found.
    public struct Evidence: Sendable, Hashable, Codable {
        /// `uname`'s version field (or `/proc/version`), if it could be read.
        public var kernelVersion: String?
        /// The kernel log, if it could be read (unprivileged Linux users often cannot).
        public var bootLogHasBanner: Bool?
        /// The INIT_TRACE(2) fingerprint of the kcov file.
        public var fingerprint: Fingerprint

        public init(kernelVersion: String?, bootLogHasBanner: Bool?, fingerprint: Fingerprint) {
            self.kernelVersion = kernelVersion
            self.bootLogHasBanner = bootLogHasBanner
            self.fingerprint = fingerprint
        }

        /// Gathers the evidence: `kernelVersion` and `bootLog` default to this machine's `uname`
        /// and kernel log; the version falls back to `/proc/version` through the seam, and the
        /// fingerprint always goes through the seam.
        package static func gather(
            kernel: any KernelInterface, devicePath: String = LinuxKcovABI.devicePath,
            kernelVersion: String? = GVisorDetection.unameVersion(), bootLog: String? = GVisorDetection.readKernelLog()
        ) -> Evidence {
            let version = kernelVersion ?? kernel.readTextFile("/proc/version").map {
                $0.trimmingSuffix { $0 == "\n" }
            }
            return Evidence(
                kernelVersion: version, bootLogHasBanner: bootLog.map { $0.contains(GVisorDetection.bootBanner) },
                fingerprint: GVisorDetection.fingerprint(kernel: kernel, devicePath: devicePath))
        }

        /// Whether the version string is gVisor's (it may be the tail of `/proc/version`).
        public var versionIsGVisor: Bool {
            kernelVersion.map { $0 == GVisorDetection.versionString || $0.hasSuffix(" " + GVisorDetection.versionString) } ?? false
        }

        /// The conclusion and why.
        public var verdict: Verdict {
            var found: [String] = []
            var against: [String] = []
            switch kernelVersion {
            case nil: against.append("kernel version unreadable")
            case let version? where versionIsGVisor: found.append("kernel version is gVisor's fixed \"\(version)\"")
            case let version?: against.append("kernel version \"\(version)\" is not gVisor's")
            }
            switch bootLogHasBanner {
            case nil: against.append("kernel log unreadable")
            case true?: found.append("kernel log starts with \"\(GVisorDetection.bootBanner)\"")
            case false?: against.append("no gVisor boot banner in the kernel log")
            }
            switch fingerprint {
            case .gVisor: found.append("kcov refused INIT_TRACE(2) with EINVAL, as gVisor does")
            case .linux: against.append("kcov accepted INIT_TRACE(2), as Linux does")
            case .noDevice: against.append("no kcov file to fingerprint")
            case .other: against.append("the kcov file did not answer INIT_TRACE like kcov")
            }
            let inside = !found.isEmpty
            return Verdict(insideGVisor: inside, explanation: (inside ? found : against).joined(separator: "; "))
        }
    }

    /// The conclusion of the evidence.
    public struct Verdict: Sendable, Hashable, Codable {
        public var insideGVisor: Bool
        /// What pointed to gVisor when inside, or what was found instead when not.
        public var explanation: String

        public init(insideGVisor: Bool, explanation: String) {
            self.insideGVisor = insideGVisor
            self.explanation = explanation
        }
    }

    /// The non-destructive fingerprint: opens a scratch descriptor of the kcov file, asks for a
    /// 2-word buffer, and closes it. Nothing else is touched (no mapping, no ENABLE).
    package static func fingerprint(kernel: any KernelInterface, devicePath: String = LinuxKcovABI.devicePath) -> Fingerprint {
        let fd = kernel.open(devicePath, flags: O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return .noDevice }
        defer { _ = kernel.close(fd) }
        if kernel.ioctl(fd, LinuxKcovABI.initTrace, value: 2) == 0 { return .linux }
        return errno == EINVAL ? .gVisor : .other
    }

    /// This machine's `uname` version field.
    public static func unameVersion() -> String? {
        var name = utsname()
        guard uname(&name) == 0 else { return nil }
        return withUnsafeBytes(of: name.version) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The kernel log (`klogctl(SYSLOG_ACTION_READ_ALL)`, what `dmesg` prints), or `nil` when this
    /// process may not read it.
    public static func readKernelLog() -> String? {
        typealias KlogCtl = @convention(c) (CInt, UnsafeMutablePointer<CChar>?, CInt) -> CInt
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "klogctl") else { return nil }
        let klogctl = unsafeBitCast(symbol, to: KlogCtl.self)
        let size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, nil, 0)
        guard size > 0 else { return nil }
        var bytes = [CChar](repeating: 0, count: Int(size))
        let read = bytes.withUnsafeMutableBufferPointer { klogctl(3 /* SYSLOG_ACTION_READ_ALL */, $0.baseAddress, size) }
        guard read >= 0 else { return nil }
        return String(decoding: bytes.prefix(Int(read)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// This machine, from all three pieces of evidence.
    public static func current() -> Verdict {
        Evidence.gather(kernel: SystemKernel()).verdict
    }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
        var text = self
        while let last = text.last, predicate(last) { text.removeLast() }
        return text
    }
}
