import ArgumentParser
import BackendSelection
import Foundation
import KernelPreflight
import TestKernel
import VirtualMachine

/// `kcovctl vm`: the project's test kernel and the QEMU runner.
struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Build the test kernel, or run a command in it under QEMU.",
        subcommands: [Build.self, Run.self])

    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build a test kernel from Debian's linux-source-VERSION and the test module against it, or reuse the cached ones.")

        @Option(help: "The kernel version: 6.12 (the default) or 6.1.", transform: kernelSource)
        var source: KernelSource = .v6_12

        func run() throws {
            do {
                let kernel = try TestKernelBuilder(source: source).build(progress: note)
                print("bzImage: \(kernel.bzImage)")
                print("vmlinux: \(kernel.vmlinux)")
                print("test module: \(kernel.testModule)")
            } catch {
                throw fail(error)
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a command in the test kernel, or in a --kernel image, with the host root shared read-only; exit with its status.")

        @OptionGroup var guest: GuestOptions

        @Argument(parsing: .postTerminator, help: "The command to run in the guest, after --.")
        var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else { throw ValidationError("name a command after --, for example: kcovctl vm run -- uname -a") }
        }

        func run() throws {
            let result: GuestResult
            do {
                result = try GuestLauncher(guest, needs: .command).run(command)
            } catch {
                throw fail(error)
            }
            StandardStream.writeError(result.standardError)
            do { try StandardStream.writeOutput(result.standardOutput) } catch { throw fail(error) }
            note(String(format: "guest ran `%@` in %.1f s (boot included), status %d", command.joined(separator: " "), result.seconds, result.exitStatus))
            if result.exitStatus != 0 { throw ExitCode(result.exitStatus) }
        }
    }
}

/// How commands that run a guest run it.
struct GuestOptions: ParsableArguments {
    @Flag(help: "Run the guest with KVM instead of software emulation (may hang on some hosts).")
    var kvm = false

    @Option(
        name: .customLong("boot-timeout"), parsing: .unconditional,
        help: "Seconds the guest may take to boot and start the command before it is reported as hung (default 300).")
    var bootTimeout: Int?

    @Option(
        name: .customLong("guest-timeout"), parsing: .unconditional,
        help: "Seconds the whole guest run (boot and command) may take before it is stopped and its last output shown (default 1800).")
    var guestTimeout: Int?

    @Option(help: "Which test kernel to boot: 6.12 (the default) or 6.1 (`kcovctl vm build --source`).", transform: kernelSource)
    var source: KernelSource?

    @Flag(help: "Boot with KASLR (a random kernel and module base); without it the runner passes nokaslr.")
    var kaslr = false

    @Option(
        name: .customLong("kernel"),
        help: ArgumentHelp(
            "Boot this x86_64 bzImage instead of the test kernel, after checking in seconds that it has what the guest needs (Docs/guest-kernels.md).",
            valueName: "bzImage"))
    var kernel: String?

    @Option(help: ArgumentHelp("With --kernel: its unstripped vmlinux, which must be the same build.", valueName: "vmlinux"))
    var vmlinux: String?

    @Option(
        name: .customLong("kernel-config"),
        help: ArgumentHelp(
            "With --kernel: its .config (a distribution kernel's /boot/config-RELEASE), read when the kernel does not embed its own (CONFIG_IKCONFIG).",
            valueName: "file"))
    var kernelConfig: String?

    /// Whether any of these options was given (they apply only to commands run in a guest).
    var given: Bool { kvm || bootTimeout != nil || guestTimeout != nil || source != nil || kaslr || kernel != nil || vmlinux != nil || kernelConfig != nil }

    /// The usage error for guest options given without `--vm`.
    static let onlyWithVM = "--kvm, --boot-timeout, --guest-timeout, --source, --kaslr, --kernel, --vmlinux and --kernel-config only apply with --vm"

    func validate() throws {
        if let bootTimeout, !(1...86_400).contains(bootTimeout) {
            throw ValidationError("--boot-timeout must be between 1 and 86400 seconds, not \(bootTimeout)")
        }
        if let guestTimeout, !(1...604_800).contains(guestTimeout) {
            throw ValidationError("--guest-timeout must be between 1 and 604800 seconds (a week), not \(guestTimeout)")
        }
        if kernel != nil && source != nil {
            throw ValidationError("--source picks one of the project's test kernels and --kernel boots your own: give one of them")
        }
        if kernel == nil, let flag = vmlinux != nil ? "--vmlinux" : kernelConfig != nil ? "--kernel-config" : nil {
            throw ValidationError("\(flag) describes the kernel --kernel BZIMAGE boots; the test kernel needs neither")
        }
    }
}

