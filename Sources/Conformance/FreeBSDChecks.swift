public import CoverageAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What FreeBSD's own kcov tests (`tests/sys/kern/kcov.c`) need from a backend beyond
/// ``KcovDriver``: raw mode numbers (the tests enable with -1), threads that are destroyed when
/// joined, and process exit.
///
/// Implementation requirements:
/// - ``enable(_:rawMode:)`` sends KIOENABLE with the mode number as given (0 TRACE_PC, 1
///   TRACE_CMP, anything else refused) and maps errors as ``KcovDriver/enable(_:mode:)`` does.
/// - ``startThread(_:)`` runs its closure on a new thread; the returned closure joins it, after
///   which the kernel has destroyed that thread (returning what it left enabled to READY).
/// - ``exitProcess()`` ends the process that holds every open fd and mapping without cleanup, or
///   throws `.unsupportedOperation` where that cannot be done and the checks continue.
public protocol FreeBSDKcovOperations: KcovDriver {
    /// The page size (`getpagesize()` of the tests).
    var pageSize: Int { get }
    /// KIOENABLE with any mode number.
    func enable(_ fd: Int32, rawMode: Int32) throws(CoverageError)
    /// Starts a thread; returns its join.
    func startThread(_ body: @escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void
    /// Exits the process without closing or unmapping anything.
    func exitProcess() throws(CoverageError)
}

/// FreeBSD's own kcov test list (`tests/sys/kern/kcov.c`, Docs/kcov-freebsd.md#freebsds-own-tests,
/// 13 ATF cases), one check per case with the case's name, expecting what the case expects, run
/// through a backend that adopts ``FreeBSDKcovOperations``. Where a case only asserts that a call
/// fails, the check also asserts which shared error code it fails with.
public enum FreeBSDChecks {
    static let modePC: Int32 = 0
    static let modeCMP: Int32 = 1

