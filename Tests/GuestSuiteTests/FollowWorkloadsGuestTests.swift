import Foundation
import KernelImage
import TestKernel
import TestSupport
import Testing
import TraceFile

/// Real workloads no one here wrote, whole under `kcovctl trace --follow` in the test kernel:
/// stress-ng (installed by Scripts/setup.sh) and kselftests built from the test kernel's source.
@Suite(.serialized) struct FollowWorkloadsGuestTests {
    static let stress = "stress-ng --fork 2 --pthread 2 --dir 1 --rename 1 --temp-path /dev/shm --timeout 3s -v"
    /// The kselftests that pass in the test kernel under TCG (futex_wait and futex_requeue time out there now and then).
    static let selftests = ["futex/functional/futex_wait_wouldblock", "futex/functional/futex_wait_timeout", "timers/nanosleep", "size/get_size"]

    /// Builds the futex, timers and size selftests into a directory the guest sees, with a runner.
    static func buildSelftests() throws -> String {
        let kernel = try TestKernelBuilder().build { print("test kernel: \($0)") }
        let source = URL(fileURLWithPath: kernel.vmlinux).deletingLastPathComponent().path + "/src/tools/testing/selftests"
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("follow-kselftests-\(UUID().uuidString)").path
        for directory in ["futex/functional", "timers", "size"] {
            try FileManager.default.createDirectory(atPath: output + "/" + directory, withIntermediateDirectories: true)
            _ = try runTool("/usr/bin/make", ["-s", "-C", source + "/" + directory, "OUTPUT=\(output)/\(directory)"])
        }
        let runner = """
            #!/bin/sh
            cd "$(dirname "$0")"
            status=0
            for test in \(selftests.joined(separator: " ")); do
              if ./$test >/dev/null 2>&1; then echo "ok $test"; else echo "not ok $test"; status=1; fi
            done
            exit $status

            """
        try runner.write(toFile: output + "/run.sh", atomically: true, encoding: .utf8)
        _ = try runTool("/bin/chmod", ["+x", output + "/run.sh"])
        return output
    }

    @Test(.timeLimit(.minutes(30)))
    func stressNgAndKselftestsUnderFollow() throws {
        let kcovctl = try builtKcovctl()
        let selftests = try Self.buildSelftests()
        let (sections, errors) = try FollowGuestTests.guest("""
            echo '=== stress'; \(kcovctl) trace --follow --buffer-words 65536 --format json -- \(Self.stress) 2>/dev/shm/stress.err
            echo '=== stresslog'; cat /dev/shm/stress.err
            echo '=== stressmain'; \(kcovctl) trace --buffer-words 65536 --format json -- \(Self.stress) 2>/dev/null
            echo '=== kselftests'; \(kcovctl) trace --follow --format json -- \(selftests)/run.sh 2>/dev/shm/kst.err
            echo '=== kselftestlog'; cat /dev/shm/kst.err
            """)
        let image = try FollowGuestTests.vmlinux()
        let stress = try TraceFile.decode(Data((sections["stress"] ?? "").utf8), source: "stress-ng follow")
        let problems = stressViolations(stress, log: sections["stresslog"] ?? "", image: image)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))\n\(errors.suffix(2000))")
        let mainOnly = try TraceFile.decode(Data((sections["stressmain"] ?? "").utf8), source: "stress-ng main thread")
        #expect(!stressViolations(mainOnly, log: sections["stresslog"] ?? "", image: image).isEmpty, "a main-thread-only trace must break the stress-ng rules")

        let kselftests = try TraceFile.decode(Data((sections["kselftests"] ?? "").utf8), source: "kselftests follow")
        let log = sections["kselftestlog"] ?? ""
        for test in Self.selftests { #expect(log.contains("ok \(test)") && !log.contains("not ok \(test)"), "\(test) did not pass under --follow:\n\(log)") }
        #expect(kselftests.exit == .status(0))
        for test in Self.selftests.dropLast() {
            #expect(kselftests.tasks.contains { $0.executable?.hasSuffix(test) == true && $0.withoutAgent == nil && $0.entryCount > 0 }, "no traced record of \(test)")
        }
        #expect(kselftests.tasks.contains { $0.executable?.hasSuffix("size/get_size") == true && $0.withoutAgent?.hasPrefix("static executable") == true },
                "get_size (static, -nostdlib) is not recorded as a static executable")
        // Both whole runs become LCOV that genhtml takes, whole and per executable.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("follow-lcov-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, text) in [("stress", sections["stress"] ?? ""), ("kselftests", sections["kselftests"] ?? "")] {
            try text.write(toFile: "\(directory)/\(name).json", atomically: true, encoding: .utf8)
            let kernel = try TestKernelBuilder().build { _ in }
            _ = try runTool(kcovctl, ["report", "--vmlinux", kernel.vmlinux, "--format", "lcov", "--lcov-version", "1", "--output", "\(directory)/\(name).info", "\(directory)/\(name).json"])
            let html = try runTool("/usr/bin/genhtml", ["-q", "-o", "\(directory)/\(name)-html", "\(directory)/\(name).info"])
            #expect(FileManager.default.fileExists(atPath: "\(directory)/\(name)-html/index.html"), "genhtml wrote no index for \(name): \(html)")
        }
        let timeout = kselftests.tasks.first { $0.executable?.hasSuffix("futex_wait_timeout") == true }?.executable ?? ""
        let kernel = try TestKernelBuilder().build { _ in }
        let perTask = try runTool(kcovctl, ["report", "--vmlinux", kernel.vmlinux, "--executable", timeout, "\(directory)/kselftests.json"])
        let whole = try runTool(kcovctl, ["report", "--vmlinux", kernel.vmlinux, "\(directory)/kselftests.json"])
        #expect(perTask != whole && perTask.contains("futex"), "the per-executable report is the whole one:\n\(perTask)")
    }
}

/// stress-ng's rules: every worker it logs (`-v`: "started [pid]") is a traced task, and the
/// workers hold PCs the parent never ran, among them the dir and rename stressors' VFS paths.
func stressViolations(_ file: TraceFile, log: String, image: KernelImage) -> [String] {
    var problems: [String] = []
    var workers: Set<Int32> = []
    for line in log.split(separator: "\n") where line.contains(" started [") {
        guard let open = line.range(of: " started [")?.upperBound, let close = line[open...].firstIndex(of: "]"), let pid = Int32(line[open..<close]) else { continue }
        workers.insert(pid)
    }
    if workers.count < 6 { problems.append("stress-ng logged \(workers.count) workers, expected 6 (-v)") }
    let traced = Set(file.tasks.compactMap(\.pid))
    for pid in workers.sorted() where !traced.contains(pid) { problems.append("worker pid \(pid) is not a traced task") }
    guard let parentPid = file.tasks.first?.pid else { return problems + ["no task at all"] }
    let parent = Set(file.tasks.filter { $0.pid == parentPid }.flatMap(\.entryPCs))
    let workerPCs = Set(file.tasks.filter { $0.pid.map(workers.contains) == true }.flatMap(\.entryPCs)).subtracting(parent)
    let functions = Set(workerPCs.compactMap { image.function(containing: $0)?.name })
    for expected in ["vfs_rename", "vfs_mkdir", "copy_process"] where !functions.contains(expected) {
        problems.append("no PC of \(expected) in the workers beyond the parent's (\(workerPCs.count) worker-only PCs)")
    }
    return problems
}
