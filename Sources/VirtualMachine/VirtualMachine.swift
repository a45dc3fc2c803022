public import Foundation

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
    public var description: String
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

    public init(
        kernelImage: String, workDirectory: String, accelerator: Accelerator = .tcg, cpus: Int = 2,
        memoryMiB: Int = 2048, timeoutSeconds: Double = 1800
    ) {
        self.kernelImage = kernelImage
        self.workDirectory = workDirectory
        self.accelerator = accelerator
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.timeoutSeconds = timeoutSeconds
    }

    /// Finds util-linux's `setpriv` (it starts QEMU with a parent-death signal).
    static func setprivPath() throws -> String {
        for directory in ["/usr/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: directory + "/setpriv") {
            return directory + "/setpriv"
        }
        throw VirtualMachineError(description: "setpriv is not installed: run Scripts/setup.sh (apt-get install util-linux)")
    }

    /// Finds `qemu-system-x86_64` on `PATH`.
    public static func qemuPath() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/qemu-system-x86_64"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw VirtualMachineError(description: "qemu-system-x86_64 is not installed: run Scripts/setup.sh (apt-get install qemu-system-x86)")
    }

    /// Runs `command` (a program and its arguments) in a fresh guest and returns its output and status.
    public func run(
        _ command: [String], environment: [String: String] = [:],
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) throws -> GuestResult {
        precondition(!command.isEmpty, "a guest command needs a program")
        let qemu = try Self.qemuPath()
        guard FileManager.default.fileExists(atPath: kernelImage) else {
            throw VirtualMachineError(description: "no kernel image at \(kernelImage): run `kcovctl vm build`")
        }
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        let jobPath = workDirectory + "/job-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: jobPath, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: jobPath) }

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
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                process.waitUntilExit()
                throw VirtualMachineError(description:
                    "the guest did not finish within \(Int(timeoutSeconds)) s; console:\n\(tail(jobPath + "/console.log"))")
            }
            usleep(50_000)
        }
        let seconds = Date().timeIntervalSince(started)
        guard let statusText = try? String(contentsOfFile: jobPath + "/status", encoding: .utf8),
              let status = Int32(statusText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw VirtualMachineError(description:
                "the guest ended without running the command (QEMU status \(process.terminationStatus)); QEMU said: \(tail(qemuLog)); console:\n\(tail(jobPath + "/console.log"))")
        }
        return GuestResult(
            standardOutput: FileManager.default.contents(atPath: jobPath + "/stdout") ?? Data(),
            standardError: FileManager.default.contents(atPath: jobPath + "/stderr") ?? Data(),
            exitStatus: status, seconds: seconds)
    }

    func qemuArguments(jobPath: String) -> [String] {
        // SeaBIOS's MP table lists one processor per socket: without ACPI the guest sees only sockets.
        var arguments = ["-machine", "q35", "-m", "\(memoryMiB)", "-smp", "\(cpus),sockets=\(cpus),cores=1,threads=1"]
        switch accelerator {
        case .tcg: arguments += ["-accel", "tcg", "-cpu", "max"]
        case .kvm: arguments += ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
        }
        let rootFlags = "trans=virtio,version=9p2000.L,msize=262144"
        arguments += [
            "-nographic", "-no-reboot", "-display", "none", "-monitor", "none",
            "-serial", "file:\(jobPath)/console.log",
            "-kernel", kernelImage,
            "-append", "console=ttyS0 root=/dev/root rootfstype=9p rootflags=\(rootFlags) ro init=\(jobPath)/init panic=-1 quiet loglevel=3",
            "-fsdev", "local,id=root,path=/,readonly=on,security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=root,mount_tag=/dev/root",
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
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(15).joined(separator: "\n")
    }
}
