public import CoverageAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What NetBSD's own kcov tests (`tests/modules/t_kcov.c`) need from a backend beyond
/// ``KcovDriver``: KCOV_MODE_NONE, dup2, LWPs that are reaped, and process exit.
///
/// Implementation requirements:
/// - ``enable(_:rawMode:)`` sends KCOV_IOC_ENABLE with the mode number as given (0 NONE, 1
///   TRACE_PC, 2 TRACE_CMP) and maps errors as ``KcovDriver/enable(_:mode:)`` does.
/// - ``duplicate(_:onto:)`` is dup2(2): `target` shares `fd`'s instance.
/// - ``startThread(_:)`` runs its closure on a new thread; the returned closure joins it, after
///   which the kernel has freed that thread (disabling what it left enabled).
/// - ``exitProcess()`` ends the process that holds every open fd and mapping without cleanup, or
///   throws `.unsupportedOperation` where that cannot be done and the checks continue.
public protocol NetBSDKcovOperations: KcovDriver {
    /// The page size mappings are rounded to (`PAGE_SIZE` of the tests).
    var pageSize: Int { get }
    /// KCOV_IOC_ENABLE with any mode number.
    func enable(_ fd: Int32, rawMode: Int32) throws(CoverageError)
    /// dup2(2) of a kcov fd; returns `target`.
    func duplicate(_ fd: Int32, onto target: Int32) throws(CoverageError) -> Int32
    /// Starts a thread; returns its join.
    func startThread(_ body: @escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void
    /// Exits the process without closing or unmapping anything.
    func exitProcess() throws(CoverageError)
}

/// NetBSD's own kcov test list (`tests/modules/t_kcov.c`, Docs/kcov-netbsd.md#netbsds-own-tests, 23 cases), one check
/// per ATF case with the case's name, expecting what the case expects, run through a backend that
/// adopts ``NetBSDKcovOperations``. Each ATF case runs in a process of its own; here each check
/// closes what it opens, except the two that end with the process exiting.
public enum NetBSDChecks {
    static let modeNone: Int32 = 0
    static let modePC: Int32 = 1
    static let modeCMP: Int32 = 2

