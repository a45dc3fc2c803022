import CoverageAPI
import KernelSeam
import Synchronization

/// Checks of thread ownership: who may enable and disable, and whose kernel work is recorded.
enum IsolationChecks {
    static let all: [ConformanceCheck] = [
        ConformanceCheck("isolation.enable-from-other-thread", "While one thread has an instance enabled, another thread's enable of it is refused as invalidState.") { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.enable(instance)
                defer { try? context.backend.disable(instance.fd) }
                let fd = instance.fd
                try context.onAnotherThread {
                    try context.expectError(.invalidState, "enable from a second thread") { () throws(CoverageError) in
                        try context.backend.enable(fd, mode: .pc)
                    }
                }
            }
        },
        ConformanceCheck("isolation.disable-from-other-thread", "Only the enabling thread may disable: another thread's disable is refused as notOwner.") { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.enable(instance)
                defer { try? context.backend.disable(instance.fd) }
                let fd = instance.fd
                try context.onAnotherThread {
                    try context.expectError(.notOwner, "disable from a second thread") { () throws(CoverageError) in
                        try context.backend.disable(fd)
                    }
                }
            }
        },
        ConformanceCheck("isolation.disable-not-enabled", "Disabling an instance nobody enabled is refused as notOwner.") { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.expectError(.notOwner, "disable without enable") { () throws(CoverageError) in
                    try context.backend.disable(instance.fd)
                }
            }
        },
        ConformanceCheck("isolation.thread-busy", "A thread with one instance enabled cannot enable a second (busy), where the capabilities say one per thread.") { context in
            let words = context.smallestMappableWords
            try context.withInstance(words: words) { first in
                try context.withInstance(words: words) { second in
                    try context.enable(first)
                    defer { try? context.backend.disable(first.fd) }
                    if context.capabilities.oneEnabledInstancePerThread {
                        try context.expectError(.busy, "enable a second instance on the same thread") { () throws(CoverageError) in
                            try context.backend.enable(second.fd, mode: .pc)
                        }
                    } else {
                        try context.enable(second)
                        try context.disable(second)
                    }
                }
            }
        },
        ConformanceCheck("isolation.other-thread", "Per-thread backends never record another thread's syscalls; global ones hand them to the owner at its next syscall.") { context in
            let words = 64 * context.smallestMappableWords
            // What only the probe runs, on this thread: the PCs every one of five probes records
            // (after a first probe, which can also fault fresh stack and buffer pages in), less
            // any that five gettid calls record. Entry, exit and scheduler code is shared with
            // interrupts and preemption, which reach a spinning thread without a syscall of its
            // own, and a probe that happened to be preempted records the scheduler too.
            let probePCs: Set<UInt64> = try context.withInstance(words: words) { instance in
                try context.enable(instance)
                func traced(_ call: () -> Void) -> Set<UInt64> {
                    instance.buffer!.reset()
                    call()
                    return Set(instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs)
                }
                context.backend.probe()
                var probe = traced { context.backend.probe() }
                var otherSyscall = Set<UInt64>()
                for _ in 0..<4 { probe.formIntersection(traced { context.backend.probe() }) }
                for _ in 0..<5 { otherSyscall.formUnion(traced { _ = context.backend.currentThreadID() }) }
                try context.disable(instance)
                return probe.subtracting(otherSyscall)
            }
            try context.expect(!probePCs.isEmpty, "the probe syscall recorded nothing on its own thread that gettid does not")
            try context.withInstance(words: words) { instance in
                // The worker exists before enable and is released through atomics, so this thread
                // makes no syscall while it probes.
                let go = Atomic<Bool>(false)
                let done = Atomic<Bool>(false)
                let backend = context.backend
                let worker = POSIXThread {
                    while !go.load(ordering: .acquiring) {}
                    for _ in 0..<20 { backend.probe() }
                    done.store(true, ordering: .releasing)
                }
                try context.enable(instance)
                go.store(true, ordering: .releasing)
                while !done.load(ordering: .acquiring) {}
                worker.join()
                // This thread has made no syscall since enabling: nothing of the probe's may be here.
                let quiet = Set(instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs)
                _ = context.backend.currentThreadID()  // now one syscall of its own
                let afterOwnSyscall = Set(instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs)
                try context.disable(instance)
                if context.capabilities.perThread {
                    let leaked = quiet.intersection(probePCs)
                    try context.expect(
                        leaked.isEmpty,
                        "\(leaked.count) of the other thread's probe PCs were recorded for this thread, such as \(leaked.sorted().prefix(8).map { "0x" + String($0, radix: 16) }.joined(separator: " "))")
                } else {
                    try context.expect(quiet.isDisjoint(with: probePCs), "global coverage appeared before the owner returned from a syscall")
                    try context.expect(probePCs.isSubset(of: afterOwnSyscall), "the other thread's probe coverage did not reach the owner at its next syscall")
                }
            }
        },
    ]
}
