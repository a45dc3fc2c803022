public import CoverageAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// What the checks made from each kernel's own kcov tests (NetBSDChecks, FreeBSDChecks,
// OpenBSDChecks) share: a thread's verdict handed back after the join, a simulated process exit,
// and the device still working after a misuse.

/// What a thread of a check threw, handed to the checking thread after the join.
final class Outcome: Sendable {
    private let error = Mutex<String?>(nil)

    func run(_ body: () throws -> Void) {
        do { try body() } catch { self.error.withLock { $0 = String(describing: error) } }
    }

    func check() throws {
        if let message = error.withLock({ $0 }) { throw ConformanceFailure(message) }
    }
}

/// The process exits with everything still open: `exitProcess` is the backend's simulated exit; a
/// kernel where that cannot be simulated makes the check not applicable (after `cleanUp`).
func exitWithoutCleanup(_ exitProcess: () throws(CoverageError) -> Void, cleanUp: () -> Void) throws {
    do {
        try exitProcess()
    } catch where error.code == .unsupportedOperation {
        cleanUp()
        throw ConformanceNotApplicable("process exit cannot be simulated here: \(error.message)")
    } catch {
        throw ConformanceFailure("process exit failed: \(error)")
    }
}

/// After a misuse the device still opens, sizes, maps, enables in PC mode and disables.
func deviceStillWorks(_ context: CheckContext, words: Int) throws {
    try context.withInstance(words: words) { instance in
        try context.must("enable(pc) afterwards") { () throws(CoverageError) in try context.backend.enable(instance.fd, mode: .pc) }
        try context.must("disable afterwards") { () throws(CoverageError) in try context.backend.disable(instance.fd) }
    }
}

/// Runs `body` with the process operation a check needs; `.unsupportedOperation` from it makes the
/// check not applicable (a real kernel where the model's simulation has no equivalent).
func needing<T>(_ what: String, _ body: () throws(CoverageError) -> T) throws -> T {
    do {
        return try body()
    } catch where error.code == .unsupportedOperation {
        throw ConformanceNotApplicable("\(what) cannot be done here: \(error.message)")
    } catch {
        throw ConformanceFailure("\(what) failed: \(error)")
    }
}

/// `kcov_mmap_enable_thread_close` of NetBSD and FreeBSD: a thread started with `startThread`
/// opens, sizes and maps an fd and enables it with `enable`; this thread closes that fd while it
/// is enabled; the other thread then ends and is joined; the device must still work.
func closeUnderAnEnabledThread(
    _ context: CheckContext, words: Int, startThread: (@escaping @Sendable () -> Void) throws(CoverageError) -> @Sendable () -> Void,
    enable: @escaping @Sendable (Int32) throws(CoverageError) -> Void
) throws {
    let backend = context.backend
    let opened = Atomic<Int64>(-1)
    let closed = Atomic<Bool>(false)
    let mapping = Atomic<UInt>(0)
    let outcome = Outcome()
    let join = try context.must("start a thread") { () throws(CoverageError) in
        try startThread {
            outcome.run {
                // On a failure the fd is closed here and the main thread told not to wait.
                defer { if opened.load(ordering: .acquiring) < 0 { opened.store(-2, ordering: .releasing) } }
                let fd = try context.must("open") { () throws(CoverageError) in try backend.openDevice() }
                do {
                    try context.must("set the buffer size") { () throws(CoverageError) in try backend.initialize(fd, words: words) }
                    let address = try context.must("mmap") { () throws(CoverageError) in try backend.mapBuffer(fd, words: words) }
                    mapping.store(UInt(bitPattern: address), ordering: .releasing)
                    try context.must("enable") { () throws(CoverageError) in try enable(fd) }
                } catch {
                    backend.closeDevice(fd)
                    throw error
                }
                opened.store(Int64(fd), ordering: .releasing)
                while !closed.load(ordering: .acquiring) { sched_yield() }
            }
        }
    }
    var fd = opened.load(ordering: .acquiring)
    while fd == -1 {
        sched_yield()
        fd = opened.load(ordering: .acquiring)
    }
    if fd >= 0 { backend.closeDevice(Int32(fd)) }
    closed.store(true, ordering: .releasing)
    join()
    if let address = UnsafeMutableRawPointer(bitPattern: mapping.load(ordering: .acquiring)) {
        backend.unmapBuffer(address, words: words)
    }
    try outcome.check()
    try deviceStillWorks(context, words: words)
}
