import CoverageAPI
import KernelSeam
import KprobeBackend
import Synchronization
import TestSupport
import Testing

/// The error `body` threw, or `nil` when it finished.
func outcome(_ body: () throws(CoverageError) -> Void) -> CoverageError? {
    do throws(CoverageError) {
        try body()
        return nil
    } catch {
        return error
    }
}

/// What every scenario runs, over any backend: the client's calls from open to close.
enum Scenarios {
    static let words = 512
    static let program = Command(path: "/bin/true", arguments: ["/bin/true"], environment: [])

    /// A trace that claims success must hold what the kernel ran: for kcov, some entry (every
    /// model's probe path and `/bin/true` record PCs and comparisons); for function counters, a
    /// hit on each of `entered` that has a probe, and every other one listed as skipped (with
    /// why). Otherwise the success is a silent partial result, thrown as an error that names no
    /// call, which the sweep reports.
    static func expectCoverage(_ trace: Trace, of collector: borrowing CoverageCollector, entered: [String], _ what: String) throws(CoverageError) {
        let missing: [String]
        if collector.bufferWords != nil {
            missing = trace.pcs.isEmpty && trace.comparisons.isEmpty ? ["any entry"] : []
        } else {
            let probed = Set(collector.probedFunctions.map(\.name))
            let skipped = Set(collector.skippedFunctions.map(\.name))
            let hit = Set(trace.functions.map(\.name))
            missing = entered.filter { probed.contains($0) ? !hit.contains($0) : !skipped.contains($0) }
        }
        guard missing.isEmpty else {
            throw CoverageError(.system, "silent partial result: \(what) succeeded without \(missing.joined(separator: ", "))")
        }
    }

    /// open → init → mmap → (enable → syscall → disable → read) twice → close: the second round
    /// exercises what a backend does between rounds (gVisor maps again after DISABLE).
    static func collect(_ backend: any CoverageBackend, mode: CoverageMode, functions: FunctionSelection = FunctionSelection()) -> CoverageError? {
        outcome { () throws(CoverageError) in
            var collector = try CoverageCollector(backend: backend, mode: mode, bufferWords: words, functions: functions)
            for round in 1...2 {
                try collector.enable()
                backend.probe()
                try collector.disable()
                try expectCoverage(try collector.read(), of: collector, entered: ["ksys_read"], "round \(round)'s read")
            }
        }
    }

    /// The fuzzer's loop: enable once, then per call reset → syscall → read (in place for a kcov
    /// PC trace), then disable.
    static func fuzzerLoop(_ backend: any CoverageBackend, mode: CoverageMode, functions: FunctionSelection = FunctionSelection()) -> CoverageError? {
        outcome { () throws(CoverageError) in
            var collector = try CoverageCollector(backend: backend, mode: mode, bufferWords: words, functions: functions)
            try collector.enable()
            var pcs: [UInt64] = []
            for call in 1...3 {
                try collector.reset()
                backend.probe()
                if collector.bufferWords != nil && mode == .pc {
                    try collector.read(into: &pcs)
                    if pcs.isEmpty { throw CoverageError(.system, "silent partial result: call \(call) read no PC in place") }
                } else {
                    try expectCoverage(try collector.read(), of: collector, entered: ["ksys_read"], "call \(call)'s read")
                }
            }
            try collector.disable()
        }
    }

    /// Remote coverage: enableRemote → kernel work on the target → read → disable → close.
    static func remote(_ backend: any CoverageBackend, mode: CoverageMode, _ request: RemoteRequest, work: () -> Void) -> CoverageError? {
        outcome { () throws(CoverageError) in
            var collector = try CoverageCollector(backend: backend, mode: mode, bufferWords: words)
            try collector.enableRemote(request)
            work()
            try expectCoverage(try collector.read(), of: collector, entered: [], "the remote read")
            try collector.disable()
        }
    }

