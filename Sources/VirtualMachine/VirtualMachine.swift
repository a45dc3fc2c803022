public import Foundation
import Synchronization

/// What a command run in the guest printed and how it ended.
public struct GuestResult: Sendable {
    public var standardOutput: Data
    public var standardError: Data
    /// The command's exit status in the guest.
    public var exitStatus: Int32
    /// Seconds from starting QEMU to QEMU's exit.
    public var seconds: Double
}

/// Why a guest run failed (as opposed to the command failing inside it).
public struct VirtualMachineError: Error, CustomStringConvertible {
    /// Which failure, for a caller that adds its own advice (a command line names its options).
    public enum Kind: Sendable, Equatable {
        /// A host tool (QEMU, setpriv) or the kernel image is missing.
        case setup
        /// The guest did not start the command within ``VirtualMachine/bootTimeoutSeconds``.
        case bootTimedOut
        /// The command did not finish within ``VirtualMachine/timeoutSeconds``.
        case timedOut
        /// QEMU ended without the command's exit status (the guest crashed or QEMU failed).
        case noStatus
    }

    public var kind: Kind
    /// What failed and what the guest last printed.
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// Boots a kernel under QEMU with the host's root shared read-only over 9p and runs one command in
/// the guest as PID 1's child, with the host's working directory, `PATH` and the given environment.
///
/// The guest mounts proc, sysfs, debugfs, tracefs, devtmpfs, a tmpfs on `/dev/shm` (its `TMPDIR`
/// and `HOME`: the host's `/tmp` stays visible, read-only, so a checkout there still runs), and a
/// writable 9p share (the job folder) where the command's output and exit status land. When the command exits, init
/// exits, the kernel panics and reboots, and `-no-reboot` ends QEMU.
public struct VirtualMachine: Sendable {
    /// How QEMU executes guest code.
    public enum Accelerator: String, Sendable, CaseIterable {
        /// Software emulation: slow but works on every machine of this kind.
        case tcg
        /// Hardware virtualisation: opt-in, since guests have been seen to hang before booting.
        case kvm
    }

    public var kernelImage: String
    /// Parent of the per-run job folders.
    public var workDirectory: String
    public var accelerator: Accelerator
    public var cpus: Int
    public var memoryMiB: Int
    /// QEMU is killed after this many seconds.
    public var timeoutSeconds: Double
    /// Seconds the guest may take from starting QEMU to starting the command; past that the guest
    /// is reported as hung (with the last lines it printed) and QEMU is killed. The kernel boots
    /// with `quiet`, so silence on the console alone is normal until then.
    public var bootTimeoutSeconds: Double
    /// Whether the kernel may place itself at a random address (KASLR, `CONFIG_RANDOMIZE_BASE`).
    /// Off by default (`nokaslr` on the command line), so `/proc/kallsyms` shows the vmlinux's
    /// own addresses; kcov records PCs with the slide subtracted either way (Docs/modules.md).
    public var randomizeBase: Bool

    public init(
        kernelImage: String, workDirectory: String, accelerator: Accelerator = .tcg, cpus: Int = 2,
        memoryMiB: Int = 2048, timeoutSeconds: Double = 1800, bootTimeoutSeconds: Double = 300,
        randomizeBase: Bool = false
    ) {
        self.randomizeBase = randomizeBase
        self.kernelImage = kernelImage
        self.workDirectory = workDirectory
        self.accelerator = accelerator
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.timeoutSeconds = timeoutSeconds
        self.bootTimeoutSeconds = bootTimeoutSeconds
    }

    /// Finds util-linux's `setpriv` (it starts QEMU with a parent-death signal).
    static func setprivPath() throws -> String {
        for directory in ["/usr/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: directory + "/setpriv") {
            return directory + "/setpriv"
        }
        throw VirtualMachineError(.setup, "setpriv is not installed: run Scripts/setup.sh (apt-get install util-linux)")
    }

    /// Finds `qemu-system-x86_64` on `PATH`.
    public static func qemuPath() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/qemu-system-x86_64"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw VirtualMachineError(.setup, "qemu-system-x86_64 is not installed: run Scripts/setup.sh (apt-get install qemu-system-x86)")
    }

