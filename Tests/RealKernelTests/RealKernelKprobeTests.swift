import Conformance
import CoverageAPI
import Foundation
import KernelSeam
import KprobeBackend
import KprobeConformance
import ReferenceModels
import TestSupport
import Testing
import TraceFile

#if canImport(Glibc)
import Glibc
#endif

/// The kprobe backend on the test kernel (KPROBES, KPROBE_EVENTS, PERF_EVENTS), inside the guest.
@Suite(.serialized)
struct RealKernelKprobeTests {
    let backend = KprobeBackend()
    static let vfs = ["ksys_read", "vfs_read", "vfs_write", "vfs_open", "vfs_getattr", "__x64_sys_read"]

    /// Registered kprobes (perf's included), from debugfs.
    func registeredKprobes() throws -> Int {
        try readProcFile("/sys/kernel/debug/kprobes/list").split(separator: "\n").count
    }

    func kprobeEvents() throws -> String {
        try readProcFile("/sys/kernel/tracing/kprobe_events")
    }

    @Test func theBackendIsAvailable() {
        let availability = backend.availability()
        #expect(availability.available, "\(availability.reason)")
    }

    @Test func readOfMinusOneHitsKsysReadOnTheEnablingThread() throws {
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: Self.vfs))
        #expect(session.skippedFunctions.isEmpty, "\(session.skippedFunctions)")
        let coverage = try session.collect { backend.probe() }
        #expect(coverage.hits("ksys_read") == 1)
        #expect(coverage.hits("__x64_sys_read") == 1)
        #expect(coverage.hits("vfs_read") == 0, "read(-1) fails before the VFS")
        let kallsyms = try readProcFile("/proc/kallsyms")
        let ksysRead = try #require(coverage.functions.first { $0.name == "ksys_read" })
        #expect(kallsyms.contains(String(format: "%016lx T ksys_read", ksysRead.pc)), "the PC is the kallsyms address")
        let many = try session.collect { for _ in 0..<100 { backend.probe() } }
        #expect(many.hits("ksys_read") == 100)
    }

    @Test func readingAFileEntersTheVFS() throws {
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: Self.vfs))
        var buffer = [UInt8](repeating: 0, count: 256)
        let coverage = try session.collect {
            let fd = open("/proc/self/stat", O_RDONLY)
            _ = read(fd, &buffer, buffer.count)
            close(fd)
        }
        #expect(coverage.hits("vfs_open") >= 1)
        #expect(coverage.hits("vfs_read") >= 1)
        #expect(coverage.hits("ksys_read") == 1)
        #expect(coverage.hits("vfs_write") == 0)
    }

    @Test func anotherThreadsReadsAreNotCounted() throws {
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: Self.vfs))
        let coverage = try session.collect {
            POSIXThread.run { for _ in 0..<1000 { KprobeBackend().probe() } }
        }
        #expect(coverage.hits("ksys_read") == 0)
        // Control: the same reads on this thread are counted.
        let own = try session.collect { for _ in 0..<1000 { backend.probe() } }
        #expect(own.hits("ksys_read") == 1000)
    }

    @Test func unprobeableFunctionsAreSkippedWithReasons() throws {
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read", "no_such_function_xyz", "do_int3", "nmi_handle"]))
        #expect(session.probedFunctions.map(\.name) == ["ksys_read"])
        let reasons = Dictionary(uniqueKeysWithValues: session.skippedFunctions.map { ($0.name, $0.reason) })
        #expect(reasons["no_such_function_xyz"]?.contains("kallsyms") == true)
        #expect(reasons["do_int3"] != nil, "\(reasons)")
        #expect(reasons["nmi_handle"] != nil, "\(reasons)")
        print("kprobe skips: \(session.skippedFunctions)")
    }

    @Test func twoHundredProbesAreSetAndTornDownCleanly() throws {
        let before = try processResources().perfFDs
        let kprobesBefore = try registeredKprobes()
        var count = 0
        do {
            var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["__x64_sys_*", "vfs_*"]))
            count = session.probedFunctions.count
            #expect(count >= 200)
            #expect(try registeredKprobes() >= kprobesBefore + count, "each probe is a registered kprobe")
            #expect(try processResources().perfFDs == before + count, "one fd per probe")
            let coverage = try session.collect { backend.probe() }
            #expect(coverage.hits("__x64_sys_read") == 1)
            _ = consume session
        }
        #expect(try registeredKprobes() == kprobesBefore)
        #expect(try processResources().perfFDs == before)
        #expect(try kprobeEvents().isEmpty, "nothing is left in kprobe_events")
        print("kprobe: \(count) probes set and removed")
    }

    @Test func anErrorMidwayLeavesNothingBehind() throws {
        let before = try processResources().perfFDs
        let kprobesBefore = try registeredKprobes()
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let saved = limit
        // Room for 50 more descriptors of any kind: the session runs out midway through its probes.
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        limit.rlim_cur = rlim_t(open + 50)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        defer {
            var restore = saved
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &restore)
        }
        let error = coverageError { _ = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["__x64_sys_*"])) }
        #expect(error?.message.contains("ulimit -n") == true)
        #expect(try registeredKprobes() == kprobesBefore)
        #expect(try processResources().perfFDs == before)
    }

    @Test func aCommandIsTracedFromItsExec() throws {
        var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: Self.vfs + ["__x64_sys_execve"]))
        let result = try session.run(Command(path: "/bin/cat", arguments: ["cat", "/proc/version"], environment: []))
        #expect(result.exit == .exited(0))
        #expect(result.trace.hits("vfs_read") >= 2)
        #expect(result.trace.hits("vfs_write") >= 1)
        #expect(result.trace.hits("__x64_sys_execve") == 0, "counting starts once execve is done")
    }
}