    /// Opened and mapped on this thread, enabled, used and released on another (`onThread`).
    static func handoff(
        _ backend: any CoverageBackend, functions: FunctionSelection = FunctionSelection(),
        onThread: (@escaping @Sendable () -> CoverageError?) -> CoverageError?
    ) -> CoverageError? {
        let handoff = Mutex<CollectorHandoff?>(nil)
        if let error = outcome({ () throws(CoverageError) in
            let made = try CollectorHandoff(CoverageCollector(backend: backend, bufferWords: words, functions: functions))
            handoff.withLock { $0 = made }
        }) { return error }
        let carried = handoff.withLock { $0! }
        return onThread {
            outcome { () throws(CoverageError) in
                guard var collector = carried.take() else { return }
                try collector.enable()
                backend.probe()
                try collector.disable()
                try expectCoverage(try collector.read(), of: collector, entered: ["ksys_read"], "the handed-off collector's read")
            }
        }
    }

    /// Opened on this thread, handed to another whose enable may fail, then, if it failed, handed
    /// back and enabled here: a client that falls back to the thread that opened. (The kprobe
    /// session reopens its probes for a new thread; a failed reopen must not leave it believing
    /// its probes are still bound here.)
    static func handoffAndBack(
        _ backend: any CoverageBackend, functions: FunctionSelection = FunctionSelection(),
        onThread: (@escaping @Sendable () -> CoverageError?) -> CoverageError?
    ) -> CoverageError? {
        let handoff = Mutex<CollectorHandoff?>(nil)
        if let error = outcome({ () throws(CoverageError) in
            let made = try CollectorHandoff(CoverageCollector(backend: backend, bufferWords: words, functions: functions))
            handoff.withLock { $0 = made }
        }) { return error }
        let carried = handoff.withLock { $0! }
        let back = Mutex<CollectorHandoff?>(nil)
        let away = onThread { () -> CoverageError? in
            guard var collector = carried.take() else { return nil }
            if let error = outcome({ () throws(CoverageError) in try collector.enable() }) {
                let returned = try? CollectorHandoff(collector)
                back.withLock { $0 = returned }
                return error
            }
            return outcome { () throws(CoverageError) in
                backend.probe()
                try collector.disable()
                try expectCoverage(try collector.read(), of: collector, entered: ["ksys_read"], "the other thread's read")
            }
        }
        guard let returned = back.withLock({ $0 }) else { return away }
        return outcome { () throws(CoverageError) in
            guard var collector = returned.take() else { return }
            try collector.enable()
            backend.probe()
            try collector.disable()
            try expectCoverage(try collector.read(), of: collector, entered: ["ksys_read"], "the read back on the opening thread")
        }
    }

    /// A client that retries each failed step once, as after EINTR: with one fault injected,
    /// every retry must succeed, so any error here means a failure left the collector or the
    /// kernel in a state the next call cannot work from (the sweep reports it, as it names a
    /// call other than the injected one).
    static func retrying(_ backend: any CoverageBackend, mode: CoverageMode, functions: FunctionSelection = FunctionSelection()) -> CoverageError? {
        func again(_ step: () throws(CoverageError) -> Void) throws(CoverageError) {
            if outcome(step) != nil { try step() }
        }
        return outcome { () throws(CoverageError) in
            var opened: CoverageCollector? = nil
            if outcome({ () throws(CoverageError) in opened = try CoverageCollector(backend: backend, mode: mode, bufferWords: words, functions: functions) }) != nil {
                opened = try CoverageCollector(backend: backend, mode: mode, bufferWords: words, functions: functions)
            }
            guard var collector = opened.take() else { return }
            for round in 1...2 {
                try again { () throws(CoverageError) in try collector.enable() }
                backend.probe()
                try again { () throws(CoverageError) in try collector.disable() }
                var trace: Trace?
                try again { () throws(CoverageError) in trace = try collector.read() }
                try expectCoverage(trace!, of: collector, entered: ["ksys_read"], "round \(round)'s read")
            }
            var run: (exit: CommandExit, trace: Trace)?
            try again { () throws(CoverageError) in run = try collector.run(program) }
            try expectCoverage(run!.trace, of: collector, entered: ["vfs_open", "ksys_read"], "the command's run")
        }
    }

