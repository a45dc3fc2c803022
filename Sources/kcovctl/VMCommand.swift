import ArgumentParser
import Foundation
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
            abstract: "Run a command in the test kernel (host root shared read-only) and exit with its status.")

        @OptionGroup var guest: GuestOptions

        @Argument(parsing: .postTerminator, help: "The command to run in the guest, after --.")
        var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else { throw ValidationError("name a command after --, for example: kcovctl vm run -- uname -a") }
        }

        func run() throws {
            let result: GuestResult
            do {
                result = try GuestLauncher(guest).run(command)
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

    @Option(help: "Which test kernel to boot: 6.12 (the default) or 6.1 (`kcovctl vm build --source`).", transform: kernelSource)
    var source: KernelSource?

    @Flag(help: "Boot with KASLR (a random kernel and module base); without it the runner passes nokaslr.")
    var kaslr = false

    /// Whether any of these options was given (they apply only to commands run in a guest).
    var given: Bool { kvm || bootTimeout != nil || source != nil || kaslr }

    func validate() throws {
        if let bootTimeout, !(1...86_400).contains(bootTimeout) {
            throw ValidationError("--boot-timeout must be between 1 and 86400 seconds, not \(bootTimeout)")
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

/// Builds or reuses the test kernel and runs one command in it.
struct GuestLauncher {
    var options: GuestOptions

    init(_ options: GuestOptions = GuestOptions()) {
        self.options = options
    }

    func run(_ command: [String]) throws -> GuestResult {
        let builder = TestKernelBuilder(source: options.source ?? .v6_12)
        let kernel = try builder.build(progress: note)
        let machine = VirtualMachine(
            kernelImage: kernel.bzImage, workDirectory: builder.cacheDirectory + "/vm",
            accelerator: options.kvm ? .kvm : .tcg, bootTimeoutSeconds: Double(options.bootTimeout ?? 300),
            randomizeBase: options.kaslr)
        return try machine.run(command)
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
