import Baselines
import CoverageAPI
import Dispatch
import Foundation
import Glibc
import KprobeBackend

// The kprobe backend's cost, in the test kernel (KPROBES, KPROBE_EVENTS, PERF_EVENTS): what one
// probed function adds to a syscall, against the alternative the backend did not take (a tracefs
// kprobe event filtered to the thread's pid, recorded into the trace buffer); then the largest
// probe set that opens, is used and closes within a minute. Per-call times are time-stamp counter
// ticks (no syscall), medians of rounds, converted with the counter's rate measured in the run.
//   kcovctl vm run -- "$(swift build -c release --package-path Benchmarks --show-bin-path)/kcov-benchmarks" kprobe

/// Ticks of `kcb_rdtsc` per nanosecond, measured against the monotonic clock over 50 ms.
private func ticksPerNanosecond() -> Double {
    let startTicks = kcb_rdtsc()
    let start = DispatchTime.now().uptimeNanoseconds
    usleep(50_000)
    return Double(kcb_rdtsc() - startTicks) / Double(DispatchTime.now().uptimeNanoseconds - start)
}

/// Nanoseconds per `read(-1)` through `backend.probe()`: the median of 9 rounds of `calls` each.
private func nanosecondsPerCall(_ backend: KprobeBackend, calls: Int = 2000, rate: Double) -> Double {
    var rounds: [UInt64] = []
    for _ in 0..<9 {
        let start = kcb_rdtsc()
        for _ in 0..<calls { backend.probe() }
        rounds.append(kcb_rdtsc() - start)
    }
    return Double(rounds.sorted()[rounds.count / 2]) / Double(calls) / rate
}

/// A tracefs or debugfs file read to its end.
private func readKernelFile(_ path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw BenchmarkError("cannot open \(path): is this the test kernel, run as root?") }
    defer { try? handle.close() }
    return String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
}

/// Writes `text` to a tracefs file (appending, or replacing its contents); whether all of it went.
@discardableResult
private func writeKernelFile(_ path: String, _ text: String, append: Bool = false) -> Bool {
    let fd = open(path, O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC))
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return text.withCString { write(fd, $0, strlen($0)) } == strlen(text)
}

func kprobeBenchmark() throws {
    let backend = KprobeBackend()
    let availability = backend.availability()
    guard availability.available else { throw BenchmarkError("the kprobe backend is not available here: \(availability.reason)") }
    let rate = ticksPerNanosecond()

    // 1. One probed function that read(-1) enters, against a tracefs kprobe event on it.
    let bare = nanosecondsPerCall(backend, rate: rate)
    var one = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["ksys_read"]))
    var probed = 0.0
    let counted = try one.collect { probed = nanosecondsPerCall(backend, rate: rate) }
    _ = consume one
    guard counted.hits("ksys_read") == 9 * 2000 else { throw BenchmarkError("ksys_read was counted \(counted.hits("ksys_read")) times, not \(9 * 2000)") }

    let tracing = "/sys/kernel/tracing"
    let event = "\(tracing)/events/kcovbench/ksys_read"
    guard writeKernelFile("\(tracing)/kprobe_events", "p:kcovbench/ksys_read ksys_read\n", append: true) else {
        throw BenchmarkError("cannot add a kprobe event in \(tracing)/kprobe_events (errno \(errno))")
    }
    defer {
        writeKernelFile("\(event)/enable", "0")
        writeKernelFile("\(tracing)/kprobe_events", "-:kcovbench/ksys_read\n", append: true)
        writeKernelFile("\(tracing)/trace", "")
    }
    writeKernelFile("\(event)/filter", "common_pid == \(backend.currentThreadID())")
    writeKernelFile("\(event)/enable", "1")
    let recorded = nanosecondsPerCall(backend, rate: rate)
    writeKernelFile("\(event)/filter", "common_pid == 1")
    let filteredOut = nanosecondsPerCall(backend, rate: rate)
    writeKernelFile("\(event)/enable", "0")
    let profile = try readKernelFile("\(tracing)/kprobe_profile")
    guard profile.contains("ksys_read") else { throw BenchmarkError("the tracefs event did not fire: kprobe_profile is \(profile)") }
    print(String(
        format: "one probed function per read(-1), %.0f ns bare\n  kcov-benchmarks (perf kprobe, counted): %8.0f ns added\n  tracefs kprobe event (recorded for the pid): %8.0f ns added\n  ratio (baseline / ours): %.1fx   (the event filtered out adds %.0f ns)",
        bare, probed - bare, recorded - bare, (recorded - bare) / max(probed - bare, 1), filteredOut - bare))

    // 2. Probes the syscall does not enter: what an idle probe costs the traced thread.
    var idle = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: ["__x64_sys_*"]))
    let idleCount = idle.probedFunctions.count
    var idleCost = 0.0
    _ = try idle.collect { idleCost = nanosecondsPerCall(backend, rate: rate) }
    _ = consume idle
    print(String(format: "%d probes, 2 of them entered by read(-1): %.0f ns per call (%.0f ns bare)", idleCount, idleCost, bare))

    // 3. The largest set: widening globs until one fails or takes over 60 s to open, use and close.
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    let saved = limit
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    defer {
        var restore = saved
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &restore)
    }
    let registered = { () throws -> Int in try readKernelFile("/sys/kernel/debug/kprobes/list").split(separator: "\n").count }
    let kprobesBefore = try registered()
    var globs = ["__x64_sys_*", "vfs_*"]
    var largest = 0
    for more in [["tcp_*", "udp_*", "sock_*", "inet_*"], ["security_*", "ext4_*", "blk_*", "bio_*"], ["pci_*", "acpi_*", "ip6_*", "xfrm_*", "netlink_*", "nf_*"]] {
        globs += more
        var opened = 0
        var hits: UInt64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            var session = try CoverageCollector(backend: backend, functions: FunctionSelection(patterns: globs))
            opened = session.probedFunctions.count
            hits = try session.collect { backend.probe() }.hits("__x64_sys_read")
            _ = consume session
        } catch {
            print("  \(globs.joined(separator: ",")): \(error)")
        }
        let took = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard opened > 0 else { break }
        guard hits == 1 else { throw BenchmarkError("with \(opened) probes, __x64_sys_read was counted \(hits) times, not once") }
        print(String(format: "  %d probes (fd limit %d) opened, used and closed in %.1f s", opened, Int(limit.rlim_cur), took))
        largest = opened
        if took > 60 { break }
    }
    guard try registered() == kprobesBefore else { throw BenchmarkError("kprobes were left registered: \(try registered()) against \(kprobesBefore) before") }
    print("largest probe set that worked: \(largest) functions")
}