/// Reads `--source VERSION` (KernelSource lives in the TestKernel library, which has no argument parser).
func kernelSource(_ argument: String) throws -> KernelSource {
    guard let source = KernelSource(rawValue: argument) else {
        throw ValidationError("--source must be one of \(KernelSource.allCases.map(\.rawValue).joined(separator: ", ")), not \(argument)")
    }
    return source
}

/// Builds or reuses the test kernel, or checks the user's `--kernel`, and runs one command in it.
struct GuestLauncher {
    var options: GuestOptions
    /// What the command needs of a user's kernel; the test kernels have all of it.
    var needs: GuestRequirements

    init(_ options: GuestOptions = GuestOptions(), needs: GuestRequirements = GuestLauncher.needs(backend: BackendSelection.auto)) {
        self.options = options
        self.needs = needs
    }

    /// What a guest run with `backend` needs, from its capabilities' kernel options: for `auto`,
    /// those of the first backend it tries on a Linux kernel (kcov, where the kernel has it);
    /// only a kernel that runs the command for no backend (`--all`, whose unavailable backends
    /// the guest run skips) or an unknown name (which the guest run then refuses).
    static func needs(backend: String?) -> GuestRequirements {
        let candidates = BackendSelection.system.candidates
        let chosen = backend == BackendSelection.auto ? candidates.first { $0.systemName == "Linux" } : candidates.first { $0.backend.name == backend }
        guard let chosen else { return .command }
        return GuestRequirements(backend: chosen.backend.name, capabilities: chosen.backend.capabilities)
    }

    func run(_ command: [String]) throws -> GuestResult {
        let kernelImage: String
        if let kernel = options.kernel {
            kernelImage = try checkedKernel(kernel)
        } else {
            kernelImage = try TestKernelBuilder(source: options.source ?? .v6_12).build(progress: note).bzImage
        }
        let machine = VirtualMachine(
            kernelImage: kernelImage, workDirectory: TestKernelBuilder.defaultCacheDirectory + "/vm",
            accelerator: options.kvm ? .kvm : .tcg, timeoutSeconds: Double(options.guestTimeout ?? 1800), bootTimeoutSeconds: Double(options.bootTimeout ?? 300),
            randomizeBase: options.kaslr)
        do {
            return try machine.run(command)
        } catch let error as VirtualMachineError {
            // The library names no options: say which one gives the guest longer.
            switch error.kind {
            case .timedOut: throw VirtualMachineError(error.kind, error.description + "\ngive the command longer with --guest-timeout SECONDS")
            case .bootTimedOut: throw VirtualMachineError(error.kind, error.description + "\ngive the boot longer with --boot-timeout SECONDS")
            case .setup, .noStatus: throw error
            }
        }
    }

    /// Runs the preflight on `--kernel` (Docs/guest-kernels.md) and returns the kernel's absolute path.
    private func checkedKernel(_ kernel: String) throws -> String {
        let started = Date()
        let absolute = URL(fileURLWithPath: kernel).standardizedFileURL.path
        let report: PreflightReport
        do {
            report = try Preflight.check(
                kernel: kernel, vmlinux: options.vmlinux, configuration: options.kernelConfig, requirements: needs) { note("note: \($0)") }
        } catch {
            // The library names no flags: say which one gives a configuration.
            var described = error
            if error.code == .noConfiguration { described.message += "; give the .config with --kernel-config FILE" }
            throw described
        }
        let version = report.image.kernelVersion.map { "\($0), " } ?? ""
        let match = report.vmlinuxMatch.map { "; --vmlinux matches it by \($0)" } ?? ""
        note(String(format: "checked %@ (%@%@-compressed, boot protocol %@) in %.1f s: it can %@ (config: %@%@)",
            kernel, version, report.image.compression.rawValue, report.image.protocolText, Date().timeIntervalSince(started),
            needs.purpose, report.configurationSource, match))
        return absolute
    }

    /// This executable's absolute path, which the guest sees too through the shared root.
    static func selfPath() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    /// The directory of this executable, where the build puts the follow agent beside it.
    static func selfDirectory() throws -> String {
        URL(fileURLWithPath: try selfPath()).deletingLastPathComponent().path
    }
}
