import CoverageAPI
import KernelSeam
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The kprobe path's paused child (``SystemKprobeKernel/spawnPaused(_:)``) on this host: released
/// it runs its command; abandoned (its probes could not be opened) it exits 127 without running it.
@Suite struct PausedChildTests {
    /// Found by Fuzz/UBSan/shims.c: the child kept its own copy of the release pipe's write end, so
    /// closing the parent's never ended its read, and KprobeSession's waitForExit after abandon hung.
    @Test("An abandoned paused child exits 127 at once, without running its command")
    func abandonedChildExits() throws {
        let kernel = SystemKprobeKernel()
        let marker = "/tmp/kcov-paused-child-\(getpid())"
        let child = try #require(kernel.spawnPaused(Command(path: "/bin/sh", arguments: ["/bin/sh", "-c", "touch \(marker)"])))
        kernel.abandon(child)
        let result = kernel.waitForExit(child.pid, milliseconds: 10_000)
        #expect(!result.timedOut, "the abandoned child was still waiting after 10 s")
        #expect(result.status == .exited(127))
        #expect(access(marker, F_OK) != 0, "the abandoned child ran its command")
        unlink(marker)
    }

    @Test("A released paused child runs its command; a failed exec comes back as its errno")
    func releasedChildRuns() throws {
        let kernel = SystemKprobeKernel()
        let child = try #require(kernel.spawnPaused(Command(path: "/bin/sh", arguments: ["/bin/sh", "-c", "exit 7"])))
        #expect(kernel.release(child) == 0)
        #expect(kernel.waitForExit(child.pid, milliseconds: 10_000).status == .exited(7))
        let missing = try #require(kernel.spawnPaused(Command(path: "/nonexistent/program", arguments: ["program"])))
        #expect(kernel.release(missing) == ENOENT)
        #expect(kernel.waitForExit(missing.pid, milliseconds: 10_000).status == .exited(127))
    }
}
