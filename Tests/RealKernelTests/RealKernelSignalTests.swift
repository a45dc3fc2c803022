import CoverageAPI
import CoverageSignal
import Foundation
import KernelSeam
import LinuxBackend
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Fuzzing signal on the real kernel, inside the guest: two workers with their own collectors
/// share one max signal, as a fuzzer's threads do.
@Suite(.serialized)
struct RealKernelSignalTests {
    /// Two workers, each calling its own syscall 2000 times with per-call edge signal into one
    /// shared max signal: no worker's trace holds the other's syscall code, and a second pass over
    /// the same calls finds no new edge inside the syscalls' own code.
    @Test func twoWorkersShareMaxSignalAndNeitherSeesTheOthersSyscall() throws {
        let unameCode = try kernelSymbolRanges(containing: "sys_newuname")
        let getppidCode = try kernelSymbolRanges(containing: "sys_getppid")
        try #require(!unameCode.isEmpty && !getppidCode.isEmpty, "both syscalls are in /proc/kallsyms")
        let shared = MaxSignal()
        let backend = LinuxKcovBackend()
        let extraction = try SignalExtraction(kind: .edges, capabilities: backend.capabilities)
        struct Outcome: Sendable {
            var foreign = 0
            var own = 0
            var newFirstPass = 0
            var newSecondPassInOwnCode = 0
            var dropped = 0
        }
        let workers: [(own: [Range<UInt64>], other: [Range<UInt64>], call: @Sendable () -> Void)] = [
            (unameCode, getppidCode, { var name = utsname(); _ = uname(&name) }),
            (getppidCode, unameCode, { _ = getppid() }),
        ]
        let handoffs = try workers.map { _ in try CollectorHandoff(CoverageCollector(backend: backend, bufferWords: 1 << 16)) }
        let outcomes = Mutex<[Outcome]>([])
        let threads = zip(workers, handoffs).map { worker, handoff in
            POSIXThread {
                guard var collector = handoff.take() else { return }
                var view = MaxSignal.Worker(shared)
                var outcome = Outcome()
                let inOwn: (UInt64) -> Bool = { pc in worker.own.contains { $0.contains(pc) } }
                do {
                    try collector.enable()
                    for pass in 0..<2 {
                        for _ in 0..<2000 {
                            try collector.reset()
                            worker.call()
                            try collector.withPCs { pcs in
                                outcome.foreign += pcs.count { pc in worker.other.contains { $0.contains(pc) } }
                                outcome.own += pcs.count(where: inOwn)
                                var signals: [UInt64] = []
                                outcome.dropped += extraction.forEachSignal(of: pcs) { signals.append($0) }
                                let fresh = view.newSignals(signals)
                                if pass == 0 {
                                    outcome.newFirstPass += fresh.count
                                } else {
                                    // Edges inside the syscall's own code: both PCs in it. A
                                    // page fault, the return to user space after an interrupt,
                                    // and preemption add PCs at any time (Docs/kcov-linux.md,
                                    // "Which code is recorded"), and an edge from one of them into
                                    // the syscall's code is new (the soak once saw one).
                                    outcome.newSecondPassInOwnCode += pcs.indices.dropFirst().count { index in
                                        inOwn(pcs[index]) && inOwn(pcs[index - 1])
                                            && fresh.contains(EdgeSignal.signal(pcs[index], after: pcs[index - 1]))
                                    }
                                }
                            }
                        }
                    }
                    try collector.disable()
                } catch {
                    outcome.foreign = -1
                }
                outcomes.withLock { $0.append(outcome) }
            }
        }
        for thread in threads { thread.join() }
        let results = outcomes.withLock { $0 }
        #expect(results.count == 2)
        for result in results {
            #expect(result.foreign == 0, "a worker's trace held \(result.foreign) PCs of the other worker's syscall")
            #expect(result.own >= 2000, "each call passes through its syscall's own code")
            #expect(result.newFirstPass > 0)
            #expect(result.newSecondPassInOwnCode == 0, "the second pass found new edges in the syscall's own code")
            #expect(result.dropped == 0, "a real trace holds only kernel PCs")
        }
        print("signal: two workers, 2 x 2000 calls each: \(shared.count) signals known; first-pass new per worker \(results.map(\.newFirstPass))")
    }

    /// Comparison hints from real CMP records: well formed, sized, at kernel addresses.
    @Test func comparisonHintsDecodeFromRealRecords() throws {
        var collector = try CoverageCollector(backend: LinuxKcovBackend(), mode: .comparisons, bufferWords: 1 << 16)
        var name = utsname()
        _ = try collector.collect { _ = uname(&name) }
        let trace = try collector.collect { _ = uname(&name) }
        let (hints, malformed) = ComparisonHint.hints(from: trace.comparisons)
        #expect(malformed == 0)
        #expect(!hints.isEmpty, "uname compares something")
        #expect(hints.count <= trace.comparisons.count)
        #expect(hints.allSatisfy { [1, 2, 4, 8].contains($0.size) && $0.pc >= kernelTextStart && $0.first != $0.second })
        #expect(Set(hints).count == hints.count, "deduplicated")
        print("hints: \(trace.comparisons.count) records of uname, \(hints.count) hints")
    }
}