    /// Runs `command` (a program and its arguments) in a fresh guest and returns its output and status.
    ///
    /// Each run has its own job folder, `job-PID-N` in ``workDirectory``, removed when the run ends
    /// by any path: a return, an error, or SIGINT, SIGTERM or SIGHUP (the folder goes, QEMU is
    /// killed, then the signal takes its previous action, by default ending the process). A
    /// SIGKILLed process cannot clean up: its QEMU dies with it (a parent-death signal), and the
    /// next run removes the folders of job processes that are gone.
    ///
    /// Throws ``VirtualMachineError`` when QEMU or the kernel image is missing, when the guest does
    /// not start the command within ``bootTimeoutSeconds`` (hung while booting) or finish it within
    /// ``timeoutSeconds``, or when it ends without running the command; each names the last lines
    /// the guest printed.
    public func run(
        _ command: [String], environment: [String: String] = [:],
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) throws -> GuestResult {
        precondition(!command.isEmpty, "a guest command needs a program")
        let qemu = try Self.qemuPath()
        guard FileManager.default.fileExists(atPath: kernelImage) else {
            throw VirtualMachineError(.setup, "no kernel image at \(kernelImage): pass the bzImage of a built kernel")
        }
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        Self.removeAbandonedJobFolders(in: workDirectory)
        let jobPath = workDirectory + "/job-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: jobPath, withIntermediateDirectories: false)
        InterruptCleanup.register(jobPath)
        defer {
            InterruptCleanup.unregister(jobPath)
            try? FileManager.default.removeItem(atPath: jobPath)
        }

        var variables = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": "/dev/shm", "TMPDIR": "/dev/shm", "KCOV_GUEST": "1",
        ]
        variables.merge(environment) { _, new in new }
        let script = Self.initScript(
            command: command, environment: variables, workingDirectory: workingDirectory, jobPath: jobPath)
        try script.write(toFile: jobPath + "/init", atomically: true, encoding: .utf8)
        chmod(jobPath + "/init", 0o755)

