public import CoverageAPI
import KernelSeam

/// What the `function.*` checks need from a backend whose coverage is counts of entries into
/// named kernel functions (`granularity == .function`) rather than a kcov buffer.
///
/// Implementation requirements (each is a check of ``FunctionChecks``):
/// - ``FunctionCounterDriver/openCounters(_:mode:)`` refuses a mode outside `supportedModes` as
///   `.unsupportedMode` before any syscall; otherwise it probes each named function, not yet counting.
/// - Counters count the entries of the thread that enabled them, once per entry, only between
///   enable and disable, from zero at each enable; another thread's entries are not counted
///   where the capabilities say `perThread`.
/// - ``FunctionCounters/close()`` releases every probe: ``heldProbes()`` is back where it was.
/// - Function counters have no remote coverage: `remote` is empty and a collector's
///   ``CoverageCollector/enableRemote(_:)`` is refused as `.unsupportedOperation` before any syscall.
public protocol FunctionCoverageOperations: FunctionCounterDriver {
    /// Functions the probe syscall (``CoverageBackend/probe()``) enters exactly once per call.
    var probeFunctions: [String] { get }
    /// Functions the probe syscall never enters: the control.
    var functionsOffProbePath: [String] { get }
    /// The probes this process holds, as the kernel counts them (for leak checks).
    func heldProbes() -> Int
}

