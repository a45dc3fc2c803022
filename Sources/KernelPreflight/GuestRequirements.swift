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
    /// What these requirements allow, for messages: "run a command", "trace with kcov".
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

    /// kcov inside the guest (`trace --vm`, `conformance --vm` with the linux backend): the
    /// coverage device is `/sys/kernel/debug/kcov`.
    public static let kcov = GuestRequirements(purpose: "collect coverage with kcov", options: command.options + [
        KernelRequirement("DEBUG_FS", "the kcov device is /sys/kernel/debug/kcov"),
        KernelRequirement("KCOV", "the coverage device itself"),
    ])

    /// The kprobe backend inside the guest: counting kprobes through the kprobe PMU, functions
    /// named from `/proc/kallsyms`.
    public static let kprobe = GuestRequirements(purpose: "count function calls with kprobes", options: command.options + [
        KernelRequirement("KALLSYMS", "functions are named from /proc/kallsyms"),
        KernelRequirement("PERF_EVENTS", "counting probes are perf events"),
        KernelRequirement("KPROBES", "the probes themselves"),
        KernelRequirement("KPROBE_EVENTS", "the kprobe PMU perf_event_open takes"),
    ])

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
