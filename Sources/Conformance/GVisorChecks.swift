import CoverageAPI
import KernelSeam
import Synchronization

/// Checks of gVisor's kcov rules (the rows of Docs/kcov-gvisor.md#differences-from-linux that tell gVisor
/// from Linux: D7, D12, D14, D16, D20, D23, D24, D30, D33, D37, D38, D46), through ``KcovDriver`` alone.
///
/// Each check is not applicable unless the capabilities are gVisor's on the point it checks, so
/// the list can run against any backend. D24 and D33 are checked as far as the protocol
/// reaches: the backend refuses comparison mode and remote coverage from its capabilities,
/// before any syscall, so the kernel's own answers (EOPNOTSUPP, ENOTTY) are reached only by the
/// backend's tests. D25 (ENABLE's argument truncated to 8 bits) cannot be expressed at all:
/// ``CoverageMode`` has no raw mode numbers.
public enum GVisorChecks {
    /// The checks, in a stable order.
    public static let all: [ConformanceCheck] = [
        ConformanceCheck(
            "gvisor.init-size-whole-pages",
            "D7: INIT refuses (bufferSize, from the kernel) a size within range that is not a multiple of bufferWordMultiple, and accepts the multiple.",
            notApplicable: { $0.remapAfterDisable && $0.requiresMapBeforeEnable ? nil : "the size rule is gVisor's (requiresMapBeforeEnable and remapAfterDisable)" }
        ) { context in
            let multiple = context.bufferRules.wordMultiple
            for words in [2, multiple + 1, 3 * multiple / 2] {
                try context.withInstance { instance in
                    try context.expectError(.bufferSize, "initialize(\(words) words)") { () throws(CoverageError) in
                        try context.backend.initialize(instance.fd, words: words)
                    }
                }
            }
            try context.withInstance(words: multiple, map: false) { _ in }
        },
        ConformanceCheck(
            "gvisor.map-any-length",
            "D12: shorter and longer mappings are accepted, and a shorter one shows the start of the same buffer.",
            notApplicable: { $0.mapLengthMustMatch ? "mapLengthMustMatch is true" : nil }
        ) { context in
            let words = 2 * context.smallestMappableWords
            try context.withInstance(words: words) { instance in
                let half = words / 2
                let short = try context.must("map \(half) of \(words) words") { () throws(CoverageError) in
                    try context.backend.mapBuffer(instance.fd, words: half)
                }
                defer { context.backend.unmapBuffer(short, words: half) }
                let long = try context.must("map \(2 * words) of \(words) words") { () throws(CoverageError) in
                    try context.backend.mapBuffer(instance.fd, words: 2 * words)
                }
                // Touching `long` past the buffer would raise SIGBUS: only unmap it.
                context.backend.unmapBuffer(long, words: 2 * words)
                let shortBuffer = CoverageBuffer(address: short, wordCount: half)
                try context.enable(instance)
                context.backend.probe()
                let seen = shortBuffer.rawCount
                let full = instance.buffer!.rawCount
                try context.disable(instance)
                try context.expect(full > 0, "the probe was not recorded")
                try context.expect(seen == full, "the short mapping shows count \(seen), the full one \(full): not the same buffer")
            }
        },
        ConformanceCheck(
            "gvisor.map-after-enable",
            "D14: mapping while coverage is enabled is refused as invalidState.",
            notApplicable: { $0.requiresMapBeforeEnable ? nil : "requiresMapBeforeEnable is false" }
        ) { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.enable(instance)
                defer { try? context.backend.disable(instance.fd) }
                try context.expectError(.invalidState, "map while enabled") { () throws(CoverageError) in
                    let address = try context.backend.mapBuffer(instance.fd, words: instance.words)
                    context.backend.unmapBuffer(address, words: instance.words)
                }
            }
        },
        ConformanceCheck(
            "gvisor.new-buffer-after-disable",
            "D16 and D30: after DISABLE, enabling needs a new mapping, which is a new, zeroed buffer; the old mapping is disconnected.",
            notApplicable: { $0.remapAfterDisable ? nil : "remapAfterDisable is false" }
        ) { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.enable(instance)
                context.backend.probe()
                try context.disable(instance)
                let old = instance.buffer!
                let oldCount = old.rawCount
                try context.expect(oldCount > 0, "the probe was not recorded")
                try context.expectError(.invalidState, "enable again without a new mapping") { () throws(CoverageError) in
                    try context.backend.enable(instance.fd, mode: .pc)
                }
                let fresh = try context.must("map after disable") { () throws(CoverageError) in
                    try context.backend.mapBuffer(instance.fd, words: instance.words)
                }
                defer { context.backend.unmapBuffer(fresh, words: instance.words) }
                let freshBuffer = CoverageBuffer(address: fresh, wordCount: instance.words)
                try context.expect(freshBuffer.rawCount == 0, "the new mapping shows count \(freshBuffer.rawCount), not a zeroed buffer")
                // Another thread may enable the re-mapped instance.
                let fd = instance.fd
                try context.onAnotherThread {
                    try context.must("enable from another thread") { () throws(CoverageError) in try context.backend.enable(fd, mode: .pc) }
                    freshBuffer.reset()
                    context.backend.probe()
                    try context.must("disable") { () throws(CoverageError) in try context.backend.disable(fd) }
                }
                try context.expect(freshBuffer.rawCount > 0, "the new buffer recorded nothing")
                try context.expect(old.rawCount == oldCount, "the old mapping changed from \(oldCount) to \(old.rawCount): it is still connected")
            }
        },
        ConformanceCheck(
            "gvisor.enable-needs-map",
            "D20: ENABLE of an initialised but unmapped instance is refused as invalidState by the kernel.",
            notApplicable: { $0.requiresMapBeforeEnable ? nil : "requiresMapBeforeEnable is false" }
        ) { context in
            try context.withInstance(words: context.smallestMappableWords, map: false) { instance in
                do {
                    try context.backend.enable(instance.fd, mode: .pc)
                    try? context.backend.disable(instance.fd)
                    throw ConformanceFailure("enable without a mapping succeeded")
                } catch let error as CoverageError {
                    try context.expect(error.code == .invalidState, "expected invalidState, got \(error.code.rawValue) (\(error))")
                    try context.expect(error.syscall != nil, "the backend refused by itself; the kernel should have")
                }
            }
        },
        ConformanceCheck(
            "gvisor.two-instances-one-thread",
            "D23: one thread may enable two instances; each block the probe ran is written once, to one of them (coverage is taken, not copied).",
            notApplicable: { $0.oneEnabledInstancePerThread || $0.perThread ? "oneEnabledInstancePerThread or perThread is true" : nil }
        ) { context in
            let words = 64 * context.smallestMappableWords
            try context.withInstance(words: words) { first in
                try context.withInstance(words: words) { second in
                    try context.enable(first)
                    try context.enable(second)
                    first.buffer!.reset()
                    second.buffer!.reset()
                    context.backend.probe()
                    let a = first.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs
                    let b = second.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs
                    try context.disable(second)
                    try context.disable(first)
                    try context.expect(!(a + b).isEmpty, "neither instance recorded the probe")
                    try context.expect(Set(a).isDisjoint(with: b), "\(Set(a).intersection(b).count) PCs of one probe were written to both instances")
                }
            }
        },
        ConformanceCheck(
            "gvisor.cmp-refused-by-capabilities",
            "D24: comparison mode is refused as unsupportedMode before any syscall.",
            notApplicable: { $0.supportedModes.contains(.comparisons) ? "supportedModes lists cmp" : nil }
        ) { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.expectError(.unsupportedMode, "enable(cmp)", beforeAnySyscall: true) { () throws(CoverageError) in
                    try context.backend.enable(instance.fd, mode: .comparisons)
                }
            }
        },
        ConformanceCheck(
            "gvisor.no-remote",
            "D33: remote coverage of any kind is refused as unsupportedOperation before any syscall.",
            notApplicable: { $0.remote.isEmpty ? nil : "remote is not empty" }
        ) { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                for target in [RemoteRequest.Target.common(instance: 1), .usbBus(1), .vhciPort(bus: 0, port: 1)] {
                    try context.expectError(.unsupportedOperation, "remote enable of \(target.kind.rawValue)", beforeAnySyscall: true) { () throws(CoverageError) in
                        try context.backend.enableRemote(instance.fd, mode: .pc, RemoteRequest(targets: [target], sectionWords: 512))
                    }
                }
            }
        },
        ConformanceCheck(
            "gvisor.set-not-trace",
            "D37: one syscall yields a set (no PC twice), the same set each time, and a second syscall writes it again after the first.",
            notApplicable: { $0.orderedTrace ? "orderedTrace is true" : nil }
        ) { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                try context.enable(instance)
                context.backend.probe()
                let once = instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs
                context.backend.probe()
                let twice = instance.buffer!.read(mode: .pc, pcKind: context.capabilities.pcKind).pcs
                try context.disable(instance)
                try context.expect(!once.isEmpty, "the probe was not recorded")
                try context.expect(Set(once).count == once.count, "one syscall wrote \(once.count - Set(once).count) PCs twice")
                let window = Array(twice.dropFirst(once.count))
                try context.expect(twice.starts(with: once), "the second syscall rewrote the first one's entries")
                try context.expect(Set(window).count == window.count, "the second syscall wrote a PC twice")
                try context.expect(Set(window) == Set(once), "the same syscall covered \(Set(once).count) and then \(Set(window).count) PCs")
            }
        },
        ConformanceCheck(
            "gvisor.written-at-return",
            "D38 and D39: another thread's kernel work is written to the owner's buffer, but only when the owner returns from a syscall.",
            notApplicable: { $0.perThread ? "perThread is true" : nil }
        ) { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                let backend = context.backend
                try context.enable(instance)
                _ = backend.currentThreadID()
                let afterEnable = instance.buffer!.rawCount
                // While enabled: another thread's probe waits for this thread's return to user space.
                let go = Atomic<Bool>(false)
                let done = Atomic<Bool>(false)
                let worker = POSIXThread {
                    while !go.load(ordering: .acquiring) {}
                    backend.probe()
                    done.store(true, ordering: .releasing)
                }
                instance.buffer!.reset()
                go.store(true, ordering: .releasing)
                while !done.load(ordering: .acquiring) {}
                worker.join()
                let quiet = instance.buffer!.rawCount
                _ = backend.currentThreadID()
                let afterReturn = instance.buffer!.rawCount
                try context.disable(instance)
                try context.expect(quiet == 0, "\(quiet) entries were written while the owner made no syscall")
                try context.expect(afterReturn > afterEnable, "the other thread's probe was not written at the owner's return (\(afterReturn) entries, \(afterEnable) without it)")
            }
        },
        ConformanceCheck(
            "gvisor.close-stops-and-frees-thread",
            "D46: closing an enabled instance stops its collection at once, and the thread can enable another instance.",
            notApplicable: { $0.collectsAfterClose ? "collectsAfterClose is true" : nil }
        ) { context in
            try context.onAnotherThread {
                let backend = context.backend
                let words = context.smallestMappableWords
                let fd = try context.must("open") { () throws(CoverageError) in try backend.openDevice() }
                try context.must("initialize") { () throws(CoverageError) in try backend.initialize(fd, words: words) }
                let mapping = try context.must("map") { () throws(CoverageError) in try backend.mapBuffer(fd, words: words) }
                defer { backend.unmapBuffer(mapping, words: words) }
                try context.must("enable") { () throws(CoverageError) in try backend.enable(fd, mode: .pc) }
                backend.closeDevice(fd)
                let old = CoverageBuffer(address: mapping, wordCount: words)
                old.reset()
                try context.withInstance(words: words) { next in
                    try context.enable(next)
                    context.backend.probe()
                    try context.disable(next)
                    try context.expect(next.buffer!.rawCount > 0, "the new instance recorded nothing")
                }
                try context.expect(old.rawCount == 0, "the closed instance kept collecting (\(old.rawCount) entries)")
            }
        },
    ]
}
