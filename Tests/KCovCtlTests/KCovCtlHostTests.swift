import Foundation
import TestKernel
import TraceFile
import TestSupport
import Testing

/// kcovctl on the host: exit statuses scripts rely on, one-line errors, and `--vm` plumbing.
@Suite struct KCovCtlHostTests {
    static let hostHasKcov = FileManager.default.fileExists(atPath: "/sys/kernel/debug/kcov")

    @Test(arguments: [
        ["trace", "--buffer-words", "0", "--", "true"],
        ["trace", "--backend", "nosuch", "--", "true"],
        ["trace", "--mode", "edges", "--", "true"],
        ["trace"],
        ["trace", "--kvm", "--", "true"],
        ["trace", "--boot-timeout", "5", "--", "true"],
        ["conformance", "--backend", "linux", "--model", "--kvm"],
        ["vm", "run", "--boot-timeout", "0", "--", "true"],
        ["vm", "run", "--guest-timeout", "0", "--", "true"],
        ["trace", "--guest-timeout", "60", "--", "true"],
        ["vm", "run"],
    ])
    func usageErrorsExit64(arguments: [String]) throws {
        let result = try runKcovctl(arguments)
        #expect(result.status == 64)
        #expect(result.errors.contains("Error:"))
    }

    @Test("A negative number is the option's value, refused by its own rule, not a missing value")
    func negativeNumbersReachValidation() throws {
        for (arguments, rule) in [
            (["--buffer-words", "-1"], "--buffer-words must be at least 2"), (["--timeout", "-1"], "--timeout must be"),
            (["--follow", "--linger", "-3"], "--linger must be"),
        ] {
            let result = try runKcovctl(["trace"] + arguments + ["--", "true"])
            #expect(result.status == 64 && result.errors.contains(rule) && !result.errors.contains("Missing value"), "\(arguments): \(result.errors)")
        }
    }

    @Test("A backend named for another system is refused before any buffer rule, naming this kernel and its backends")
    func backendOfAnotherSystem() throws {
        for name in ["netbsd", "freebsd", "openbsd"] {
            let result = try runKcovctl(["trace", "--backend", name, "--", "true"])
            #expect(result.status == 2, "\(name): \(result.errors)")
            #expect(result.errors.contains("drives \(name == "netbsd" ? "NetBSD" : name == "freebsd" ? "FreeBSD" : "OpenBSD") kernels"), "\(result.errors)")
            #expect(result.errors.contains("uname says Linux") && result.errors.contains("linux"), "\(result.errors)")
            #expect(!result.errors.contains("buffer"), "the default buffer is not blamed: \(result.errors)")
        }
    }

    @Test("backends and conformance report a full standard output with exit 1")
    func fullStandardOutput() throws {
        let kcovctl = try builtKcovctl()
        for command in ["backends", "backends --format json", "conformance --backend linux --model"] {
            let result = try runProgram(["/bin/sh", "-c", "\"$0\" \(command) > /dev/full", kcovctl])
            #expect(result.status == 1 && result.errors.contains("cannot write to standard output: No space left on device"), "\(command): \(result.status) \(result.errors)")
        }
    }

    @Test func bufferTheBackendCannotMapIsAUsageError() throws {
        let result = try runKcovctl(["trace", "--backend", "linux", "--buffer-words", "1000", "--", "true"])
        #expect(result.status == 64)
        #expect(result.errors == "kcovctl: error: a buffer of 1000 words cannot be used: use 512…268434944 words, a multiple of 512 (4096-byte pages)\n")
    }

    @Test func missingCommandIsOneLineAndExit1() throws {
        let result = try runKcovctl(["trace", "--", "/nonexistent/tool"])
        #expect(result.status == 1)
        #expect(result.errors == "kcovctl: error: /nonexistent/tool does not exist: give the program's path (absolute, or relative to the current directory) or a name on PATH (access(/nonexistent/tool, X_OK): errno 2)\n")
        let onPath = try runKcovctl(["trace", "--", "no-such-command-anywhere"])
        #expect(onPath.status == 1)
        #expect(onPath.errors.hasPrefix("kcovctl: error: command not found: no-such-command-anywhere"))
    }

