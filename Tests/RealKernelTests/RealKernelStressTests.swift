import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Many collectors at once on the real device: 32 threads, each with its own collector, each
/// making 1,000 calls of a syscall no other thread makes, in PC and in comparison mode. kcov's
/// state is per task (`kcov_task_init`, `current->kcov_area` in kernel/kcov.c; Docs/kcov-linux.md,
/// "Threading"), so no trace may hold a PC of another thread's syscall handler.
@Suite(.serialized)
struct RealKernelStressTests {
    static let threadCount = 32
    static let callsPerThread = 1_000

    /// A syscall the threads can make without side effects, and the names of its handler in
    /// `/proc/kallsyms` (`__x64_sys_NAME`, and `__do_sys_NAME` where the compiler kept it apart).
    /// None of them is a call the collector, the allocator or the thread start make themselves
    /// (ioctl, mmap, munmap, futex, clone), nor one the vDSO answers in user space, nor one in
    /// `kernel/sched/`, which is built without kcov instrumentation (its handlers record nothing).
    struct StressSyscall: Sendable {
        var name: String
        var call: @Sendable () -> Void
    }

    /// Taken once: calling getpid inside the kill candidate would make two syscalls.
    static let ownPID = getpid()

    static let candidates: [StressSyscall] = [
        .init(name: "getppid") { _ = getppid() },
        .init(name: "getpid") { _ = getpid() },
        .init(name: "getuid") { _ = getuid() },
        .init(name: "geteuid") { _ = geteuid() },
        .init(name: "getgid") { _ = getgid() },
        .init(name: "getegid") { _ = getegid() },
        .init(name: "getpgrp") { _ = getpgrp() },
        .init(name: "getsid") { _ = getsid(0) },
        .init(name: "getpgid") { _ = getpgid(0) },
        .init(name: "umask") { _ = umask(0o022) },
        .init(name: "getpriority") { _ = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) },
        .init(name: "prlimit64") { var limit = rlimit(); _ = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) },
        .init(name: "getrusage") { var usage = rusage(); _ = getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) },
        .init(name: "times") { var buffer = tms(); _ = times(&buffer) },
        .init(name: "getcwd") { var buffer = [CChar](repeating: 0, count: 256); _ = getcwd(&buffer, buffer.count) },
        .init(name: "newuname") { var name = utsname(); _ = uname(&name) },
        .init(name: "getgroups") { _ = getgroups(0, nil) },
        .init(name: "getitimer") { var timer = itimerval(); _ = getitimer(__itimer_which_t(ITIMER_PROF.rawValue), &timer) },
        .init(name: "lseek") { _ = lseek(-1, 0, SEEK_CUR) },
        .init(name: "pread64") { var byte: UInt8 = 0; _ = pread(-1, &byte, 1, 0) },
        .init(name: "fstatfs") { var status = statvfs(); _ = fstatvfs(-1, &status) },
        .init(name: "pwrite64") { var byte: UInt8 = 0; _ = pwrite(-1, &byte, 1, 0) },
        .init(name: "alarm") { _ = alarm(0) },
        .init(name: "fdatasync") { _ = fdatasync(-1) },
        .init(name: "ftruncate") { _ = ftruncate(-1, 0) },
        .init(name: "fchmod") { _ = fchmod(-1, 0) },
        .init(name: "fchown") { _ = fchown(-1, 0, 0) },
        .init(name: "flock") { _ = flock(-1, LOCK_SH) },
        .init(name: "fchdir") { _ = fchdir(-1) },
        .init(name: "dup") { _ = dup(-1) },
        .init(name: "fsync") { _ = fsync(-1) },
        .init(name: "kill") { _ = kill(ownPID, 0) },
        .init(name: "readlink") { var buffer = [CChar](repeating: 0, count: 64); _ = readlink("/proc", &buffer, buffer.count) },
        .init(name: "rmdir") { _ = rmdir("/nonexistent-kcov-stress") },
        .init(name: "unlink") { _ = unlink("/nonexistent-kcov-stress") },
        .init(name: "truncate") { _ = truncate("/nonexistent-kcov-stress", 0) },
        .init(name: "chmod") { _ = chmod("/nonexistent-kcov-stress", 0) },
    ]

    /// Text ranges of each kernel symbol in `/proc/kallsyms`, by exact name.
    static func handlerRanges() throws -> [String: Range<UInt64>] {
        let symbols = try kernelTextSymbols()
        var ranges: [String: Range<UInt64>] = [:]
        for index in symbols.indices.dropLast() where symbols[index].name.contains("sys_") {
            ranges[String(symbols[index].name)] = symbols[index].address..<symbols[index + 1].address
        }
        return ranges
    }

    /// The first 32 candidates whose handler the running kernel has, each with its handler ranges.
    static func chosenSyscalls() throws -> [(syscall: StressSyscall, handler: [Range<UInt64>])] {
        let ranges = try handlerRanges()
        let present = candidates.compactMap { syscall -> (StressSyscall, [Range<UInt64>])? in
            let handler = ["__x64_sys_", "__do_sys_"].compactMap { ranges[$0 + syscall.name] }
            return handler.isEmpty ? nil : (syscall, handler)
        }
        return Array(present.prefix(threadCount))
    }

    /// What one thread saw: whether its trace held its own handler, the other threads' handlers
    /// it held (must be none), and the trace's size.
    struct ThreadOutcome: Sendable {
        var name: String
        var ownHandlerPCs = 0
        var foreign: [String] = []
        var entries = 0
        var truncated = false
        var error: String?
    }

    @Test(arguments: [CoverageMode.pc, .comparisons])
    func thirtyTwoThreadsEachSeeOnlyTheirOwnSyscalls(mode: CoverageMode) throws {
        let chosen = try Self.chosenSyscalls()
        try #require(chosen.count == Self.threadCount, "the kernel has only \(chosen.count) of the candidate syscalls: \(chosen.map(\.syscall.name))")
        _ = Self.ownPID  // initialised here, not by the kill thread's first call while enabled
        let before = try processResources()
        let ready = Atomic<Int>(0)
        let go = Atomic<Bool>(false)
        let outcomes = Mutex<[ThreadOutcome]>([])
        var threads: [POSIXThread] = []
        for (index, entry) in chosen.enumerated() {
            let others = chosen.enumerated().filter { $0.offset != index }.map { ($0.element.syscall.name, $0.element.handler) }
            threads.append(POSIXThread {
                var outcome = ThreadOutcome(name: entry.syscall.name)
                do {
                    // 4 MiB a thread: the path walks here (getcwd, readlink, unlink…) take up to
                    // about 100 PCs (or comparison records of 4 words) a call, more when a dentry
                    // was evicted and the walk goes to the 9p server.
                    var collector = try CoverageCollector(backend: LinuxKcovBackend(), mode: mode, bufferWords: 1 << 19)
                    ready.add(1, ordering: .releasing)
                    while !go.load(ordering: .acquiring) {}
                    let trace = try collector.collect {
                        for _ in 0..<Self.callsPerThread { entry.syscall.call() }
                    }
                    let pcs = mode == .pc ? trace.pcs : trace.comparisons.map(\.pc)
                    outcome.entries = pcs.count
                    outcome.truncated = trace.truncated
                    outcome.ownHandlerPCs = pcs.count { pc in entry.handler.contains { $0.contains(pc) } }
                    outcome.foreign = others.filter { _, handler in pcs.contains { pc in handler.contains { $0.contains(pc) } } }.map(\.0)
                } catch {
                    outcome.error = "\(error)"
                    ready.add(1, ordering: .releasing)
                }
                outcomes.withLock { $0.append(outcome) }
            })
        }
        while ready.load(ordering: .acquiring) < chosen.count { usleep(1_000) }
        go.store(true, ordering: .releasing)
        for thread in threads { thread.join() }

        let results = outcomes.withLock { $0 }
        #expect(results.count == Self.threadCount, "every thread reported")
        for outcome in results {
            #expect(outcome.error == nil, "\(outcome.name): \(outcome.error ?? "")")
            #expect(outcome.foreign.isEmpty, "\(outcome.name)'s trace holds PCs of other threads' syscalls: \(outcome.foreign)")
            #expect(!outcome.truncated, "\(outcome.name): the buffer overflowed after \(outcome.entries) entries")
            if mode == .pc {
                #expect(outcome.ownHandlerPCs >= Self.callsPerThread, "\(outcome.name): each call passes through its handler, \(outcome.ownHandlerPCs) PCs there")
            }
        }
        if mode == .comparisons {
            // Handlers that compare (flags, limits, arguments) show their own comparisons: the check
            // above can see a foreign one.
            #expect(results.count { $0.ownHandlerPCs >= Self.callsPerThread } >= 5, "\(results.map { ($0.name, $0.ownHandlerPCs) })")
        }
        let after = try processResources()
        #expect(after.kcovMappings == before.kcovMappings && after.kcovFDs == before.kcovFDs, "every collector released its descriptor and mapping: \(before) then \(after)")
    }
}