/// Checks of function-granularity backends: the kcov collection and isolation checks
/// (`collect.*`, `isolation.other-thread`, `mode.unsupported`, `remote.unsupported-target`)
/// restated for counters, plus release and new coverage, through ``FunctionCoverageOperations``.
/// Each is not applicable unless the capabilities say `granularity == .function`.
public enum FunctionChecks {
    /// The checks, in a stable order.
    public static let all: [ConformanceCheck] = [
        check("function.probe-recorded", "One probe syscall counts one entry into each function it enters, none into the others, at kernel addresses where PCs are kernel addresses.") { ops, context in
            let counts = try collect(ops, context) { ops.probe() }
            for function in ops.probeFunctions {
                try context.expect(hits(counts, function) == 1, "\(function) counted \(hits(counts, function)) entries for one probe syscall")
            }
            let stray = counts.filter { ops.functionsOffProbePath.contains($0.name) }.map(\.name)
            try context.expect(stray.isEmpty, "functions off the probe's path were counted: \(stray)")
            if context.capabilities.pcKind == .kernelAddress {
                let outside = counts.filter { $0.pc < CollectionChecks.kernelHalf }
                try context.expect(outside.isEmpty, "\(outside.map(\.name)) have PCs that are not kernel addresses")
            }
        },
        check("function.hit-counts", "A hundred probe syscalls count a hundred entries: counts, not a covered bit.") { ops, context in
            let counts = try collect(ops, context) { for _ in 0..<100 { ops.probe() } }
            for function in ops.probeFunctions {
                try context.expect(hits(counts, function) == 100, "\(function) counted \(hits(counts, function)) entries for 100 probe syscalls")
            }
        },
        check("function.same-path-twice", "The probe syscall enters the same functions the same number of times on every collection.") { ops, context in
            try withCounters(ops, context) { counters in
                var rounds: [[FunctionHit]] = []
                for _ in 0..<3 {
                    try context.must("enable") { () throws(CoverageError) in try counters.enable() }
                    ops.probe()
                    try context.must("disable") { () throws(CoverageError) in try counters.disable() }
                    rounds.append(try context.must("read") { () throws(CoverageError) in try counters.read() })
                }
                try context.expect(Set(rounds[1]) == Set(rounds[2]), "two collections of one probe differ: \(rounds[1]) and \(rounds[2])")
            }
        },
        check("function.disable-stops", "After disable, syscalls add nothing to the counts.") { ops, context in
            try withCounters(ops, context) { counters in
                try context.must("enable") { () throws(CoverageError) in try counters.enable() }
                ops.probe()
                try context.must("disable") { () throws(CoverageError) in try counters.disable() }
                let before = try context.must("read") { () throws(CoverageError) in try counters.read() }
                for _ in 0..<10 { ops.probe() }
                let after = try context.must("read") { () throws(CoverageError) in try counters.read() }
                try context.expect(Set(before) == Set(after), "the counts moved from \(before) to \(after) after disable")
            }
        },
        check("function.reenable", "Disabled counters count again once re-enabled, from zero.") { ops, context in
            try withCounters(ops, context) { counters in
                try context.must("enable") { () throws(CoverageError) in try counters.enable() }
                ops.probe()
                ops.probe()
                try context.must("disable") { () throws(CoverageError) in try counters.disable() }
                try context.must("enable again") { () throws(CoverageError) in try counters.enable() }
                ops.probe()
                try context.must("disable again") { () throws(CoverageError) in try counters.disable() }
                let counts = try context.must("read") { () throws(CoverageError) in try counters.read() }
                for function in ops.probeFunctions {
                    try context.expect(hits(counts, function) == 1, "\(function) counted \(hits(counts, function)) entries for one probe syscall after re-enabling")
                }
            }
        },
        check("function.other-thread", "Another thread's entries are not counted where the capabilities say perThread, and are otherwise.") { ops, context in
            try withCounters(ops, context) { counters in
                try context.must("enable") { () throws(CoverageError) in try counters.enable() }
                POSIXThread.run { for _ in 0..<20 { ops.probe() } }
                try context.must("disable") { () throws(CoverageError) in try counters.disable() }
                let theirs = try context.must("read") { () throws(CoverageError) in try counters.read() }
                // Control: the enabling thread's own entries are counted.
                try context.must("enable") { () throws(CoverageError) in try counters.enable() }
                ops.probe()
                try context.must("disable") { () throws(CoverageError) in try counters.disable() }
                let own = try context.must("read") { () throws(CoverageError) in try counters.read() }
                for function in ops.probeFunctions {
                    try context.expect(hits(own, function) == 1, "the enabling thread's own probe counted \(hits(own, function)) entries of \(function)")
                    if context.capabilities.perThread {
                        try context.expect(hits(theirs, function) == 0, "\(hits(theirs, function)) of another thread's entries into \(function) were counted")
                    } else {
                        try context.expect(hits(theirs, function) >= 20, "only \(hits(theirs, function)) of another thread's 20 entries into \(function) were counted")
                    }
                }
            }
        },
        check(
            "function.mode-unsupported", "A mode the capabilities do not list is refused as unsupportedMode before any syscall, with no probe left.",
            notApplicable: { $0.supportedModes.count == CoverageMode.allCases.count ? "supportedModes lists every mode" : nil }
        ) { ops, context in
            let held = ops.heldProbes()
            for mode in CoverageMode.allCases where !context.capabilities.supportedModes.contains(mode) {
                try context.expectError(.unsupportedMode, "counters in \(mode.rawValue) mode", beforeAnySyscall: true) { () throws(CoverageError) in
                    let counters = try ops.openCounters(FunctionSelection(patterns: functions(ops)), mode: mode)
                    counters.close()
                }
            }
            try context.expect(ops.heldProbes() == held, "\(ops.heldProbes() - held) probes are held after the refusals")
        },
        check("function.remote-unsupported", "Function counters have no remote coverage: remote lists nothing, and a remote enable is refused as unsupportedOperation before any syscall.") { ops, context in
            try context.expect(context.capabilities.remote.isEmpty, "the capabilities list remote kinds \(context.capabilities.remote.map(\.rawValue).sorted()), which function counters cannot attach to")
            let targets: [RemoteRequest.Target] = [.common(instance: 1), .usbBus(1), .vhciPort(bus: 0, port: 1)]
            var collector = try context.must("open a collector") { () throws(CoverageError) in
                try CoverageCollector(backend: ops, functions: FunctionSelection(patterns: ops.probeFunctions))
            }
            for target in targets {
                try context.expectError(.unsupportedOperation, "remote enable of \(target.kind.rawValue)", beforeAnySyscall: true) { () throws(CoverageError) in
                    try collector.enableRemote(RemoteRequest(targets: [target], sectionWords: 512))
                }
            }
        },
        check("function.release-on-close", "Each probed function holds one probe until close, which releases every one of them.") { ops, context in
            let held = ops.heldProbes()
            let counters = try context.must("open counters") { () throws(CoverageError) in try ops.openCounters(FunctionSelection(patterns: functions(ops)), mode: .pc) }
            let open = ops.heldProbes() - held
            var closed = false
            defer { if !closed { counters.close() } }
            try context.expect(open == counters.probedFunctions.count, "\(counters.probedFunctions.count) functions are probed, but \(open) probes are held")
            try context.must("enable") { () throws(CoverageError) in try counters.enable() }
            ops.probe()
            try context.must("disable") { () throws(CoverageError) in try counters.disable() }
            counters.close()
            closed = true
            try context.expect(ops.heldProbes() == held, "\(ops.heldProbes() - held) probes are still held after close")
        },
        check("function.new-coverage", "Functions are new coverage the first time they are entered since the baseline, and only then.") { ops, context in
            try withCounters(ops, context) { counters in
                var baseline = FunctionBaseline()
                func round(probe: Bool) throws -> Set<String> {
                    try context.must("enable") { () throws(CoverageError) in try counters.enable() }
                    if probe { ops.probe() }
                    try context.must("disable") { () throws(CoverageError) in try counters.disable() }
                    return Set(baseline.merge(try context.must("read") { () throws(CoverageError) in try counters.read() }).map(\.name))
                }
                let idle = try round(probe: false)
                try context.expect(idle.isDisjoint(with: ops.probeFunctions), "\(idle) are new before any probe syscall")
                let first = try round(probe: true)
                try context.expect(first.isSuperset(of: ops.probeFunctions), "the first probe syscall's functions were not new: \(first)")
                let second = try round(probe: true)
                try context.expect(second.isEmpty, "\(second) were new again on the second probe syscall")
            }
        },
    ]