    /// Every FreeBSD-specific check, in the order `ATF_TP_ADD_TCS` adds the cases.
    public static let all: [ConformanceCheck] = [
        check("kcov_bufsize", "KIOSETBUFSIZE of 0 and of 1 entry fail (bufferSize); 2 succeeds; 2 again fails (busy).") { ops, context in
            try context.withInstance { instance in
                for entries in [0, 1] {
                    try context.expectError(.bufferSize, "KIOSETBUFSIZE(\(entries))") { () throws(CoverageError) in
                        try ops.initialize(instance.fd, words: entries)
                    }
                }
                try context.must("KIOSETBUFSIZE(2)") { () throws(CoverageError) in try ops.initialize(instance.fd, words: 2) }
                try context.expectError(.busy, "KIOSETBUFSIZE(2) again") { () throws(CoverageError) in try ops.initialize(instance.fd, words: 2) }
            }
        },
        check("kcov_mmap", "mmap before KIOSETBUFSIZE fails; of a 2-page buffer, 1 and 3 pages fail, 2 pages map twice and the two mappings are one buffer.") { ops, context in
            let page = ops.pageSize / 8
            try context.withInstance { instance in
                try context.expectError(.invalidState, "mmap(1 page) before KIOSETBUFSIZE") { () throws(CoverageError) in
                    ops.unmapBuffer(try ops.mapBuffer(instance.fd, words: page), words: page)
                }
                try context.must("KIOSETBUFSIZE(2 pages)") { () throws(CoverageError) in try ops.initialize(instance.fd, words: 2 * page) }
                for pages in [1, 3] {
                    try context.expectError(.invalidState, "mmap(\(pages) pages) of a 2-page buffer") { () throws(CoverageError) in
                        ops.unmapBuffer(try ops.mapBuffer(instance.fd, words: pages * page), words: pages * page)
                    }
                }
                let first = try context.must("mmap(2 pages)") { () throws(CoverageError) in try ops.mapBuffer(instance.fd, words: 2 * page) }
                defer { ops.unmapBuffer(first, words: 2 * page) }
                let second = try context.must("mmap(2 pages) again") { () throws(CoverageError) in try ops.mapBuffer(instance.fd, words: 2 * page) }
                defer { ops.unmapBuffer(second, words: 2 * page) }
                let one = first.assumingMemoryBound(to: Atomic<UInt64>.self)
                let other = second.assumingMemoryBound(to: Atomic<UInt64>.self)
                one[0].store(0x0123_4567_89ab_cdef, ordering: .relaxed)
                try context.expect(other[0].load(ordering: .relaxed) == 0x0123_4567_89ab_cdef, "a write through one mapping is not seen through the other")
                other[0].store(0xfedc_ba98_7654_3210, ordering: .relaxed)
                try context.expect(one[0].load(ordering: .relaxed) == 0xfedc_ba98_7654_3210, "a write through the second mapping is not seen through the first")
            }
        },
        check("kcov_mmap_no_munmap", "KIOSETBUFSIZE and mmap, then close without munmap: no panic, and the mapping keeps the buffer.") { ops, context in
            let words = ops.pageSize / 8
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            try context.must("KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
            let address = try context.must("mmap") { () throws(CoverageError) in try ops.mapBuffer(fd, words: words) }
            let buffer = CoverageBuffer(address: address, wordCount: words)
            let marker: UInt64 = 0x6b63_6f76
            address.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(marker, ordering: .relaxed)
            ops.closeDevice(fd)
            try context.expect(buffer.rawCount == marker, "after close the mapping reads \(buffer.rawCount), not the \(marker) written before it")
            ops.unmapBuffer(address, words: words)
            try deviceStillWorks(context, words: words)
        },
        check("kcov_mmap_no_munmap_no_close", "KIOSETBUFSIZE and mmap, then the process exits with neither munmap nor close: no panic.") { ops, context in
            let words = ops.pageSize / 8
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            try context.must("KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
            let address = try context.must("mmap") { () throws(CoverageError) in try ops.mapBuffer(fd, words: words) }
            try exitWithoutCleanup(ops.exitProcess) {
                ops.unmapBuffer(address, words: words)
                ops.closeDevice(fd)
            }
            try deviceStillWorks(context, words: words)
        },
        check("kcov_enable", "KIOENABLE before KIOSETBUFSIZE, KIODISABLE before KIOENABLE, KIOENABLE(-1), a second KIOENABLE in either mode and a second KIODISABLE fail; PC and CMP cycles succeed.") { ops, context in
            try context.withInstance { instance in
                let fd = instance.fd
                try context.expectError(.invalidState, "KIOENABLE(PC) before KIOSETBUFSIZE") { () throws(CoverageError) in try ops.enable(fd, rawMode: modePC) }
                try context.must("KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: ops.pageSize / 8) }
                try context.expectError(.notOwner, "KIODISABLE before KIOENABLE") { () throws(CoverageError) in try ops.disable(fd) }
                try context.expectError(.invalidArgument, "KIOENABLE(-1)") { () throws(CoverageError) in try ops.enable(fd, rawMode: -1) }
                try context.must("KIOENABLE(PC)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modePC) }
                try context.expectError(.invalidState, "KIOENABLE(PC) again") { () throws(CoverageError) in try ops.enable(fd, rawMode: modePC) }
                try context.expectError(.invalidState, "KIOENABLE(CMP) while running") { () throws(CoverageError) in try ops.enable(fd, rawMode: modeCMP) }
                try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(fd) }
                try context.expectError(.notOwner, "KIODISABLE again") { () throws(CoverageError) in try ops.disable(fd) }
                try context.must("KIOENABLE(CMP)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modeCMP) }
                try context.must("KIODISABLE after KIOENABLE(CMP)") { () throws(CoverageError) in try ops.disable(fd) }
            }
        },
        check("kcov_enable_no_disable", "KIOENABLE, then close without KIODISABLE: the thread frees the fd when it is destroyed; no panic.") { ops, context in
            let words = ops.pageSize / 8
            let outcome = Outcome()
            let join = try context.must("start a thread") { () throws(CoverageError) in
                try ops.startThread {
                    outcome.run {
                        let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
                        try context.must("KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
                        try context.must("KIOENABLE(PC)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modePC) }
                        ops.closeDevice(fd)
                    }
                }
            }
            join()
            try outcome.check()
            try deviceStillWorks(context, words: words)
        },
        check("kcov_enable_no_disable_no_close", "KIOENABLE, then the process exits with neither KIODISABLE nor close: no panic.") { ops, context in
            let words = ops.pageSize / 8
            let fd = try context.must("open") { () throws(CoverageError) in try ops.openDevice() }
            try context.must("KIOSETBUFSIZE") { () throws(CoverageError) in try ops.initialize(fd, words: words) }
            try context.must("KIOENABLE(PC)") { () throws(CoverageError) in try ops.enable(fd, rawMode: modePC) }
            try exitWithoutCleanup(ops.exitProcess) {
                try? ops.disable(fd)
                ops.closeDevice(fd)
            }
            try deviceStillWorks(context, words: words)
        },
        check("kcov_mmap_enable_thread_close", "A thread sizes, maps and enables (PC); the main thread closes that fd while it runs; the thread exits: no panic.") { ops, context in
            try closeUnderAnEnabledThread(context, words: ops.pageSize / 8, startThread: ops.startThread) { fd throws(CoverageError) in
                try ops.enable(fd, rawMode: modePC)
            }
        },
        check("kcov_basic_pc", "PC mode: after resetting buf[0], a syscall leaves buf[0] non-zero; KIODISABLE succeeds.") { ops, context in
            try basic(ops, context, rawMode: modePC)
        },
        check("kcov_basic_cmp", "CMP mode: after resetting buf[0], a syscall leaves buf[0] non-zero; KIODISABLE succeeds.") { ops, context in
            try basic(ops, context, rawMode: modeCMP)
        },
        check("kcov_thread_pc", "With PC enabled on the main thread, another thread that resets buf[0] and makes a syscall leaves it at 0.") { ops, context in
            try otherThread(ops, context, rawMode: modePC)
        },
        check("kcov_thread_cmp", "With CMP enabled on the main thread, another thread that resets buf[0] and makes a syscall leaves it at 0.") { ops, context in
            try otherThread(ops, context, rawMode: modeCMP)
        },
        check("kcov_enable_multi_thread", "A thread enables PC on a shared fd, records and exits without KIODISABLE; a second thread can then enable CMP on it and record.") { ops, context in
            try context.withInstance(words: ops.pageSize / 8) { instance in
                let fd = instance.fd
                let address = UInt(bitPattern: instance.mapping!)
                let words = instance.words
                for (number, mode) in [(1, modePC), (2, modeCMP)] {
                    let outcome = Outcome()
                    let join = try context.must("start thread \(number)") { () throws(CoverageError) in
                        try ops.startThread {
                            outcome.run {
                                try context.must("KIOENABLE(\(mode)) in thread \(number)") { () throws(CoverageError) in try ops.enable(fd, rawMode: mode) }
                                let buffer = CoverageBuffer(address: UnsafeMutableRawPointer(bitPattern: address)!, wordCount: words)
                                buffer.reset()
                                ops.probe()
                                try context.expect(buffer.rawCount != 0, "no records found in thread \(number)")
                            }
                        }
                    }
                    join()
                    try outcome.check()
                }
            }
        },
    ]

    // MARK: Helpers

    /// A check that needs ``FreeBSDKcovOperations``; not applicable to backends without them.
    static func check(
        _ name: String, _ summary: String,
        _ body: @escaping @Sendable (any FreeBSDKcovOperations, CheckContext) throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck("freebsd.\(name)", summary) { context in
            guard let ops = context.backend as? any FreeBSDKcovOperations else {
                throw ConformanceNotApplicable("the \(context.backend.name) backend does not offer FreeBSD's kcov operations (FreeBSDKcovOperations)")
            }
            try body(ops, context)
        }
    }

    /// `basic_test`: one page, enable, reset buf[0], a syscall, buf[0] non-zero, disable.
    static func basic(_ ops: any FreeBSDKcovOperations, _ context: CheckContext, rawMode: Int32) throws {
        try context.withInstance(words: ops.pageSize / 8) { instance in
            try context.must("KIOENABLE(\(rawMode))") { () throws(CoverageError) in try ops.enable(instance.fd, rawMode: rawMode) }
            instance.buffer!.reset()
            ops.probe()
            let count = instance.buffer!.rawCount
            try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(instance.fd) }
            try context.expect(count != 0, "no records found in mode \(rawMode)")
        }
    }

    /// `thread_test`: enabled here; a helper thread resets buf[0], makes a syscall, and must see 0.
    static func otherThread(_ ops: any FreeBSDKcovOperations, _ context: CheckContext, rawMode: Int32) throws {
        try context.withInstance(words: ops.pageSize / 8) { instance in
            try context.must("KIOENABLE(\(rawMode))") { () throws(CoverageError) in try ops.enable(instance.fd, rawMode: rawMode) }
            let address = UInt(bitPattern: instance.mapping!)
            let words = instance.words
            let seen = Atomic<UInt64>(UInt64.max)
            let join = try context.must("start a thread") { () throws(CoverageError) in
                try ops.startThread {
                    let buffer = CoverageBuffer(address: UnsafeMutableRawPointer(bitPattern: address)!, wordCount: words)
                    buffer.reset()
                    ops.probe()
                    seen.store(buffer.rawCount, ordering: .releasing)
                }
            }
            join()
            try context.must("KIODISABLE") { () throws(CoverageError) in try ops.disable(instance.fd) }
            let count = seen.load(ordering: .acquiring)
            try context.expect(count == 0, count == UInt64.max ? "the other thread did not run" : "records changed in a thread that did not enable (count \(count))")
        }
    }
}
