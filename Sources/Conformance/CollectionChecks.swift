import CoverageAPI

/// Checks of what is recorded: the probe's path, stopping, restarting, overflow, closing.
enum CollectionChecks {
    /// The lowest address of a kernel's text on 64-bit kernels (the canonical upper half).
    static let kernelHalf: UInt64 = 0xffff_8000_0000_0000

    static let all: [ConformanceCheck] = [
        ConformanceCheck("collect.probe-recorded", "The probe syscall is recorded, as kernel addresses where PCs are kernel addresses.") { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                try context.enable(instance)
                context.backend.probe()
                let trace = instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind)
                try context.disable(instance)
                try context.expect(!trace.pcs.isEmpty, "nothing was recorded")
                try context.expect(!trace.truncated, "one probe overflowed a \(instance.words)-word buffer")
                if context.capabilities.pcKind == .kernelAddress {
                    let outside = trace.pcs.filter { $0 < kernelHalf }
                    try context.expect(outside.isEmpty, "\(outside.count) PCs are not kernel addresses, e.g. 0x\(String(outside.first ?? 0, radix: 16))")
                }
            }
        },
        ConformanceCheck("collect.same-path-twice", "The probe covers the same PCs every time.") { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                // Rounds until two in a row agree, at most eight. The first touches fresh stack and
                // buffer pages, and those page faults are recorded kernel work too; a round that
                // the scheduler preempts on its way back to user space records the scheduler's
                // path (likely under TCG on a busy host). A kernel whose probe path never repeats
                // fails.
                var previous: Set<UInt64>?
                var differences: [String] = []
                for _ in 0..<8 {
                    try context.enable(instance)
                    context.backend.probe()
                    let pcs = Set(instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs)
                    try context.disable(instance)
                    if context.capabilities.remapAfterDisable { try context.remap(&instance) }
                    if let previous {
                        if previous == pcs { return }
                        differences.append("\(previous.count) and \(pcs.count) PCs, \(previous.symmetricDifference(pcs).count) differing")
                    }
                    previous = pcs
                }
                try context.expect(false, "no two probes in a row covered the same PCs: \(differences.joined(separator: "; "))")
            }
        },
        ConformanceCheck("collect.disable-stops", "After disable, syscalls add nothing to the buffer.") { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                try context.enable(instance)
                context.backend.probe()
                try context.disable(instance)
                let count = instance.buffer!.rawCount
                for _ in 0..<10 { context.backend.probe() }
                try context.expect(instance.buffer!.rawCount == count, "the count moved from \(count) to \(instance.buffer!.rawCount) after disable")
            }
        },
        ConformanceCheck("collect.reenable", "A disabled instance records again once re-enabled (after a new mapping where the capabilities say DISABLE drops the buffer).") { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                try context.enable(instance)
                try context.disable(instance)
                if context.capabilities.remapAfterDisable {
                    try context.expectError(.invalidState, "enable again without a new mapping") { () throws(CoverageError) in
                        try context.backend.enable(instance.fd, mode: .pc)
                    }
                    try context.remap(&instance)
                }
                try context.enable(instance)
                context.backend.probe()
                let count = instance.buffer!.rawCount
                try context.disable(instance)
                try context.expect(count > 0, "nothing was recorded after re-enabling")
            }
        },
        ConformanceCheck("overflow.truncated", "A full buffer saturates at its capacity and reads as truncated.") { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                let buffer = instance.buffer!
                try context.enable(instance)
                var probes = 0
                while buffer.rawCount < UInt64(buffer.pcCapacity) && probes <= buffer.pcCapacity {
                    context.backend.probe()
                    probes += 1
                }
                for _ in 0..<3 { context.backend.probe() }
                try context.disable(instance)
                let trace = buffer.read(mode: .pc, pcKind: context.capabilities.pcKind)
                try context.expect(buffer.rawCount == UInt64(buffer.pcCapacity), "the count is \(buffer.rawCount), not the capacity \(buffer.pcCapacity)")
                try context.expect(trace.truncated, "a full buffer did not read as truncated")
                try context.expect(trace.pcs.count == buffer.pcCapacity, "read \(trace.pcs.count) PCs of \(buffer.pcCapacity)")
            }
        },
        ConformanceCheck("close.while-enabled", "Closing an enabled instance keeps collection going until thread exit, or stops it, as the capabilities say.") { context in
            // On a thread of its own: the kernel may keep that thread bound until it exits.
            try context.onAnotherThread {
                let backend = context.backend
                let words = 64 * context.smallestMappableWords
                let fd = try context.must("open") { () throws(CoverageError) in try backend.openDevice() }
                var closed = false
                defer { if !closed { backend.closeDevice(fd) } }
                try context.must("initialize") { () throws(CoverageError) in try backend.initialize(fd, words: words) }
                let mapping = try context.must("map") { () throws(CoverageError) in try backend.mapBuffer(fd, words: words) }
                defer { backend.unmapBuffer(mapping, words: words) }
                let buffer = CoverageBuffer(address: mapping, wordCount: words)
                try context.must("enable") { () throws(CoverageError) in try backend.enable(fd, mode: .pc) }
                backend.closeDevice(fd)
                closed = true
                buffer.reset()
                backend.probe()
                if context.capabilities.collectsAfterClose {
                    try context.expect(buffer.rawCount > 0, "closing the descriptor stopped collection")
                } else {
                    try context.expect(buffer.rawCount == 0, "collection went on after the last descriptor was closed")
                }
            }
        },
        ConformanceCheck("fork.child-enable", "The fork pattern: this process sizes and maps, a child enables and runs a program, and the trace holds the child's kernel work.") { context in
            let multiple = context.bufferRules.wordMultiple
            let words = min(1 << 20, context.bufferRules.words.upperBound) / multiple * multiple
            try context.withInstance(words: words) { instance in
                let command = Command(path: "/bin/true", arguments: ["true"], environment: [])
                let exit = try context.must("run /bin/true") { () throws(CoverageError) in
                    try context.backend.runEnabled(instance.fd, mode: .pc, buffer: instance.mapping!, words: instance.words, command: command)
                }
                try context.expect(exit == .exited(0), "/bin/true ended as \(exit)")
                try context.expect(instance.buffer!.rawCount > 0, "nothing of the child's was recorded")
                // The child's binding ended with it: this thread may enable the same instance.
                try context.enable(instance)
                try context.disable(instance)
            }
        },
    ]
}