    /// A check that needs ``FunctionCoverageOperations``, for function-granularity backends only.
    static func check(
        _ id: String, _ summary: String,
        notApplicable: @escaping @Sendable (BackendCapabilities) -> String? = { _ in nil },
        _ body: @escaping @Sendable (any FunctionCoverageOperations, CheckContext) throws -> Void
    ) -> ConformanceCheck {
        ConformanceCheck(id, summary, notApplicable: { capabilities in
            capabilities.granularity == .function ? notApplicable(capabilities) : "granularity is \(capabilities.granularity.rawValue): coverage is a kcov buffer, not function counters"
        }, drivesKcovBuffer: false) { context in
            guard let ops = context.subject as? any FunctionCoverageOperations else {
                throw ConformanceFailure("the \(context.subject.name) backend has function granularity but does not offer function counters (FunctionCoverageOperations)")
            }
            try body(ops, context)
        }
    }

    /// The functions the checks probe: the probe's own and the control.
    static func functions(_ ops: any FunctionCoverageOperations) -> [String] {
        ops.probeFunctions + ops.functionsOffProbePath
    }

    /// Entries of `function` in `counts`.
    static func hits(_ counts: [FunctionHit], _ function: String) -> UInt64 {
        counts.first { $0.name == function }?.hits ?? 0
    }

    /// Opens counters on ``functions(_:)``, insists every one got a probe, runs `body`, and closes them.
    static func withCounters<T>(
        _ ops: any FunctionCoverageOperations, _ context: CheckContext, _ body: (any FunctionCounters) throws -> T
    ) throws -> T {
        let wanted = functions(ops)
        let counters = try context.must("open counters on \(wanted)") { () throws(CoverageError) in try ops.openCounters(FunctionSelection(patterns: wanted), mode: .pc) }
        defer { counters.close() }
        let probed = counters.probedFunctions.map(\.name)
        try context.expect(probed.sorted() == wanted.sorted(), "only \(probed) of \(wanted) could be probed")
        return try body(counters)
    }

    /// The counts of one collection around `body`.
    static func collect(_ ops: any FunctionCoverageOperations, _ context: CheckContext, _ body: () -> Void) throws -> [FunctionHit] {
        try withCounters(ops, context) { counters in
            try context.must("enable") { () throws(CoverageError) in try counters.enable() }
            body()
            try context.must("disable") { () throws(CoverageError) in try counters.disable() }
            return try context.must("read") { () throws(CoverageError) in try counters.read() }
        }
    }
}
