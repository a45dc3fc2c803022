package import CoverageAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One run of a scenario over fresh models behind fault-injecting wrappers that share one plan.
package struct FaultRun {
    /// Runs the scenario to its end (on the thread the models need, which then exits as the
    /// kernel's thread would): `nil` when it succeeded, else the ``CoverageError`` it threw.
    package var body: () -> CoverageError?
    /// What the models still hold once `body` is over, by name ("fds", "mappings", "buffers",
    /// "probes", "children"): every count must be 0.
    package var held: () -> [String: Int]

    package init(body: @escaping () -> CoverageError?, held: @escaping () -> [String: Int]) {
        self.body = body
        self.held = held
    }
}

/// A scenario to sweep: how to build a fresh run around a plan, and the errnos each kind of call
/// can give it.
package struct FaultScenario: Sendable {
    package var name: String
    /// Fresh models, wrapped so every seam call goes through `plan`.
    package var make: @Sendable (FaultPlan) -> FaultRun
    /// The errnos swept for each kind of call (a kind the scenario never makes is not swept).
    package var errnos: [FaultCall: [Int32]]
    /// Whether each error must name the failed call and its errno. Off only where the code under
    /// test sums up several failures in one error by design (`auto` listing why each backend is
    /// unavailable); such errors must still be typed, and nothing may leak.
    package var errorsNameTheCall: Bool

    package init(
        _ name: String, errnos: [FaultCall: [Int32]], errorsNameTheCall: Bool = true, make: @escaping @Sendable (FaultPlan) -> FaultRun
    ) {
        self.name = name
        self.errnos = errnos
        self.errorsNameTheCall = errorsNameTheCall
        self.make = make
    }
}

/// What a sweep of one scenario found.
package struct FaultSweepReport: Sendable {
    package var scenario: String
    /// Calls per seam function in the run without faults.
    package var calls: [String: Int]
    /// (call, n, errno) runs made.
    package var pairs: Int
    /// Second faults run on error paths (``FaultSweep/run(_:errorPaths:)``).
    package var errorPathPairs = 0
    /// Runs that ended in a typed error (the rest succeeded: the failure was recovered from or
    /// only changed a message).
    package var thrown: Int
    /// Every defect, one sentence each naming the scenario and the fault.
    package var problems: [String]
}

/// Runs a scenario once without faults (it must succeed, holding nothing afterwards), then once
/// per kind of call it made, per index of that call, per errno of the kind. Each faulted run must
/// end in success or a ``CoverageError`` that names the failed call (``FaultCall/syscallWord`` in
/// its ``CoverageError/syscall``) and carries the injected errno; afterwards the models must hold
/// nothing. A run that crashes ends the test process: standard error then names the run
/// (``SweepCrashNotes``).
///
/// With `errorPaths`, a second level fails the calls the error handling itself makes: for each
/// first fault after which the run threw, and that made calls after the fault (cleanup, messages),
/// each of those calls fails too, with each errno of its kind. First faults at one call and index
/// whose runs made the same calls afterwards share one cleanup path, swept once. The error must
/// then name either fault.
package enum FaultSweep {
    package static func run(_ scenario: FaultScenario, errorPaths: Bool = false) -> FaultSweepReport {
        let slot = SweepCrashNotes.claim()
        defer { if let slot { SweepCrashNotes.release(slot) } }
        func note(_ run: String) { if let slot { SweepCrashNotes.note(slot, "fault sweep crashed during: \(run)") } }
        note("\(scenario.name) without any fault")
        let clean = FaultPlan()
        let first = scenario.make(clean)
        var report = FaultSweepReport(scenario: scenario.name, calls: [:], pairs: 0, thrown: 0, problems: [])
        if let error = first.body() {
            report.problems.append("\(scenario.name): fails without any fault: \(error)")
            return report
        }
        report.problems += leaks(first.held(), "\(scenario.name) without any fault")
        report.calls = clean.counts

        /// Runs with `faults` armed and checks the outcome; returns the plan and whether it threw.
        func check(_ faults: [Fault]) -> (plan: FaultPlan, threw: Bool) {
            let name = "\(scenario.name), " + faults.map(\.description).joined(separator: ", then ")
            note(name)
            let plan = FaultPlan(faults: faults)
            let run = scenario.make(plan)
            let error = run.body()
            if !plan.fired { report.problems.append("\(name): the fault was never injected (the run made fewer calls)") }
            if let error {
                report.thrown += 1
                let named = faults.contains { (error.syscall ?? "").contains($0.call.syscallWord) && error.errno == $0.errno }
                if scenario.errorsNameTheCall && !named {
                    report.problems.append("\(name): the error does not name the failed call and its errno: \(error)")
                }
            }
            report.problems += leaks(run.held(), name)
            return (plan, error != nil)
        }

        for call in FaultCall.allCases {
            guard let count = report.calls[call.function], let codes = scenario.errnos[call] else { continue }
            for n in 1...count {
                var cleanupPaths: Set<[String: ClosedRange<Int>]> = []
                for code in codes {
                    let fault = Fault(call, n: n, errno: code)
                    let (plan, threw) = check([fault])
                    report.pairs += 1
                    let after = plan.callsAfterFirstFault
                    guard errorPaths, threw, !after.isEmpty, cleanupPaths.insert(after).inserted else { continue }
                    for second in FaultCall.allCases {
                        guard let indexes = after[second.function], let codes = scenario.errnos[second] else { continue }
                        for m in indexes {
                            for code in codes {
                                _ = check([fault, Fault(second, n: m, errno: code)])
                                report.errorPathPairs += 1
                            }
                        }
                    }
                }
            }
        }
        return report
    }

    /// One problem per resource still held.
    static func leaks(_ held: [String: Int], _ name: String) -> [String] {
        held.sorted { $0.key < $1.key }.filter { $0.value != 0 }.map { "\(name): leaked \($0.value) \($0.key)" }
    }
}

