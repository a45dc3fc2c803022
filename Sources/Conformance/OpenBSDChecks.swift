public import CoverageAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What OpenBSD's own kcov regress tests (`regress/sys/dev/kcov/kcov.c`) need from a backend
/// beyond ``KcovDriver``: raw mode numbers, a close that reports EBADF, threads, a forked child,
/// descriptor passing, a kernel task run on behalf of the process, and remote attachment.
///
/// Implementation requirements:
/// - ``enable(_:rawMode:)`` sends KIOENABLE with the mode number as given (1 PC, 2 CMP).
/// - ``close(reporting:)`` is close(2) returning its errno (nil on success) instead of trapping.
/// - ``startThread(_:)`` runs its closure on a new thread; the returned closure joins it, and by
///   then the thread's exit has returned what it left enabled to READY (or freed it if closed).
/// - ``inForkedChild(_:)`` runs its closure as a forked child sharing fds and mappings and waits
///   for it to exit; ``sendOverSocket(_:)`` sends an fd with SCM_RIGHTS (nil on success, else the
///   errno); ``runProcessTask()`` makes the kernel run one task on behalf of the process. Each throws
///   `.unsupportedOperation` where it cannot be done (the check is then not applicable).
public protocol OpenBSDKcovOperations: KcovDriver {
    var pageSize: Int { get }
    func enable(_ fd: Int32, rawMode: Int32) throws(CoverageError)
    func close(reporting fd: Int32) -> Int32?
    func startThread(_ body: @escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void
    func inForkedChild(_ body: @escaping @Sendable () -> Void) throws(CoverageError)
    func sendOverSocket(_ fd: Int32) throws(CoverageError) -> Int32?
    func runProcessTask() throws(CoverageError)
}

/// OpenBSD's own kcov regress list (`regress/sys/dev/kcov/kcov.c` 1.18,
/// Docs/kcov-openbsd.md#openbsds-own-tests, 11 tests), one check per test with the test's name.
/// The regress Makefile runs each test once per mode; each check does too, PC then CMP. Each
/// run goes through the program's harness: open, KIOSETBUFSIZE(256 Ki entries), map, empty the
/// count, the test, then `check_coverage` with the test's expectation (coverage, none, or either),
/// a count below the buffer's size, and well-formed comparison records.
public enum OpenBSDChecks {
    static let modePC: Int32 = 1
    static let modeCMP: Int32 = 2
    /// The program's default buffer: `256 << 10` entries.
    static let harnessEntries = 256 << 10

    /// What `check_coverage` expects of the harness's buffer after a test.
    enum Expectation {
        case coverage, empty, either
    }

