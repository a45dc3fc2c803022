import CoverageAPI
import Glibc
import SimulatedKernels

// A fuzzer's new-coverage loop, tested without a kernel: each "syscall" of the simulated Linux
// kernel covers PCs this program chooses, and the loop must find exactly the new ones.
let kernel = SimulatedKernel.linux()
let calls: [[UInt64]] = [
    [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0123],
    [0xffff_ffff_8100_0010],
    [0xffff_ffff_8100_0123, 0xffff_ffff_8100_0abc],
]
do {
    var collector = try CoverageCollector(backend: kernel.backend, bufferWords: 512)
    try collector.enable()
    var seen = Set<UInt64>()
    var newCounts: [Int] = []
    for call in calls {
        try collector.reset()
        try kernel.syscall(covering: call)
        let fresh = Set(try collector.read().pcs).subtracting(seen)
        seen.formUnion(fresh)
        newCounts.append(fresh.count)
    }
    try collector.disable()
    print("simulated linux: new PCs per call \(newCounts), \(seen.count) in all")
    guard newCounts == [2, 0, 1] else {
        print("simulated-fuzz-loop: FAILED: expected [2, 0, 1]")
        exit(1)
    }
} catch {
    print("simulated-fuzz-loop: \(error)")
    exit(1)
}
