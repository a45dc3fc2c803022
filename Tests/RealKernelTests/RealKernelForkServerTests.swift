import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import TestSupport
import Testing
import TraceFile

#if canImport(Glibc)
import Glibc
#endif

/// The fork server and `run`'s timeout, redirection and environment on the real kernel, inside
/// the guest.
@Suite(.serialized)
struct RealKernelForkServerTests {
    func isUnameCode(_ ranges: [Range<UInt64>]) -> (UInt64) -> Bool {
        { pc in ranges.contains { $0.contains(pc) } }
    }

    @Test func forkedChildrenAreTracedAndTheServerForksAgainAfterATimeout() throws {
        let uname = try kernelSymbolRanges(containing: "sys_newuname")
        try #require(!uname.isEmpty)
        var collector = try CoverageCollector(backend: LinuxKcovBackend(), bufferWords: 1 << 16)
        let first = try collector.runForked(timeout: .seconds(20)) {
            var name = utsname()
            _ = Glibc.uname(&name)
            return 5
        }
        #expect(first.child.exit == .exited(5))
        #expect(first.child.pid > 0 && first.child.pid != getpid())
        #expect(first.trace.pcs.contains(where: isUnameCode(uname)), "the child's uname is in the trace")
        #expect(first.trace.pcs.allSatisfy { $0 >= kernelTextStart })

        let started = ContinuousClock.now
        let hung = try collector.runForked(timeout: .milliseconds(300)) {
            while true { pause() }
        }
        #expect(hung.child.exit == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(10), "killed at its timeout")

        // The killed child's exit released the fd: the next child enables it again.
        let after = try collector.runForked {
            var name = utsname()
            _ = Glibc.uname(&name)
            return 0
        }
        #expect(after.child.exit == .exited(0))
        #expect(after.trace.pcs.contains(where: isUnameCode(uname)))
    }

    @Test func runKillsACommandAtItsTimeout() throws {
        var collector = try CoverageCollector(backend: LinuxKcovBackend())
        let started = ContinuousClock.now
        let result = try collector.run(Command(path: "/bin/sleep", arguments: ["sleep", "30"], timeout: .milliseconds(300)))
        #expect(result.exit == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(!result.trace.pcs.isEmpty, "what it covered before the kill is kept")
        let quick = try collector.run(Command(path: "/bin/true", arguments: ["true"], timeout: .seconds(30)))
        #expect(quick.exit == .exited(0))
    }

    @Test func runGivesTheCommandItsStreamsAndTheCallersEnvironment() throws {
        var collector = try CoverageCollector(backend: LinuxKcovBackend())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fork-server-\(getpid()).out").path
        let out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(out >= 0)
        defer { unlink(path) }
        let echoed = try collector.run(Command(path: "/bin/echo", arguments: ["echo", "to the file"], standardOutput: out))
        close(out)
        #expect(echoed.exit == .exited(0))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "to the file\n")

        setenv("KCOV_FORK_SERVER_TEST", "yes", 1)
        defer { unsetenv("KCOV_FORK_SERVER_TEST") }
        let check = ["sh", "-c", "test \"$KCOV_FORK_SERVER_TEST\" = yes"]
        #expect(try collector.run(Command(path: "/bin/sh", arguments: check)).exit == .exited(0), "the caller's environment by default")
        #expect(try collector.run(Command(path: "/bin/sh", arguments: check, environment: [])).exit == .exited(1))

        do {
            _ = try collector.run(Command(path: "/bin/true", arguments: ["true"], standardInput: 9999))
            Issue.record("redirecting from a descriptor that is not open succeeded")
        } catch {
            #expect(error.code == .commandFailed && error.errno == EBADF && error.syscall == "dup2", "\(error)")
        }
    }

    @Test func kcovctlTraceTimeout() throws {
        let result = try spawnProgram([try builtKcovctl(), "trace", "--format", "json", "--timeout", "0.3", "--", "/bin/sleep", "30"], capturingErrors: false)
        #expect(result.status == 0)
        let file = try TraceFile.decode(result.standardOutput, source: "kcovctl trace --timeout")
        #expect(file.exit == .timedOut)
        #expect(!file.pcs.isEmpty)
    }
}