    /// Remote coverage by a client that retries each failed step once (see ``retrying(_:mode:functions:)``).
    static func retryingRemote(_ backend: any CoverageBackend, mode: CoverageMode, _ request: RemoteRequest, work: () -> Void) -> CoverageError? {
        func again(_ step: () throws(CoverageError) -> Void) throws(CoverageError) {
            if outcome(step) != nil { try step() }
        }
        return outcome { () throws(CoverageError) in
            var opened: CoverageCollector? = nil
            if outcome({ () throws(CoverageError) in opened = try CoverageCollector(backend: backend, mode: mode, bufferWords: words) }) != nil {
                opened = try CoverageCollector(backend: backend, mode: mode, bufferWords: words)
            }
            guard var collector = opened.take() else { return }
            for round in 1...2 {
                try again { () throws(CoverageError) in try collector.enableRemote(request) }
                work()
                try expectCoverage(try collector.read(), of: collector, entered: [], "round \(round)'s remote read")
                try again { () throws(CoverageError) in try collector.disable() }
            }
        }
    }

    /// `kcovctl trace`'s collection: a command run with coverage enabled in its child.
    static func spawn(_ backend: any CoverageBackend, mode: CoverageMode, functions: FunctionSelection = FunctionSelection()) -> CoverageError? {
        outcome { () throws(CoverageError) in
            var collector = try CoverageCollector(backend: backend, mode: mode, bufferWords: words, functions: functions)
            let result = try collector.run(program)
            try expectCoverage(result.trace, of: collector, entered: ["vfs_open", "ksys_read"], "the command's run")
        }
    }

    /// The fork server: two forked children, each enabling its inherited descriptor.
    static func forkServer(_ backend: any CoverageBackend, mode: CoverageMode) -> CoverageError? {
        outcome { () throws(CoverageError) in
            var collector = try CoverageCollector(backend: backend, mode: mode, bufferWords: words)
            for round in 1...2 {
                let result = try collector.runForked {
                    backend.probe()
                    return 0
                }
                try expectCoverage(result.trace, of: collector, entered: [], "fork \(round)")
            }
        }
    }

    /// Availability opens and closes a scratch descriptor (and gVisor's detection fingerprints
    /// the device): it reports, never throws, and must leave nothing open.
    static func availability(_ backend: any CoverageBackend) -> CoverageError? {
        _ = backend.availability()
        return nil
    }
}

/// Every kcov kernel's scenarios as sweeps: each (call, n, errno) ends in success or a typed error
/// naming the call and its errno, and leaves no descriptor, mapping or buffer behind.
@Suite struct FaultSweepTests {
    /// The sweeps for one kcov kernel.
    static func scenarios(_ kind: KcovKind) -> [FaultScenario] {
        func scenario(_ name: String, _ body: @escaping @Sendable (KcovWorld) -> CoverageError?) -> FaultScenario {
            FaultScenario("\(kind.name) \(name)", errnos: Errnos.kcov) { plan in
                let world = kind.make(plan)
                return FaultRun(body: { world.onThread { body(world) } }, held: world.held)
            }
        }
        var scenarios = kind.modes.map { mode in scenario("collect \(mode.rawValue)") { Scenarios.collect($0.backend, mode: mode) } }
        scenarios += kind.modes.map { mode in scenario("retrying client \(mode.rawValue)") { Scenarios.retrying($0.backend, mode: mode) } }
        scenarios += kind.modes.map { mode in scenario("fuzzer loop \(mode.rawValue)") { Scenarios.fuzzerLoop($0.backend, mode: mode) } }
        if kind.make(FaultPlan()).remote != nil {
            scenarios += kind.modes.map { mode in
                scenario("remote \(mode.rawValue)") { Scenarios.remote($0.backend, mode: mode, $0.remote!.request, work: $0.remote!.work) }
            }
            scenarios.append(scenario("retrying remote client") { Scenarios.retryingRemote($0.backend, mode: .pc, $0.remote!.request, work: $0.remote!.work) })
        }
        scenarios += [
            scenario("handoff") { Scenarios.handoff($0.backend, onThread: $0.onThread) },
            scenario("handoff and back") { Scenarios.handoffAndBack($0.backend, onThread: $0.onThread) },
            scenario("spawn") { Scenarios.spawn($0.backend, mode: .pc) },
            scenario("fork server") { Scenarios.forkServer($0.backend, mode: .pc) },
            scenario("availability") { Scenarios.availability($0.backend) },
        ]
        return scenarios
    }