    @Test func traceWithoutDeviceIsUnavailable() throws {
        let result = try runKcovctl(["trace", "--", "true"])
        if Self.hostHasKcov {
            #expect(result.status == 0)
        } else {
            #expect(result.status == 2)
            #expect(result.errors.split(separator: "\n").count == 1, "one line")
            #expect(result.errors.contains("debugfs is not mounted") || result.errors.contains("CONFIG_KCOV"))
        }
    }

    @Test func backendsJSONDescribesHostAndLinux() throws {
        let result = try runKcovctl(["backends", "--format", "json"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        let environment = try #require(json["environment"] as? [String: Any])
        #expect(environment["os"] as? String == "Linux")
        #expect((environment["kernelRelease"] as? String)?.isEmpty == false)
        #expect(environment["insideGVisor"] as? Bool == false)
        let backends = try #require(json["backends"] as? [[String: Any]])
        let linux = try #require(backends.first { $0["name"] as? String == "linux" })
        #expect(linux["available"] as? Bool == Self.hostHasKcov)
        #expect((linux["reason"] as? String)?.isEmpty == false)
        let capabilities = try #require(linux["capabilities"] as? [String: Any])
        #expect(capabilities["supportedModes"] as? [String] == ["cmp", "pc"])
        #expect(capabilities["pcKind"] as? String == "kernelAddress")
    }

    /// On this Linux host `backends` names the kernel (uname first, then gVisor) and lists the
    /// FreeBSD and OpenBSD backends as unavailable, each saying why.
    @Test func backendsTellsTheKernelAndWhyTheBSDsAreUnavailable() throws {
        let result = try runKcovctl(["backends", "--format", "json"])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        #expect(json["kernel"] as? String == "Linux")
        #expect((json["kernelEvidence"] as? String)?.hasPrefix("uname says Linux, not gVisor") == true)
        let backends = try #require(json["backends"] as? [[String: Any]])
        #expect(backends.map { $0["name"] as? String } == ["linux", "netbsd", "freebsd", "openbsd", "gvisor", "kprobe"])
        for (name, system) in [("freebsd", "FreeBSD"), ("openbsd", "OpenBSD")] {
            let entry = try #require(backends.first { $0["name"] as? String == name })
            #expect(entry["system"] as? String == system)
            #expect(entry["available"] as? Bool == false)
            #expect((entry["reason"] as? String)?.contains("this host runs Linux, not \(system)") == true, "\(entry)")
        }
        let text = try runKcovctl(["backends"])
        #expect(text.output.contains("kernel: Linux — uname says Linux, not gVisor"), "\(text.output)")
        #expect(text.output.contains("openbsd: unavailable — /dev/kcov is OpenBSD's kcov(4) and this host runs Linux"), "\(text.output)")
    }

    /// `conformance --all --model` checks all six models, the five kcov kernels' own tests included.
    @Test func conformanceOfEveryModelPasses() throws {
        let result = try runKcovctl(["conformance", "--all", "--model", "--format", "json"])
        #expect(result.status == 0, "\(result.output)")
        let reports = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [[String: Any]])
        #expect(reports.map { $0["backend"] as? String } == ["linux", "netbsd", "freebsd", "openbsd", "gvisor", "kprobe"])
        for report in reports {
            let checks = try #require(report["checks"] as? [[String: Any]])
            #expect(!checks.contains { $0["status"] as? String == "fail" }, "\(report["backend"] ?? "")")
            let ids = checks.compactMap { $0["id"] as? String }
            if report["backend"] as? String == "freebsd" { #expect(ids.filter { $0.hasPrefix("freebsd.") }.count == 13) }
            if report["backend"] as? String == "openbsd" { #expect(ids.filter { $0.hasPrefix("openbsd.") }.count == 11) }
        }
    }

    /// The job folders of kcovctl process `pid` in the test kernel's cache.
    static func jobFolders(of pid: pid_t) -> [String] {
        let directory = TestKernelBuilder().cacheDirectory + "/vm"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { $0.hasPrefix("job-\(pid)-") }.map { directory + "/" + $0 }
    }

    @Test("A killed kcovctl takes QEMU with it, and its job folder goes: at once on SIGTERM or SIGINT, with the next run after SIGKILL",
          .timeLimit(.minutes(20)), arguments: [SIGKILL, SIGTERM, SIGINT])
    func qemuAndTheJobFolderDieWithAKilledKcovctl(signal: Int32) throws {
        var pid: pid_t = 0
        let program = try builtKcovctl()
        let arguments: [String] = [program, "vm", "run", "--", "sleep", "120"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // As a shell starts it: the signals at their default actions and none blocked (the test
        // runner's own mask and ignored signals would otherwise pass to the child).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for caught in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, caught) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        try #require(posix_spawn(&pid, program, nil, &attributes, &argv, environ) == 0)
        // QEMU is kcovctl's child (setpriv execs it): find it by its parent in /proc.
        func qemuChildren() -> [pid_t] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap(pid_t.init).filter { child in
                guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                let command = (try? String(contentsOfFile: "/proc/\(child)/comm", encoding: .utf8)) ?? ""
                return fields.count > 2 && fields[1] == "\(pid)" && command.hasPrefix("qemu")
            }
        }
        var qemu: [pid_t] = []
        for _ in 0..<200 where qemu.isEmpty {
            usleep(50_000)
            qemu = qemuChildren()
        }
        try #require(qemu.count == 1, "kcovctl vm run started QEMU")
        try #require(Self.jobFolders(of: pid).count == 1, "the run has its job folder")
        kill(pid, signal)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status & 0x7f == signal, "kcovctl ended by the signal, as its default action does (wait status \(status))")
        var alive = true
        for _ in 0..<100 where alive {
            usleep(50_000)
            // Gone, or a zombie already reparented and reaped by init.
            let state = (try? String(contentsOfFile: "/proc/\(qemu[0])/stat", encoding: .utf8)).map { $0.split(separator: ")").last?.split(separator: " ").first ?? "" }
            alive = state != nil && state != "Z"
        }
        if alive { kill(qemu[0], SIGKILL) }
        #expect(!alive, "QEMU outlived the killed kcovctl by 5 s")
        if signal == SIGKILL {
            #expect(Self.jobFolders(of: pid).count == 1, "a SIGKILLed process cannot remove its folder")
            let next = try runKcovctl(["vm", "run", "--", "true"])
            #expect(next.status == 0, "\(next.errors)")
        }
        #expect(Self.jobFolders(of: pid).isEmpty, "the killed run's job folder is gone")
    }

    @Test("A guest that does not start the command in time is reported as hung with what it printed, in seconds", .timeLimit(.minutes(20)))
    func aHungGuestIsReported() throws {
        let started = Date()
        let result = try runKcovctl(["vm", "run", "--boot-timeout", "1", "--", "true"])
        #expect(result.status == 1)
        #expect(result.errors.contains("the guest is hung: it did not start the command within 1 s of booting; it last printed:"), "\(result.errors)")
        #expect(result.errors.contains("give the boot longer with --boot-timeout SECONDS"), "\(result.errors)")
        #expect(Date().timeIntervalSince(started) < 120, "the boot timeout, not the run's, ended it")
    }

    @Test("A guest run past --guest-timeout is stopped, with what the command last wrote", .timeLimit(.minutes(20)))
    func aGuestPastItsTimeoutIsStoppedWithItsOutput() throws {
        let started = Date()
        let result = try runKcovctl(["vm", "run", "--guest-timeout", "150", "--", "sh", "-c", "echo step-one; echo step-two >&2; exec sleep 100000"])
        #expect(result.status == 1)
        #expect(result.errors.contains("the guest did not finish within 150 s;"), "\(result.errors)")
        #expect(result.errors.contains("give the command longer with --guest-timeout SECONDS"), "\(result.errors)")
        #expect(result.errors.contains("standard output:\nstep-one") && result.errors.contains("standard error:\nstep-two"), "\(result.errors)")
        #expect(Date().timeIntervalSince(started) < 600, "the guest timeout ended it")
    }

    @Test("kprobe: every function of a shared name is probed at its own address; the report keeps static functions of one name apart by file and counts clones under their origin",
          .timeLimit(.minutes(20)))
    func kprobeProbesSharedNamesByAddress() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("kcovctl-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        // type_show: static in several files; signal_pending: a header's out-of-line copies;
        // __refcount_add.constprop.0: gcc's clones of __refcount_add.
        let names = ["type_show", "signal_pending", "__refcount_add.constprop.0"]
        let trace = try runKcovctl([
            "trace", "--vm", "--backend", "kprobe", "--functions", names.joined(separator: ","), "--format", "json", "--output", output, "--", "cat", "/proc/version",
        ])
        #expect(trace.status == 0, "\(trace.errors)")
        let file = try TraceFile.decode(try Data(contentsOf: URL(fileURLWithPath: output)), source: output)
        let probed = file.probedFunctions ?? []
        for name in names {
            let copies = probed.filter { $0.name == name }
            #expect(copies.count > 1 && Set(copies.map(\.pc)).count == copies.count, "\(name): each copy probed at its own address: \(copies)")
        }
        #expect(file.skippedFunctions.isEmpty, "\(file.skippedFunctions)")

        let vmlinux = try TestKernelBuilder().build { _ in }.vmlinux
        let report = try runKcovctl(["report", "--vmlinux", vmlinux, "--format", "json", output])
        #expect(report.status == 0, "\(report.errors)")
        let json = try #require(try JSONSerialization.jsonObject(with: report.standardOutput) as? [String: Any])
        let files = try #require(json["files"] as? [[String: Any]])
        let functions = files.flatMap { file in
            (file["functions"] as? [[String: Any]] ?? []).map { (file: file["path"] as? String ?? "", name: $0["name"] as? String ?? "", counts: $0["counts"] as? [String: Any] ?? [:]) }
        }
        #expect(Set(functions.filter { $0.name == "type_show" }.map(\.file)).count > 1, "static functions of one name stay apart by file")
        #expect(!functions.contains { $0.name.contains(".constprop.") }, "clones count under their origin")
        let origin = try #require(functions.first { $0.name == "__refcount_add" })
        #expect(origin.counts["coverable"] as? Int == probed.count { $0.name == "__refcount_add.constprop.0" })
        #expect((origin.counts["covered"] as? Int ?? 0) > 0, "cat's refcounting enters a clone")
    }

    @Test(.timeLimit(.minutes(20)))
    func vmRunPassesTheGuestExitStatusThrough() throws {
        let result = try runKcovctl(["vm", "run", "--", "sh", "-c", "echo in-guest; uname -r; exit 3"])
        #expect(result.status == 3)
        #expect(result.output.hasPrefix("in-guest\n6.12."))
    }

    @Test(.timeLimit(.minutes(20)))
    func traceInTheVMWritesRawcoverToAFile() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("kcovctl-\(UUID()).rawcover").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try runKcovctl(["trace", "--vm", "--format", "rawcover", "--output", output, "--", "/bin/true"])
        #expect(result.status == 0, "\(result.errors)")
        let text = try String(contentsOfFile: output, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count > 1000, "exec of /bin/true runs thousands of kernel blocks")
        #expect(malformedRawcoverLines(text).isEmpty)
        #expect(lines.allSatisfy { $0.hasPrefix("0xffffffff8") }, "kernel text addresses")
    }
}

/// Lines of rawcover output that are not one `0x%016x` PC.
func malformedRawcoverLines(_ text: String) -> [Substring] {
    text.split(separator: "\n").filter { line in
        line.count != 18 || !line.hasPrefix("0x") || !line.dropFirst(2).allSatisfy(\.isHexDigit) || line.contains(where: \.isUppercase)
    }
}