/// What a crash in the middle of a sweep says: the runs in progress, so a trap names its
/// (scenario, call, n, errno) as a leak does. A Swift trap raises SIGILL (x86-64) or SIGTRAP
/// (arm64); the handler writes each run's note with write(2), puts the previous handler back and
/// returns, so the trap, executed again, ends the process as it would have (runtime backtrace
/// included). Sweeps run in parallel, so every run in progress is listed; one of them crashed.
enum SweepCrashNotes {
    static let slots = 32
    static let slotBytes = 256
    /// One NUL-terminated note per slot; an empty slot starts with NUL.
    nonisolated(unsafe) static let notes: UnsafeMutablePointer<CChar> = {
        let notes = UnsafeMutablePointer<CChar>.allocate(capacity: slots * slotBytes)
        notes.initialize(repeating: 0, count: slots * slotBytes)
        return notes
    }()
    /// The handlers in place before ours: SIGILL's, then SIGTRAP's.
    nonisolated(unsafe) static let previous: UnsafeMutablePointer<sigaction> = {
        let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 2)
        previous.initialize(repeating: sigaction(), count: 2)
        return previous
    }()
    private static let used = Mutex<(installed: Bool, slots: Set<Int>)>((false, []))

    /// A free slot (and the handlers, the first time); `nil` when every slot is taken.
    static func claim() -> Int? {
        used.withLock { used in
            if !used.installed {
                _ = (notes, previous)  // initialised before the handler can run
                var action = sigaction()
                action.__sigaction_handler.sa_handler = { signal in
                    for slot in 0..<SweepCrashNotes.slots {
                        let note = SweepCrashNotes.notes + slot * SweepCrashNotes.slotBytes
                        if note[0] != 0 { _ = write(2, note, strlen(note)) }
                    }
                    _ = sigaction(signal, SweepCrashNotes.previous + (signal == SIGILL ? 0 : 1), nil)
                }
                sigemptyset(&action.sa_mask)
                _ = sigaction(SIGILL, &action, previous)
                _ = sigaction(SIGTRAP, &action, previous + 1)
                used.installed = true
            }
            guard let slot = (0..<slots).first(where: { !used.slots.contains($0) }) else { return nil }
            used.slots.insert(slot)
            return slot
        }
    }

    /// Replaces the note in `slot` with `text` (cut to fit), ending in a newline.
    static func note(_ slot: Int, _ text: String) {
        let note = notes + slot * slotBytes
        note[0] = 0
        let bytes = Array((text.utf8.prefix(slotBytes - 2)) + [UInt8(ascii: "\n")])
        for (index, byte) in bytes.enumerated().dropFirst() { note[index] = CChar(bitPattern: byte) }
        note[bytes.count] = 0
        note[0] = CChar(bitPattern: bytes[0])
    }

    /// Empties `slot` and frees it.
    static func release(_ slot: Int) {
        notes[slot * slotBytes] = 0
        _ = used.withLock { $0.slots.remove(slot) }
    }
}