    static let kprobeSelection = FunctionSelection(patterns: ["ksys_read", "vfs_*", "dup_static", "do_int3"])

    /// The kprobe backend's sweeps: counters, a handoff (probes reopened for the enabling
    /// thread), a traced command, availability.
    static var kprobeScenarios: [FaultScenario] {
        func scenario(_ name: String, _ body: @escaping @Sendable (KprobeBackend) -> CoverageError?) -> FaultScenario {
            FaultScenario("kprobe \(name)", errnos: Errnos.kprobe) { plan in
                let (backend, held) = Kernels.kprobe(plan)
                return FaultRun(body: { POSIXThread.run { body(backend) } }, held: held)
            }
        }
        return [
            scenario("collect pc") { Scenarios.collect($0, mode: .pc, functions: kprobeSelection) },
            scenario("handoff") { backend in
                Scenarios.handoff(backend, functions: kprobeSelection) { body in POSIXThread.run { body() } }
            },
            scenario("handoff and back") { backend in
                Scenarios.handoffAndBack(backend, functions: kprobeSelection) { body in POSIXThread.run { body() } }
            },
            scenario("retrying client") { Scenarios.retrying($0, mode: .pc, functions: kprobeSelection) },
            scenario("fuzzer loop") { Scenarios.fuzzerLoop($0, mode: .pc, functions: kprobeSelection) },
            scenario("spawn") { Scenarios.spawn($0, mode: .pc, functions: kprobeSelection) },
            scenario("availability") { Scenarios.availability($0) },
        ]
    }

    /// Sweeps `scenarios`, expects no problem, and prints the pairs run per scenario.
    static func sweep(_ scenarios: [FaultScenario]) -> Int {
        var total = 0
        for scenario in scenarios {
            let report = FaultSweep.run(scenario, errorPaths: true)
            let calls = report.calls.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print(
                "fault sweep \(report.scenario): \(report.pairs) (call, n, errno) runs, \(report.errorPathPairs) more with a second fault on the error path, \(report.thrown) typed errors; calls: \(calls)")
            #expect(report.pairs > 0, "\(scenario.name): nothing swept")
            for problem in report.problems { Issue.record(Comment(rawValue: problem)) }
            total += report.pairs + report.errorPathPairs
        }
        return total
    }

    @Test(arguments: Kernels.kcov.map(\.name))
    func everyFaultOfAKcovBackendIsTypedAndLeaksNothing(kernel: String) throws {
        let kind = try #require(Kernels.kcov.first { $0.name == kernel })
        let total = Self.sweep(Self.scenarios(kind))
        print("fault sweep \(kernel): \(total) runs in all")
    }

    @Test func everyFaultOfTheKprobeBackendIsTypedAndLeaksNothing() {
        let total = Self.sweep(Self.kprobeScenarios)
        print("fault sweep kprobe: \(total) runs in all")
    }
}
