import BackendSelection
import CoverageAPI
import Foundation
import Glibc

// Collects the kernel coverage of one read(-1, NULL, 0) through the public API, on the backend the
// library picks, then runs syzkaller's pattern: collectors opened here, enabled by each worker.
do {
    let choice = try BackendSelection.system.resolve(BackendSelection.auto)
    print(choice.explanation)
    var collector = try CoverageCollector(backend: choice.backend, mode: .pc, bufferWords: 1 << 16)
    let trace = try collector.collect { _ = read(-1, nil, 0) }
    print("read(-1) covered \(trace.pcs.count) kernel PCs (\(Set(trace.pcs).count) unique)\(trace.truncated ? ", truncated" : "")")
    for pc in trace.pcs.prefix(5) { print("  0x" + String(pc, radix: 16)) }

    let handoffs = try (0..<2).map { _ in try CollectorHandoff(CoverageCollector(backend: choice.backend, bufferWords: 1 << 16)) }
    let done = DispatchSemaphore(value: 0)
    for (index, handoff) in handoffs.enumerated() {
        Thread {
            defer { done.signal() }
            guard var worker = handoff.take() else { return }
            do {
                try worker.enable()
                var unique = Set<UInt64>()
                for _ in 0..<100 {
                    try worker.reset()
                    _ = getppid()
                    unique.formUnion(try worker.read().pcs)
                }
                try worker.disable()
                print("worker \(index): 100 calls, \(unique.count) unique kernel PCs")
            } catch {
                print("worker \(index): \(error)")
            }
        }.start()
    }
    for _ in handoffs { done.wait() }
} catch let error as CoverageError {
    print("trace-one-syscall: \(error)")
    exit(error.meansUnavailable ? 2 : 1)
}