    /// Every OpenBSD-specific check, in the program's table order.
    public static let all: [ConformanceCheck] = [
        regress("close", "Opening and closing a second kcov fd leaves the harness's buffer empty.", expect: .empty) { ops, context, harness in
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            ops.closeDevice(fd)
        },
        regress("coverage", "KIOENABLE, a syscall, KIODISABLE: the syscall is recorded.", expect: .coverage) { ops, context, harness in
            try context.must("KIOENABLE") { () throws(CoverageError) in try ops.enable(harness.fd, rawMode: harness.mode) }
            ops.probe()
            try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(harness.fd) }
        },
        regress("dying", "With tracing enabled, another thread closes the fd; this thread's close then fails with EBADF, and its exit frees the descriptor.", expect: .either) { ops, context, harness in
            try context.must("KIOENABLE") { () throws(CoverageError) in try ops.enable(harness.fd, rawMode: harness.mode) }
            let fd = harness.fd
            let closer = try context.must("start the closer") { () throws(CoverageError) in try ops.startThread { ops.closeDevice(fd) } }
            closer()
            harness.closed = true
            let error = ops.close(reporting: fd)
            try context.expect(error != nil, "the kcov descriptor was still open after another thread closed it")
            try context.expect(error == EBADF, "the second close failed with errno \(error ?? 0), not EBADF")
        },
        regress("exec", "A child enables the inherited fd and execs; the new image's work is recorded, and once the child is gone the fd enables again.", expect: .coverage) { ops, context, harness in
            let command = Command(path: "/bin/true", arguments: ["true"], environment: [])
            let mode: CoverageMode = harness.mode == modePC ? .pc : .comparisons
            let exit = try context.must("fork, KIOENABLE, exec") { () throws(CoverageError) in
                try ops.runEnabled(harness.fd, mode: mode, buffer: harness.address, words: harness.words, command: command)
            }
            try context.expect(exit == .exited(0), "the child ended as \(exit)")
            try reusable(ops, context, harness)
        },
        regress("fdsend", "Sending a kcov fd over a socket with SCM_RIGHTS fails.", expect: .either) { ops, context, harness in
            let error = try needing("sending a descriptor") { () throws(CoverageError) in try ops.sendOverSocket(harness.fd) }
            try context.expect(error != nil, "sendmsg of a kcov descriptor succeeded")
        },
        regress("fork", "A forked child enables the inherited fd and makes a syscall; it is recorded, and once the child is gone the fd enables again.", expect: .coverage) { ops, context, harness in
            let outcome = Outcome()
            let fd = harness.fd
            let mode = harness.mode
            try needing("a forked child") { () throws(CoverageError) in
                try ops.inForkedChild {
                    outcome.run {
                        try context.must("KIOENABLE in the child") { () throws(CoverageError) in try ops.enable(fd, rawMode: mode) }
                        ops.probe()
                    }
                }
            }
            try outcome.check()
            try reusable(ops, context, harness)
        },
        regress("open", "A second fd with its own buffer records a syscall, and the harness's buffer stays empty.", expect: .empty) { ops, context, harness in
            try context.withInstance(words: harnessEntries) { second in
                try context.must("KIOENABLE(second)") { () throws(CoverageError) in try ops.enable(second.fd, rawMode: harness.mode) }
                ops.probe()
                try context.must("KIODISABLE(second)") { () throws(CoverageError) in try ops.disable(second.fd) }
                try checkCoverage(second.buffer!, mode: harness.mode, expect: .coverage, what: "the second fd's buffer")
            }
        },
        regress("remote", "Attached to the process's kernel tasks and enabled, a task run on the process's behalf is recorded.", expect: .coverage) { ops, context, harness in
            try attachAndEnable(ops, context, harness)
            try needing("a kernel task of this process") { () throws(CoverageError) in try ops.runProcessTask() }
            try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(harness.fd) }
        },
        regress("remote-close", "Attached and enabled, the fd is closed: no panic, and the device opens again.", expect: .empty) { ops, context, harness in
            try attachAndEnable(ops, context, harness)
            ops.closeDevice(harness.fd)
            harness.closed = true
            harness.reopened = try context.must("open again") { () throws(CoverageError) in try ops.openDevice() }
        },
        regress("remote-interrupt", "Attached and enabled, 100 syscalls of this thread, then KIODISABLE: all succeed.", expect: .either) { ops, context, harness in
            try attachAndEnable(ops, context, harness)
            for _ in 0..<100 { ops.probe() }
            try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(harness.fd) }
        },
        regress("state", "KIOENABLE, KIODISABLE; then KIOSETBUFSIZE and KIODISABLE fail; KIOENABLE; then KIOENABLE and KIOSETBUFSIZE fail; KIODISABLE.", expect: .coverage) { ops, context, harness in
            let fd = harness.fd
            try context.must("KIOSETBUFSIZE -> KIOENABLE") { () throws(CoverageError) in try ops.enable(fd, rawMode: harness.mode) }
            try context.must("KIOENABLE -> KIODISABLE") { () throws(CoverageError) in try ops.disable(fd) }
            // The program passes a null pointer here, which fails in copyin before the driver; a
            // real count reaches the driver's own state check (EBUSY).
            try context.expectError(.busy, "KIOSETBUFSIZE -> KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: harnessEntries) }
            try context.expectError(.notOwner, "KIOSETBUFSIZE -> KIODISABLE") { () throws(CoverageError) in try ops.disable(fd) }
            try context.must("KIOENABLE") { () throws(CoverageError) in try ops.enable(fd, rawMode: harness.mode) }
            try context.expectError(.invalidState, "KIOENABLE -> KIOENABLE") { () throws(CoverageError) in try ops.enable(fd, rawMode: harness.mode) }
            try context.expectError(.busy, "KIOENABLE -> KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: harnessEntries) }
            try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(fd) }
        },
    ]

    // MARK: Harness

    /// The program's `struct context` and mapping, as one test sees them.
    final class Harness: @unchecked Sendable {
        let fd: Int32
        let mode: Int32
        let address: UnsafeMutableRawPointer
        let words: Int
        /// The test closed the harness's fd itself.
        var closed = false
        /// An fd the test opened in its place, for the harness to close.
        var reopened: Int32?

        init(fd: Int32, mode: Int32, address: UnsafeMutableRawPointer, words: Int) {
            self.fd = fd
            self.mode = mode
            self.address = address
            self.words = words
        }

        var buffer: CoverageBuffer { CoverageBuffer(address: address, wordCount: words) }
    }

    /// A check that runs `test` through the harness in PC and then CMP mode, each on a thread of its
    /// own whose exit (`kcov_exit`) cleans up what the test left, as the end of the program would.
    static func regress(
        _ name: String, _ summary: String, expect: Expectation,
        _ test: @escaping @Sendable (any OpenBSDKcovOperations, CheckContext, Harness) throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck("openbsd.\(name)", summary + " (PC and CMP mode)") { context in
            guard let ops = context.backend as? any OpenBSDKcovOperations else {
                throw ConformanceNotApplicable("the \(context.backend.name) backend does not offer OpenBSD's kcov operations (OpenBSDKcovOperations)")
            }
            for mode in [modePC, modeCMP] {
                let outcome = Outcome()
                let join = try context.must("start the test's thread") { () throws(CoverageError) in
                    try ops.startThread { outcome.run { try harness(ops, context, mode: mode, expect: expect, test) } }
                }
                join()
                do { try outcome.check() } catch { throw ConformanceFailure("\(mode == modePC ? "-m pc" : "-m cmp"): \(error)") }
            }
        }
    }

    /// `main`: open, KIOSETBUFSIZE, mmap, `*cover = 0`, the test, `check_coverage`, munmap, close.
    static func harness(
        _ ops: any OpenBSDKcovOperations, _ context: CheckContext, mode: Int32, expect: Expectation,
        _ test: (any OpenBSDKcovOperations, CheckContext, Harness) throws -> Void
    ) throws {
        let words = harnessEntries
        let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
        let address: UnsafeMutableRawPointer
        do {
            try context.must("KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
            address = try context.must("mmap") { () throws(CoverageError) in try ops.mapBuffer(fd, words: words) }
        } catch {
            ops.closeDevice(fd)
            throw error
        }
        let harness = Harness(fd: fd, mode: mode, address: address, words: words)
        defer {
            ops.unmapBuffer(address, words: words)
            if !harness.closed { ops.closeDevice(fd) }
            if let reopened = harness.reopened { ops.closeDevice(reopened) }
        }
        harness.buffer.reset()
        try test(ops, context, harness)
        try checkCoverage(harness.buffer, mode: mode, expect: expect, what: "the harness's buffer")
    }

    /// `check_coverage`: the expectation, a count below the buffer's size (CMP: four words a
    /// record), and in CMP mode every record's size field at most 3.
    static func checkCoverage(_ buffer: CoverageBuffer, mode: Int32, expect: Expectation, what: String) throws {
        let count = buffer.rawCount
        switch expect {
        case .either: return
        case .coverage: if count == 0 { throw ConformanceFailure("\(what): coverage empty (count=0)") }
        case .empty: if count != 0 { throw ConformanceFailure("\(what): coverage not empty (count=\(count))") }
        }
        let words = UInt64(buffer.wordCount)
        guard count < words else { throw ConformanceFailure("\(what): coverage overflow (count=\(count), max=\(words))") }
        guard mode == modeCMP else { return }
        guard count * 4 < words else { throw ConformanceFailure("\(what): coverage cmp overflow (count=\(count * 4), max=\(words))") }
        let trace = buffer.read(mode: .comparisons, pcKind: .kernelAddress)
        if let bad = trace.comparisons.first(where: { $0.type >> 1 > 3 }) {
            throw ConformanceFailure("\(what): coverage cmp invalid size (type 0x\(String(bad.type, radix: 16)))")
        }
    }

    /// After a child is gone: the harness's fd enables and disables again on this thread.
    static func reusable(_ ops: any OpenBSDKcovOperations, _ context: CheckContext, _ harness: Harness) throws {
        try context.must("KIOENABLE after the child exited") { () throws(CoverageError) in try ops.enable(harness.fd, rawMode: harness.mode) }
        try context.must("KIODISABLE after the child exited") { () throws(CoverageError) in try ops.disable(harness.fd) }
    }

    /// KIOREMOTEATTACH `{KCOV_REMOTE_COMMON, 0}` and KIOENABLE in the harness's mode.
    static func attachAndEnable(_ ops: any OpenBSDKcovOperations, _ context: CheckContext, _ harness: Harness) throws {
        let mode: CoverageMode = harness.mode == modePC ? .pc : .comparisons
        try context.must("KIOREMOTEATTACH and KIOENABLE") { () throws(CoverageError) in
            try ops.enableRemote(harness.fd, mode: mode, RemoteRequest(targets: [.common(instance: 0)], sectionWords: 0))
        }
    }
}