/// `kcovctl` with the kprobe backend, inside the guest.
@Suite(.serialized)
struct RealKernelKprobeCLITests {
    @Test func traceJSONListsFunctionsWithHitsAndSkips() throws {
        let result = try spawnProgram([
            try builtKcovctl(), "trace", "--backend", "kprobe", "--functions", "vfs_read,vfs_write,vfs_open,ksys_read", "--functions", "no_such_fn_xyz",
            "--format", "json", "--", "/bin/cp", "/proc/version", "/dev/null",
        ], capturingErrors: false)
        #expect(result.status == 0)
        let file = try TraceFile.decode(result.standardOutput, source: "kcovctl trace --format json")
        #expect(file.backend == "kprobe")
        #expect(file.unit == .function)
        #expect(file.exit == .status(0))
        let read = try #require(file.functions.first { $0.name == "vfs_read" })
        #expect(read.hits >= 2)
        #expect(read.pc >= 0xffff_ffff_0000_0000)
        #expect(file.functions.contains { $0.name == "vfs_write" })
        #expect(file.skippedFunctions.contains { $0.name == "no_such_fn_xyz" && $0.reason.contains("kallsyms") })
        #expect(file.probedFunctions?.count == 4, "every probed function is the denominator")
    }

    @Test func backendsListsKprobeAsAvailable() throws {
        let result = try spawnProgram([try builtKcovctl(), "backends", "--format", "json"], capturingErrors: false)
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        let backends = try #require(json["backends"] as? [[String: Any]])
        let kprobe = try #require(backends.first { $0["name"] as? String == "kprobe" })
        #expect(kprobe["available"] as? Bool == true, "\(kprobe["reason"] ?? "")")
        let capabilities = try #require(kprobe["capabilities"] as? [String: Any])
        #expect(capabilities["granularity"] as? String == "function")
    }

    @Test func conformanceChecksPassOnTheRealKernelAsOnTheModel() throws {
        let result = try spawnProgram([try builtKcovctl(), "conformance", "--backend", "kprobe", "--format", "json"])
        #expect(result.status == 0, "\(result.errors)")
        let real = try JSONDecoder().decode(ConformanceReport.self, from: result.standardOutput)
        print(real.text())
        #expect(real.backend == "kprobe" && real.device == .real)
        #expect(real.checks.map(\.id) == FunctionChecks.all.map(\.id))
        for check in real.checks where check.status != .pass {
            Issue.record("\(check.id): \(check.status.rawValue) on the kernel (\(check.detail))")
        }
        let model = ConformanceSuite.run(on: KprobeBackend(kernel: KprobePMUModel()), checks: FunctionChecks.all)
        for (kernelResult, modelResult) in zip(real.checks, model) where kernelResult.status != modelResult.status {
            Issue.record("\(kernelResult.id): kernel \(kernelResult.status.rawValue), model \(modelResult.status.rawValue) (\(modelResult.detail))")
        }
    }

    /// As `nobody` with no capabilities the kernel refuses the kprobe PMU (EACCES: it asks for
    /// CAP_PERFMON whatever perf_event_paranoid says): kcovctl names the privilege and exits 2.
    @Test func anUnprivilegedUserIsToldThePrivilege() throws {
        let nobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", try builtKcovctl()]
        let trace = try spawnProgram(nobody + ["trace", "--backend", "kprobe", "--functions", "ksys_read", "--", "/bin/true"])
        let message = trace.errors
        print("kprobe as nobody: \(message)", terminator: "")
        #expect(trace.status == 2, "\(message)")
        #expect(message.contains("CAP_PERFMON"))
        #expect(message.contains("perf_event_paranoid"))
        #expect(message.contains("errno \(EACCES)"), "the kernel's answer is EACCES")

        let conformance = try spawnProgram(nobody + ["conformance", "--backend", "kprobe"])
        #expect(conformance.status == 2)
        #expect(conformance.errors.contains("CAP_PERFMON"))

        let backends = try spawnProgram(nobody + ["backends", "--format", "json"], capturingErrors: false)
        #expect(backends.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: backends.standardOutput) as? [String: Any])
        let kprobe = try #require((json["backends"] as? [[String: Any]])?.first { $0["name"] as? String == "kprobe" })
        #expect(kprobe["available"] as? Bool == false)
        #expect((kprobe["reason"] as? String)?.contains("CAP_PERFMON") == true)
    }

    @Test func autoFallsBackToKprobeWithoutKcov() throws {
        // A private mount namespace without debugfs: kcov is gone, kprobes are not.
        let result = try spawnProgram([
            "/usr/bin/unshare", "-m", "/bin/sh", "-c",
            "umount -l /sys/kernel/debug && exec \"$0\" trace --functions ksys_read,vfs_read --format json -- /bin/cp /proc/version /dev/null",
            try builtKcovctl(),
        ], capturingErrors: false)
        #expect(result.status == 0)
        let file = try TraceFile.decode(result.standardOutput, source: "kcovctl trace --format json")
        #expect(file.backend == "kprobe")
        #expect(file.functions.contains { $0.name == "vfs_read" })
    }
}