    /// Every NetBSD-specific check, in the test file's order.
    public static let all: [ConformanceCheck] = [
        check("kcov_dup2", "dup2 of a kcov fd onto an unused fd succeeds, and closing both is safe.") { ops, context in
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            let target = try unusedDescriptor(ops, context)
            let copy = try context.must("dup2") { () throws(CoverageError) in try ops.duplicate(fd, onto: target) }
            try context.expect(copy == target, "dup2 returned \(copy), not \(target)")
            ops.closeDevice(fd)
            ops.closeDevice(copy)
        },
        check("kcov_multiopen", "Two simultaneous opens of the device in one process both succeed.") { ops, context in
            let first = try context.must("first open") { () throws(CoverageError) in try ops.openDevice() }
            defer { ops.closeDevice(first) }
            let second = try context.must("second open") { () throws(CoverageError) in try ops.openDevice() }
            ops.closeDevice(second)
        },
        check("kcov_open_close_open", "open, close, then open again succeeds.") { ops, context in
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            ops.closeDevice(fd)
            let again = try context.must("open again") { () throws(CoverageError) in try ops.openDevice() }
            ops.closeDevice(again)
        },
        check("kcov_bufsize", "SETBUFSIZE(0) fails (bufferSize); SETBUFSIZE(2) succeeds.") { ops, context in
            try context.withInstance { instance in
                try context.expectError(.bufferSize, "SETBUFSIZE(0)") { () throws(CoverageError) in
                    try ops.initialize(instance.fd, words: 0)
                }
                try context.must("SETBUFSIZE(2)") { () throws(CoverageError) in try ops.initialize(instance.fd, words: 2) }
            }
        },
        check("kcov_mmap", "mmap of a page before SETBUFSIZE fails; after SETBUFSIZE(2 pages), a shared read-write mmap of 2 pages succeeds.") { ops, context in
            let page = ops.pageSize / 8
            try context.withInstance { instance in
                try context.expectError(.invalidState, "mmap before SETBUFSIZE") { () throws(CoverageError) in
                    let address = try ops.mapBuffer(instance.fd, words: page)
                    ops.unmapBuffer(address, words: page)
                }
                try context.must("SETBUFSIZE(2 pages)") { () throws(CoverageError) in try ops.initialize(instance.fd, words: 2 * page) }
                let address = try context.must("mmap(2 pages)") { () throws(CoverageError) in try ops.mapBuffer(instance.fd, words: 2 * page) }
                ops.unmapBuffer(address, words: 2 * page)
            }
        },
        check("kcov_mmap_no_munmap", "SETBUFSIZE and mmap, then close without munmap: no panic, and the mapping stays usable.") { ops, context in
            let words = ops.pageSize / 8
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            try context.must("SETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
            let address = try context.must("mmap") { () throws(CoverageError) in try ops.mapBuffer(fd, words: words) }
            let buffer = CoverageBuffer(address: address, wordCount: words)
            // A marker written before the close must still be there after it: the mapping keeps
            // the same buffer, not pages the kernel freed.
            let marker: UInt64 = 0x6b63_6f76
            buffer.countAddress.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(marker, ordering: .relaxed)
            ops.closeDevice(fd)
            try context.expect(buffer.rawCount == marker, "after close the mapping reads \(buffer.rawCount), not the \(marker) written before it")
            buffer.reset()
            try context.expect(buffer.rawCount == 0, "the mapping did not outlive close")
            // The process's exit would unmap it; this one goes on.
            ops.unmapBuffer(address, words: words)
        },
        check("kcov_mmap_no_munmap_no_close", "SETBUFSIZE and mmap, then the process exits with neither munmap nor close: no panic.") { ops, context in
            let words = ops.pageSize / 8
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            try context.must("SETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
            _ = try context.must("mmap") { () throws(CoverageError) in try ops.mapBuffer(fd, words: words) }
            try exitWithoutCleanup(ops.exitProcess) { ops.closeDevice(fd) }
            try deviceStillWorks(context, words: ops.pageSize / 8)
        },
        check("kcov_enable", "ENABLE before SETBUFSIZE, DISABLE before ENABLE, a second ENABLE and a second DISABLE fail; ENABLE/DISABLE cycles in NONE, PC and CMP succeed.") { ops, context in
            try context.withInstance { instance in
                let fd = instance.fd
                try context.expectError(.invalidState, "ENABLE(NONE) before SETBUFSIZE") { () throws(CoverageError) in
                    try ops.enable(fd, rawMode: modeNone)
                }
                try context.must("SETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: ops.pageSize / 8) }
                try context.expectError(.notOwner, "DISABLE before ENABLE") { () throws(CoverageError) in try ops.disable(fd) }
                try context.must("ENABLE(NONE)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modeNone) }
                try context.expectError(.invalidState, "ENABLE(NONE) again") { () throws(CoverageError) in
                    try ops.enable(fd, rawMode: modeNone)
                }
                try context.must("DISABLE") { () throws(CoverageError) in try ops.disable(fd) }
                try context.expectError(.notOwner, "DISABLE again") { () throws(CoverageError) in try ops.disable(fd) }
                for mode in [modeNone, modePC, modeCMP] {
                    try context.must("ENABLE(\(mode))") { () throws(CoverageError) in try ops.enable(fd, rawMode: mode) }
                    try context.must("DISABLE after ENABLE(\(mode))") { () throws(CoverageError) in try ops.disable(fd) }
                }
            }
        },
        check("kcov_enable_no_disable", "ENABLE(NONE), then close without DISABLE: the thread frees the instance later; no panic.") { ops, context in
            let outcome = Outcome()
            let join = try context.must("start a thread") { () throws(CoverageError) in
                try ops.startThread {
                    outcome.run {
                        let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
                        try context.must("SETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: ops.pageSize / 8) }
                        try context.must("ENABLE(NONE)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modeNone) }
                        ops.closeDevice(fd)
                    }
                }
            }
            join()
            try outcome.check()
            try deviceStillWorks(context, words: ops.pageSize / 8)
        },
        check("kcov_enable_no_disable_no_close", "ENABLE(NONE), then the process exits with neither DISABLE nor close: no panic.") { ops, context in
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            try context.must("SETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: ops.pageSize / 8) }
            try context.must("ENABLE(NONE)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modeNone) }
            try exitWithoutCleanup(ops.exitProcess) { ops.closeDevice(fd) }
            try deviceStillWorks(context, words: ops.pageSize / 8)
        },
        check("kcov_mmap_enable_thread_close", "A thread opens, sizes, maps and enables (NONE); another closes that fd while it is enabled; the thread exits: no panic.") { ops, context in
            try closeUnderAnEnabledThread(context, words: ops.pageSize / 8, startThread: ops.startThread) { fd throws(CoverageError) in
                try ops.enable(fd, rawMode: modeNone)
            }
        },
        check("kcov_basic_pc", "PC mode: after resetting buf[0], a syscall leaves buf[0] non-zero; DISABLE succeeds.") { ops, context in
            try basic(ops, context, mode: .pc, duplicated: false)
        },
        check("kcov_basic_cmp", "CMP mode: after resetting buf[0], a syscall leaves buf[0] non-zero; DISABLE succeeds (NetBSD skips it: \"XXX: GCC8 needed\").") { ops, context in
            try basic(ops, context, mode: .comparisons, duplicated: false)
        },
        check("kcov_basic_dup2_pc", "kcov_basic_pc on a dup2'd fd.") { ops, context in
            try basic(ops, context, mode: .pc, duplicated: true)
        },
        check("kcov_basic_dup2_cmp", "kcov_basic_cmp on a dup2'd fd (NetBSD skips it: \"XXX: GCC8 needed\").") { ops, context in
            try basic(ops, context, mode: .comparisons, duplicated: true)
        },
        check("kcov_multienable_on_the_same_thread", "fd1 ENABLE succeeds; fd2 ENABLE on the same thread fails with EBUSY (busy).") { ops, context in
            let words = ops.pageSize / 8
            try context.withInstance(words: words) { first in
                try context.withInstance(words: words) { second in
                    try context.must("ENABLE(fd1)") { () throws(CoverageError) in try ops.enable(first.fd, rawMode: modePC) }
                    defer { try? ops.disable(first.fd) }
                    do {
                        try ops.enable(second.fd, rawMode: modePC)
                        try? ops.disable(second.fd)
                        throw ConformanceFailure("ENABLE(fd2) on the same thread succeeded")
                    } catch let error as CoverageError {
                        try context.expect(error.errno == EBUSY, "ENABLE(fd2) failed with errno \(error.errno.map(String.init) ?? "none"), not EBUSY")
                        try context.expect(error.code == .busy, "ENABLE(fd2) failed as \(error.code.rawValue), not busy")
                    }
                }
            }
        },
        check("kcov_buffer_access_from_custom_thread", "Another thread reads and writes buf[0] of a PC-enabled buffer without crashing.") { ops, context in
            try context.withInstance(words: ops.pageSize / 8) { instance in
                try context.must("ENABLE(PC)") { () throws(CoverageError) in try ops.enable(instance.fd, rawMode: modePC) }
                defer { try? ops.disable(instance.fd) }
                let address = UInt(bitPattern: instance.mapping!)
                let words = instance.words
                let seen = Atomic<UInt64>(0)
                let join = try context.must("start a thread") { () throws(CoverageError) in
                    try ops.startThread {
                        let buffer = CoverageBuffer(address: UnsafeMutableRawPointer(bitPattern: address)!, wordCount: words)
                        buffer.reset()
                        seen.store(buffer.rawCount &+ 1, ordering: .releasing)
                    }
                }
                join()
                try context.expect(seen.load(ordering: .acquiring) != 0, "the other thread did not run")
            }
        },
        check("kcov_thread", "With PC enabled on the main thread, another thread's syscalls leave buf[0] at 0.") { ops, context in
            try context.withInstance(words: ops.pageSize / 8) { instance in
                let buffer = instance.buffer!
                try context.must("ENABLE(PC)") { () throws(CoverageError) in try ops.enable(instance.fd, rawMode: modePC) }
                defer { try? ops.disable(instance.fd) }
                let done = Atomic<Bool>(false)
                let go = Atomic<Bool>(false)
                let join = try context.must("start a thread") { () throws(CoverageError) in
                    try ops.startThread {
                        // Only once this thread's buffer is cleared: otherwise syscalls leaked
                        // before the clear would go unseen.
                        while !go.load(ordering: .acquiring) {}
                        for _ in 0..<1000 { ops.probe() }
                        done.store(true, ordering: .releasing)
                    }
                }
                buffer.reset()
                go.store(true, ordering: .releasing)
                // Spin in user space: this thread makes no syscall until the other has finished.
                while !done.load(ordering: .acquiring) {}
                let count = buffer.rawCount
                join()
                try context.expect(count == 0, "another thread's syscalls left \(count) entries in this thread's buffer")
            }
        },
    ] + [2, 4, 8, 16, 32].map(multipleThreads)

    /// `kcov_multiple_threads{N}`: N threads each open their own fd, SETBUFSIZE(PAGE/8), mmap,
    /// ENABLE(PC), reset, make a syscall, see buf[0] non-zero, DISABLE, munmap and close, concurrently.
    static func multipleThreads(_ count: Int) -> ConformanceCheck {
        check("kcov_multiple_threads\(count)", "\(count) threads trace their own syscalls into their own buffers at the same time.") { ops, context in
            let words = ops.pageSize / 8
            let outcomes = (0..<count).map { _ in Outcome() }
            let start = Atomic<Bool>(false)
            var joins: [@Sendable () -> Void] = []
            for outcome in outcomes {
                joins.append(try context.must("start a thread") { () throws(CoverageError) in
                    try ops.startThread {
                        while !start.load(ordering: .acquiring) { sched_yield() }
                        outcome.run {
                            try context.withInstance(words: words) { instance in
                                try context.must("ENABLE(PC)") { () throws(CoverageError) in try ops.enable(instance.fd, rawMode: modePC) }
                                instance.buffer!.reset()
                                ops.probe()
                                let recorded = instance.buffer!.rawCount
                                try context.must("DISABLE") { () throws(CoverageError) in try ops.disable(instance.fd) }
                                try context.expect(recorded != 0, "a thread's own syscall left buf[0] at 0")
                            }
                        }
                    }
                })
            }
            start.store(true, ordering: .releasing)
            for join in joins { join() }
            for (index, outcome) in outcomes.enumerated() {
                do { try outcome.check() } catch { throw ConformanceFailure("thread \(index): \(error)") }
            }
        }
    }

    // MARK: Helpers

    /// A check that needs ``NetBSDKcovOperations``; not applicable to backends without them.
    static func check(
        _ name: String, _ summary: String,
        _ body: @escaping @Sendable (any NetBSDKcovOperations, CheckContext) throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck("netbsd.\(name)", summary) { context in
            guard let ops = context.backend as? any NetBSDKcovOperations else {
                throw ConformanceNotApplicable("the \(context.backend.name) backend does not offer NetBSD's kcov operations (NetBSDKcovOperations)")
            }
            try body(ops, context)
        }
    }

    /// A descriptor number that is free now: one the device just handed out and took back.
    static func unusedDescriptor(_ ops: any NetBSDKcovOperations, _ context: CheckContext) throws -> Int32 {
        let fd = try context.must("open for a free fd number") { () throws(CoverageError) in try ops.openDevice() }
        ops.closeDevice(fd)
        return fd
    }

    /// `kcov_basic_*`: reset buf[0], make a syscall, see buf[0] non-zero, DISABLE; on a dup2'd fd
    /// (the original closed) if `duplicated`.
    static func basic(_ ops: any NetBSDKcovOperations, _ context: CheckContext, mode: CoverageMode, duplicated: Bool) throws {
        let words = ops.pageSize / 8
        var fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
        if duplicated {
            let target = try unusedDescriptor(ops, context)
            do {
                let copy = try ops.duplicate(fd, onto: target)
                ops.closeDevice(fd)
                fd = copy
            } catch {
                ops.closeDevice(fd)
                throw ConformanceFailure("dup2 failed: \(error)")
            }
        }
        defer { ops.closeDevice(fd) }
        try context.must("SETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
        let address = try context.must("mmap") { () throws(CoverageError) in try ops.mapBuffer(fd, words: words) }
        defer { ops.unmapBuffer(address, words: words) }
        let buffer = CoverageBuffer(address: address, wordCount: words)
        try context.must("ENABLE(\(mode.rawValue))") { () throws(CoverageError) in try ops.enable(fd, mode: mode) }
        buffer.reset()
        ops.probe()
        let count = buffer.rawCount
        try context.must("DISABLE") { () throws(CoverageError) in try ops.disable(fd) }
        try context.expect(count != 0, "buf[0] is still 0 after a syscall in \(mode.rawValue) mode")
    }
}