        // QEMU must not outlive kcovctl, even a SIGKILLed one: util-linux's setpriv sets
        // PR_SET_PDEATHSIG (kept across its execve of QEMU), so the kernel sends QEMU SIGKILL
        // when the thread that started it is gone. That thread waits below until QEMU exits.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.setprivPath())
        process.arguments = ["--pdeathsig", "KILL", "--", qemu] + qemuArguments(jobPath: jobPath)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let qemuLog = jobPath + "/qemu.log"
        _ = FileManager.default.createFile(atPath: qemuLog, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: qemuLog))
        let started = Date()
        try process.run()
        let deadline = started.addingTimeInterval(timeoutSeconds)
        let bootDeadline = started.addingTimeInterval(bootTimeoutSeconds)
        var commandStarted = false
        while process.isRunning {
            if InterruptCleanup.pendingSignal != 0 {
                process.terminate()
                InterruptCleanup.finish()
            }
            if !commandStarted {
                commandStarted = FileManager.default.fileExists(atPath: jobPath + "/started")
                if !commandStarted && Date() > bootDeadline {
                    Self.stop(process)
                    throw VirtualMachineError(.bootTimedOut,
                        "the guest is hung: it did not start the command within \(Int(bootTimeoutSeconds)) s of booting; it last printed:\n\(tail(jobPath + "/console.log"))")
                }
            }
            if Date() > deadline {
                Self.stop(process)
                throw VirtualMachineError(.timedOut,
                    "the guest did not finish within \(Int(timeoutSeconds)) s; the command last wrote to its standard output:\n\(tail(jobPath + "/stdout"))\nand to its standard error:\n\(tail(jobPath + "/stderr"))\nthe console last printed:\n\(tail(jobPath + "/console.log"))")
            }
            usleep(50_000)
        }
        let seconds = Date().timeIntervalSince(started)
        guard let statusText = try? String(contentsOfFile: jobPath + "/status", encoding: .utf8),
              let status = Int32(statusText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw VirtualMachineError(.noStatus,
                "the guest ended without running the command (QEMU status \(process.terminationStatus)); QEMU said: \(tail(qemuLog)); console:\n\(tail(jobPath + "/console.log"))")
        }
        return GuestResult(
            standardOutput: FileManager.default.contents(atPath: jobPath + "/stdout") ?? Data(),
            standardError: FileManager.default.contents(atPath: jobPath + "/stderr") ?? Data(),
            exitStatus: status, seconds: seconds)
    }

    /// Ends QEMU: SIGTERM, then SIGKILL if it is still running 10 s later. QEMU does not always act
    /// on SIGTERM: a TCG guest stopped at its run timeout once kept QEMU running, SIGTERM pending,
    /// for over 20 minutes, and a wait for it alone would have hung kcovctl with it.
    static func stop(_ process: Process) {
        process.terminate()
        let patience = Date().addingTimeInterval(10)
        while process.isRunning && Date() < patience { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Removes the job folders (`job-PID-N`) in `directory` whose process no longer exists: what
    /// a SIGKILLed run left behind. A folder whose PID is alive, or whose name is not a job
    /// folder's, is kept.
    static func removeAbandonedJobFolders(in directory: String) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in entries where name.hasPrefix("job-") {
            let fields = name.split(separator: "-")
            guard fields.count == 3, let pid = pid_t(fields[1]), pid > 0, UInt32(fields[2]) != nil else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
        }
    }

    func qemuArguments(jobPath: String) -> [String] {
        // SeaBIOS's MP table lists one processor per socket: without ACPI the guest sees only sockets.
        var arguments = ["-machine", "q35", "-m", "\(memoryMiB)", "-smp", "\(cpus),sockets=\(cpus),cores=1,threads=1"]
        switch accelerator {
        case .tcg: arguments += ["-accel", "tcg", "-cpu", "max"]
        case .kvm: arguments += ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
        }
        let rootFlags = "trans=virtio,version=9p2000.L,msize=262144"
        // The root share's tag is a plain word, and `root=` names it as is. Both test kernels
        // then hand 9p the same tag: for a `root=` that is no block device, `prepare_namespace`
        // (init/do_mounts.c) mounts the name as the source of a nodev filesystem, but 6.1 first
        // strips a leading `/dev/` from it and 6.12 does not, so the customary `/dev/root` tag
        // would match on 6.12 only.
        let rootTag = "root"
        arguments += [
            "-nographic", "-no-reboot", "-display", "none", "-monitor", "none",
            "-serial", "file:\(jobPath)/console.log",
            "-kernel", kernelImage,
            "-append", "console=ttyS0 root=\(rootTag) rootfstype=9p rootflags=\(rootFlags) ro init=\(jobPath)/init panic=-1 quiet loglevel=3"
                + (randomizeBase ? "" : " nokaslr"),
            "-fsdev", "local,id=root,path=/,readonly=on,security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=root,mount_tag=\(rootTag)",
            "-fsdev", "local,id=job,path=\(jobPath),security_model=none",
            "-device", "virtio-9p-pci,fsdev=job,mount_tag=kcovjob",
        ]
        return arguments
    }

    /// The guest's init: mount what programs expect, run the command with output into the job
    /// share, record its status, and exit (which ends the VM).
    static func initScript(
        command: [String], environment: [String: String], workingDirectory: String, jobPath: String
    ) -> String {
        let exports = environment.keys.sorted().map { "export \($0)=\(shellQuote(environment[$0]!))" }
        return """
            #!/bin/sh
            mount -t proc proc /proc
            mount -t sysfs sysfs /sys
            mount -t debugfs debugfs /sys/kernel/debug
            mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
            mount -t devtmpfs devtmpfs /dev
            mkdir -p /dev/shm
            mount -t tmpfs tmpfs /dev/shm
            mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 kcovjob \(shellQuote(jobPath))
            : >\(shellQuote(jobPath + "/started"))
            \(exports.joined(separator: "\n"))
            cd \(shellQuote(workingDirectory)) || cd /
            \(command.map(shellQuote).joined(separator: " ")) </dev/null >\(shellQuote(jobPath + "/stdout")) 2>\(shellQuote(jobPath + "/stderr"))
            echo $? >\(shellQuote(jobPath + "/status"))

            """
    }

    static func shellQuote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    private func tail(_ path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(none)" }
        if text.isEmpty { return "(nothing)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(15).joined(separator: "\n")
    }
}

/// SIGINT, SIGTERM and SIGHUP while guests run: the handler only records the signal (all it may
/// safely do); the run loop that sees it removes every registered job folder, restores the
/// signals' previous actions and raises the signal again, so the process ends as it would have,
/// and QEMU with it (its parent-death signal). Handlers are installed while at least one run is
/// active and the previous actions restored after the last, so a signal between runs takes its
/// usual action.
private enum InterruptCleanup {
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    /// The signal received, 0 for none. Atomic: written by the handler, read by run loops.
    static let received = Atomic<Int32>(0)
    private static let state = Mutex<(jobs: Set<String>, previous: [Int32: sigaction])>((jobs: [], previous: [:]))

    static var pendingSignal: Int32 { received.load(ordering: .relaxed) }

    static func register(_ jobPath: String) {
        state.withLock { state in
            if state.jobs.isEmpty {
                _ = received.load(ordering: .relaxed)  // initialised before any handler can run
                for signal in signals {
                    var action = sigaction()
                    action.__sigaction_handler.sa_handler = { signal in InterruptCleanup.received.store(signal, ordering: .relaxed) }
                    sigemptyset(&action.sa_mask)
                    var previous = sigaction()
                    sigaction(signal, &action, &previous)
                    // A signal the process ignores (nohup's SIGHUP) stays ignored.
                    if let handler = previous.__sigaction_handler.sa_handler,
                       unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { sigaction(signal, &previous, nil) }
                    state.previous[signal] = previous
                }
            }
            state.jobs.insert(jobPath)
        }
    }

    static func unregister(_ jobPath: String) {
        state.withLock { state in
            state.jobs.remove(jobPath)
            if state.jobs.isEmpty { restore(&state.previous) }
        }
    }

    /// Removes every job folder, restores the previous actions and re-raises the signal.
    static func finish() {
        let signal = received.load(ordering: .relaxed)
        state.withLock { state in
            for job in state.jobs { try? FileManager.default.removeItem(atPath: job) }
            state.jobs.removeAll()
            restore(&state.previous)
        }
        raise(signal)
        // The previous action was a handler that returned: carry on as if the run was cut short.
        received.store(0, ordering: .relaxed)
    }

    private static func restore(_ previous: inout [Int32: sigaction]) {
        for (signal, action) in previous {
            var action = action
            sigaction(signal, &action, nil)
        }
        previous.removeAll()
    }
}
