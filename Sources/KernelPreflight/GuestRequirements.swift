public import CoverageAPI

/// A kernel option a guest needs built in (`CONFIG_OPTION=y`), and why.
public struct KernelRequirement: Sendable, Hashable {
    /// The option without its `CONFIG_` prefix, as Kconfig names it: `9P_FS`.
    public var option: String
    /// What the guest does with it, one phrase.
    public var reason: String

    public init(_ option: String, _ reason: String) {
        self.option = option
        self.reason = reason
    }
}

/// What a kernel must have built in to run a guest command under the project's runner
/// (VirtualMachine: QEMU's q35 machine, the host's root over virtio-9p, a shell-script init, the
/// console on the first serial port, no initramfs). Docs/guest-kernels.md explains each option.
public struct GuestRequirements: Sendable, Hashable {
    /// What these requirements allow, for messages: "run a command", "trace with the linux backend".
    public var purpose: String
    public var options: [KernelRequirement]

    public init(purpose: String, options: [KernelRequirement]) {
        self.purpose = purpose
        self.options = options
    }

    /// Booting and running any command (`kcovctl vm run`): the root file system, the init script
    /// and what it mounts, and the console the runner reports a hung boot from.
    public static let command = GuestRequirements(purpose: "run a command", options: [
        KernelRequirement("64BIT", "the runner boots x86_64 kernels and the host's 64-bit programs"),
        KernelRequirement("PCI", "QEMU's q35 machine attaches the virtio devices over PCI"),
        KernelRequirement("VIRTIO_PCI", "the 9p shares are virtio PCI devices"),
        KernelRequirement("NET_9P", "the 9p protocol, for the root file system"),
        KernelRequirement("NET_9P_VIRTIO", "9p over virtio: the host's root and the job folder"),
        KernelRequirement("9P_FS", "the root file system is the host's, over 9p"),
        KernelRequirement("SERIAL_8250", "the console is the first serial port"),
        KernelRequirement("SERIAL_8250_CONSOLE", "kernel messages on ttyS0: what a hung boot is reported with"),
        KernelRequirement("BINFMT_ELF", "every program, /bin/sh first, is an ELF executable"),
        KernelRequirement("BINFMT_SCRIPT", "the guest's init is a #! shell script"),
        KernelRequirement("PROC_FS", "the init mounts /proc"),
        KernelRequirement("SYSFS", "the init mounts /sys"),
        KernelRequirement("DEVTMPFS", "the init mounts /dev"),
        KernelRequirement("TMPFS", "the init mounts a writable /dev/shm, the guest's HOME and TMPDIR"),
    ])

    /// A guest run with a backend (`trace --vm`, `conformance --vm`): ``command`` and the kernel
    /// options the backend's capabilities name (``BackendCapabilities/kernelOptions``); only
    /// ``command`` for a backend that names none.
    public init(backend name: String, capabilities: BackendCapabilities) {
        let own = capabilities.kernelOptions.map { KernelRequirement($0.name, $0.reason) }
        self.init(purpose: own.isEmpty ? Self.command.purpose : "trace with the \(name) backend", options: Self.command.options + own)
    }

    /// The options `configuration` lacks, in this list's order; empty when it has them all.
    public func missing(in configuration: KernelConfiguration) -> [MissingOption] {
        options.compactMap { requirement in
            switch configuration.setting(requirement.option) {
            case .builtIn: nil
            case .module: MissingOption(requirement: requirement, state: .module)
            case .notSet: MissingOption(requirement: requirement, state: .notSet)
            case .value(let value): MissingOption(requirement: requirement, state: .other(value))
            }
        }
    }
}
