package import CoverageAPI

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
/// nothing.
package enum FaultSweep {
    package static func run(_ scenario: FaultScenario) -> FaultSweepReport {
        let clean = FaultPlan()
        let first = scenario.make(clean)
        var report = FaultSweepReport(scenario: scenario.name, calls: [:], pairs: 0, thrown: 0, problems: [])
        if let error = first.body() {
            report.problems.append("\(scenario.name): fails without any fault: \(error)")
            return report
        }
        report.problems += leaks(first.held(), "\(scenario.name) without any fault")
        report.calls = clean.counts
        for call in FaultCall.allCases {
            guard let count = report.calls[call.function], let codes = scenario.errnos[call] else { continue }
            for n in 1...count {
                for code in codes {
                    let fault = Fault(call, n: n, errno: code)
                    let plan = FaultPlan(fault)
                    let run = scenario.make(plan)
                    let error = run.body()
                    report.pairs += 1
                    let name = "\(scenario.name), \(fault)"
                    if !plan.fired { report.problems.append("\(name): the fault was never injected (the run made fewer calls)") }
                    if let error {
                        report.thrown += 1
                        if scenario.errorsNameTheCall && (!(error.syscall ?? "").contains(call.syscallWord) || error.errno != code) {
                            report.problems.append("\(name): the error does not name the failed call and its errno: \(error)")
                        }
                    }
                    report.problems += leaks(run.held(), name)
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
