import Foundation

/// What a preflight that passed found.
public struct PreflightReport: Sendable {
    public var image: BootImage
    /// Where the checked configuration came from (``KernelConfiguration/source``).
    public var configurationSource: String
    /// How the vmlinux was matched to the bzImage ("build id 8c1f…", "linux_banner"); nil
    /// without a vmlinux.
    public var vmlinuxMatch: String?
}

/// Whether a user's kernel can run a guest command, decided in seconds before it is booted: a
/// kernel that cannot must be refused with what it lacks, never left to hang until a timeout.
///
/// The bzImage's boot header is read (``BootImage``), its payload decompressed with the system's
/// tool and read as an ELF file; the configuration checked against ``GuestRequirements`` is the
/// one the kernel embeds (`CONFIG_IKCONFIG=y`, kernel/configs.c), else the vmlinux's, else the
/// given `.config`. A vmlinux must be the same build: equal build ids, or, when either has none,
/// a `linux_banner` that agrees with the header's `kernel_version`.
public enum Preflight {
    /// Checks `kernel` (a bzImage), with `vmlinux` and a `.config` file if given. `note` receives
    /// what the check passed over, one sentence each, as it goes (so a refusal comes with them): a
    /// decompressor not installed when a vmlinux or .config can stand in, a given .config not read
    /// because the kernel embeds its own, a vmlinux that could not be compared.
    ///
    /// Throws ``PreflightError``: any of its codes for a bad bzImage, vmlinux or `.config`;
    /// ``PreflightError/Code/mismatch`` for a vmlinux of another build;
    /// ``PreflightError/Code/noConfiguration`` when there is nothing to check;
    /// ``PreflightError/Code/missingOptions`` naming every option `requirements` lists that the
    /// kernel lacks or has as a module.
    public static func check(
        kernel: String, vmlinux vmlinuxPath: String? = nil, configuration configurationPath: String? = nil,
        requirements: GuestRequirements, note: (String) -> Void = { _ in }
    ) throws(PreflightError) -> PreflightReport {
        let image = try BootImage(path: kernel)
        var vmlinux: Vmlinux?
        if let vmlinuxPath { vmlinux = try Vmlinux(path: vmlinuxPath) }
        var payload: PayloadELF?
        do {
            payload = try PayloadELF(try image.decompressedPayload(), image: image)
        } catch where error.code == .toolMissing && (vmlinux != nil || configurationPath != nil) {
            note("\(error.message); checked without the payload")
        }

        var match: String?
        if let vmlinux {
            match = try matchVmlinux(vmlinux, image: image, payload: payload)
            if match == nil {
                note("\(vmlinux.path) could not be compared with \(kernel): the bzImage has neither a readable payload build id nor a kernel_version string")
            }
        }

        let embedded = payload?.configuration ?? vmlinux?.configuration
        if embedded != nil, let configurationPath {
            note("\(configurationPath) was not read: the kernel embeds its own configuration")
        }
        var given: KernelConfiguration?
        if embedded == nil, let configurationPath { given = try KernelConfiguration(contentsOf: configurationPath) }
        guard let configuration = embedded ?? given else {
            let also = vmlinux.map { ", and neither does \($0.path)" } ?? ""
            throw PreflightError(.noConfiguration, path: kernel,
                "embeds no configuration (it was built without CONFIG_IKCONFIG=y)\(also), so what it has built in cannot be checked: give the .config it was built with (a distribution kernel's is /boot/config-RELEASE), or rebuild it with CONFIG_IKCONFIG=y")
        }
        let missing = requirements.missing(in: configuration)
        guard missing.isEmpty else {
            let list = missing.map { "  \($0)" }.joined(separator: "\n")
            throw PreflightError(.missingOptions, path: kernel,
                "cannot \(requirements.purpose) in the guest: it lacks \(missing.count == 1 ? "an option" : "\(missing.count) options") the runner needs (read from \(configuration.source)):\n\(list)\nrebuild it with each set to y (Docs/guest-kernels.md says why each is needed)",
                missing: missing)
        }
        return PreflightReport(image: image, configurationSource: configuration.source, vmlinuxMatch: match)
    }

    /// How `vmlinux` matches `image` ("build id …" or "linux_banner"), nil when nothing could be
    /// compared; throws ``PreflightError/Code/mismatch`` when it is another build.
    static func matchVmlinux(_ vmlinux: Vmlinux, image: BootImage, payload: PayloadELF?) throws(PreflightError) -> String? {
        if let ours = payload?.buildID, let theirs = vmlinux.buildID {
            guard ours == theirs else {
                throw PreflightError(.mismatch, path: vmlinux.path,
                    "is another build than \(image.path): its build id is \(hex(theirs)), the bzImage's kernel has \(hex(ours)); give the vmlinux from the build that made this bzImage")
            }
            return "build id \(hex(ours))"
        }
        guard let version = image.kernelVersion else { return nil }
        guard bannerMatches(vmlinux.banner, headerVersion: version) else {
            throw PreflightError(.mismatch, path: vmlinux.path,
                "is another build than \(image.path): its banner is \"\(vmlinux.banner)\", the bzImage's header says \"\(version)\"; give the vmlinux from the build that made this bzImage")
        }
        return "linux_banner"
    }

    /// Whether `banner` (init/version.c: "Linux version RELEASE (BUILDER) (COMPILER) VERSION")
    /// names the build whose boot header says `headerVersion` (arch/x86/boot/version.c:
    /// "RELEASE (BUILDER) VERSION"): the same release, builder and version (build number and date).
    static func bannerMatches(_ banner: String, headerVersion: String) -> Bool {
        guard let open = headerVersion.range(of: " ("), let close = headerVersion.range(of: ") ", range: open.upperBound..<headerVersion.endIndex) else {
            return banner.hasPrefix("Linux version \(headerVersion)")
        }
        let releaseAndBuilder = headerVersion[..<close.upperBound]
        let version = headerVersion[close.upperBound...]
        return banner.hasPrefix("Linux version \(releaseAndBuilder)(") && banner.hasSuffix(") \(version)")
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
