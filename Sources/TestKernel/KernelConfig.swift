/// The project's test-kernel configuration: merged over `make tinyconfig` for x86_64.
///
/// Changing any line changes the cache key, so the next `kcovctl vm build` rebuilds.
public enum KernelConfig {
    /// Options on top of tinyconfig: a 9p-rooted SMP guest with kcov (both modes), debugfs,
    /// kprobes and perf events, a serial console, syscalls ordinary programs expect (madvise,
    /// inotify, membarrier, rseq) that tinyconfig leaves out, memory protection keys (the
    /// collector's write-protected buffer mode, where the CPU has PKU), and DWARF line and inline
    /// information (reduced: no type info) for the symbolizer and reports. Like the kernels users
    /// run, it has loadable modules (the project's test module, ``TestModule``, is built against it)
    /// and KASLR (the runner boots with `nokaslr` unless a run asks for a random slide), and it
    /// embeds its own `.config` (`CONFIG_IKCONFIG`), which `--kernel`'s check reads.
    public static let common = """
        CONFIG_64BIT=y
        CONFIG_SMP=y
        CONFIG_X86_MPPARSE=y
        CONFIG_NR_CPUS=4
        CONFIG_PRINTK=y
        CONFIG_TTY=y
        CONFIG_SERIAL_8250=y
        CONFIG_SERIAL_8250_CONSOLE=y
        CONFIG_BINFMT_ELF=y
        CONFIG_BINFMT_SCRIPT=y
        CONFIG_MULTIUSER=y
        CONFIG_FUTEX=y
        CONFIG_EPOLL=y
        CONFIG_SIGNALFD=y
        CONFIG_TIMERFD=y
        CONFIG_EVENTFD=y
        CONFIG_SHMEM=y
        CONFIG_AIO=y
        CONFIG_FILE_LOCKING=y
        CONFIG_ADVISE_SYSCALLS=y
        CONFIG_INOTIFY_USER=y
        CONFIG_MEMBARRIER=y
        CONFIG_RSEQ=y
        CONFIG_POSIX_TIMERS=y
        CONFIG_HIGH_RES_TIMERS=y
        CONFIG_PROC_FS=y
        CONFIG_PROC_SYSCTL=y
        CONFIG_SYSFS=y
        CONFIG_TMPFS=y
        CONFIG_DEVTMPFS=y
        CONFIG_UNIX=y
        CONFIG_NET=y
        CONFIG_PCI=y
        CONFIG_VIRTIO_MENU=y
        CONFIG_VIRTIO=y
        CONFIG_VIRTIO_PCI=y
        CONFIG_NET_9P=y
        CONFIG_NET_9P_VIRTIO=y
        CONFIG_NETWORK_FILESYSTEMS=y
        CONFIG_9P_FS=y
        CONFIG_DEBUG_KERNEL=y
        CONFIG_DEBUG_FS=y
        CONFIG_KCOV=y
        CONFIG_KCOV_ENABLE_COMPARISONS=y
        CONFIG_KCOV_INSTRUMENT_ALL=y
        CONFIG_KALLSYMS=y
        CONFIG_KALLSYMS_ALL=y
        CONFIG_KPROBES=y
        CONFIG_FTRACE=y
        CONFIG_KPROBE_EVENTS=y
        CONFIG_PERF_EVENTS=y
        CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS=y
        CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y
        CONFIG_DEBUG_INFO_REDUCED=y
        CONFIG_MODULES=y
        CONFIG_MODULE_UNLOAD=y
        CONFIG_RELOCATABLE=y
        CONFIG_RANDOMIZE_BASE=y
        CONFIG_IKCONFIG=y
        CONFIG_IKCONFIG_PROC=y

        """

    /// Options one kernel version needs on top of ``common``, with why.
    ///
    /// - 6.1: `9P_FS` depends on `INET && NET_9P` there (`fs/9p/Kconfig`; 6.12 needs only
    ///   `NET_9P`), so without `CONFIG_INET` olddefconfig drops the root filesystem. IPv6, which
    ///   `INET` would turn on by default, stays off: nothing here uses it, and it is a large
    ///   instrumented subsystem to compile.
    static func versionOptions(for source: KernelSource) -> String {
        switch source {
        case .v6_12: ""
        case .v6_1: """
            CONFIG_INET=y
            # CONFIG_IPV6 is not set

            """
        }
    }

    /// Options of ``versionOptions(for:)`` the built `.config` must keep, beyond ``required(for:)``'s common ones.
    static func versionRequired(for source: KernelSource) -> [String] {
        switch source {
        case .v6_12: []
        case .v6_1: ["CONFIG_INET=y"]
        }
    }

    /// The fragment merged over tinyconfig for one kernel version.
    public static func fragment(for source: KernelSource) -> String {
        common + versionOptions(for: source)
    }

    /// Options the built `.config` must contain; the build fails if olddefconfig dropped one.
    public static func required(for source: KernelSource) -> [String] {
        ["CONFIG_KCOV=y", "CONFIG_ADVISE_SYSCALLS=y", "CONFIG_KCOV_ENABLE_COMPARISONS=y", "CONFIG_DEBUG_FS=y", "CONFIG_9P_FS=y",
         "CONFIG_NET_9P_VIRTIO=y", "CONFIG_KPROBES=y", "CONFIG_KPROBE_EVENTS=y", "CONFIG_PERF_EVENTS=y",
         "CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS=y",
         "CONFIG_DEBUG_INFO=y", "CONFIG_DEBUG_INFO_REDUCED=y", "CONFIG_MODULES=y", "CONFIG_MODULE_UNLOAD=y",
         "CONFIG_RANDOMIZE_BASE=y", "CONFIG_IKCONFIG=y"] + versionRequired(for: source)
    }
}
