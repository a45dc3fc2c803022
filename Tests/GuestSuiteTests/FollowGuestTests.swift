import Foundation
import KernelImage
import TestKernel
import TestSupport
import Testing
import TraceFile
import VirtualMachine

/// `kcovctl trace --follow` in the test kernel (Docs/follow.md): runs that the rules are checked on.
@Suite(.serialized) struct FollowGuestTests {
    /// Runs `script` with `sh -c` in the test kernel; its standard output holds the results
    /// between `=== name` lines.
    static func guest(_ script: String) throws -> (sections: [String: String], errors: String) {
        let builder = TestKernelBuilder()
        let kernel = try builder.build { print("test kernel: \($0)") }
        let machine = VirtualMachine(kernelImage: kernel.bzImage, workDirectory: builder.cacheDirectory + "/vm")
        let result = try machine.run(["/bin/sh", "-c", script])
        let errors = String(decoding: result.standardError, as: UTF8.self)
        #expect(result.exitStatus == 0, "the guest script failed: \(errors.suffix(3000))")
        var sections: [String: String] = [:]
        var name: String?
        for line in String(decoding: result.standardOutput, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("=== ") {
                name = String(line.dropFirst(4))
                sections[name!] = ""
            } else if let name {
                sections[name, default: ""] += line + "\n"
            }
        }
        print("guest run: \(String(format: "%.1f", result.seconds)) s, boot included")
        return (sections, errors)
    }

    static func vmlinux() throws -> KernelImage {
        let kernel = try TestKernelBuilder().build { print("test kernel: \($0)") }
        return try KernelImage(path: kernel.vmlinux)
    }

    /// The own workload under --follow meets every rule; the same workload traced main-thread-only
    /// (the defective input) breaks them.
    @Test(.timeLimit(.minutes(20)))
    func ownWorkloadMeetsTheRules() throws {
        let workload = try FollowWorkload.build()
        let kcovctl = try builtKcovctl()
        let run = "\(workload.program) \(workload.staticProgram)"
        let (sections, errors) = try Self.guest("""
            echo '=== follow'; \(kcovctl) trace --follow --format json -- \(run) 2>/dev/shm/follow.err
            echo '=== log'; cat /dev/shm/follow.err
            echo '=== main'; \(kcovctl) trace --format json -- \(run) 2>/dev/shm/main.err
            echo '=== mainlog'; cat /dev/shm/main.err
            """)
        let image = try Self.vmlinux()
        let follow = try TraceFile.decode(Data((sections["follow"] ?? "").utf8), source: "follow run")
        let problems = followRuleViolations(follow, log: sections["log"] ?? "", image: image)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))\n\(errors.suffix(2000))")
        print("follow: \(Set(follow.tasks.compactMap(\.order)).count) tasks, \(follow.tasks.count) records, \(follow.uniquePCCount) unique PCs")
        let mainOnly = try TraceFile.decode(Data((sections["main"] ?? "").utf8), source: "main-thread run")
        let defects = followRuleViolations(mainOnly, log: sections["mainlog"] ?? "", image: image)
        #expect(defects.count >= 16, "a main-thread-only trace should break the thread rules, found only: \(defects)")
        #expect(follow.uniquePCCount > mainOnly.uniquePCCount)
    }

    /// A set-user-ID program of another user runs with AT_SECURE, so the loader drops the agent:
    /// its image is still recorded (the exec'ing task stays enabled) and says why it was not followed.
    @Test(.timeLimit(.minutes(20)))
    func aSetUserIDProgramIsRecordedWithTheReason() throws {
        let kcovctl = try builtKcovctl()
        let (sections, errors) = try Self.guest("""
            cp /bin/true /dev/shm/suid-true && chown 65534 /dev/shm/suid-true && chmod 4755 /dev/shm/suid-true
            echo '=== follow'; \(kcovctl) trace --follow --format json -- /bin/sh -c '/dev/shm/suid-true; /bin/true; exit 0' 2>/dev/shm/follow.err
            echo '=== log'; cat /dev/shm/follow.err
            """)
        let follow = try TraceFile.decode(Data((sections["follow"] ?? "").utf8), source: "follow run")
        let suid = follow.tasks.filter { $0.executable == "/dev/shm/suid-true" }
        #expect(suid.count == 1, "the set-user-ID image has one record: \(follow.tasks.map { ($0.executable ?? "?", $0.withoutAgent ?? "") })\n\(errors.suffix(2000))")
        #expect(suid.first?.withoutAgent?.hasPrefix("set-user-ID program") == true, "\(suid.map(\.withoutAgent))")
        #expect((suid.first?.pcs.count ?? 0) > 0, "its main thread was recorded")
        let plain = follow.tasks.filter { $0.executable == "/bin/true" }
        let records = follow.tasks.map { "\($0.order ?? -1) \($0.executable ?? "?") \($0.end.map { "\($0)" } ?? "-") \($0.withoutAgent ?? "")" }
        // Once named /bin/true twice under load: the shell's fork child's pre-exec record took the
        // name of the image it exec'd when the collector read its registration late
        // (ControlPageTests.taskRegisteredBeforeAnExec).
        #expect(plain.count == 1 && plain.allSatisfy { $0.withoutAgent == nil }, "the ordinary program is followed, in one record: \(records)")
        #expect(follow.untraced.isEmpty, "\(follow.untraced)")
    }
}
