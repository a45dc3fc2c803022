import BackendSelection
import CoverageAPI
import KernelSeam
import TestSupport
import Testing

@testable import kcovctl

/// `kcovctl trace`'s own path (``TraceRun``: backend resolution, the collector, the command's run,
/// the JSON report) over the reference models, with every (call, n, errno) injected.
@Suite struct FaultSweepTraceCommandTests {
    /// A selection holding `candidates`, on a host that `uname` calls `system`, not gVisor.
    static func selection(_ candidates: [BackendSelection.Candidate], system: String) -> BackendSelection {
        BackendSelection(
            candidates: candidates, hostSystem: { system },
            detectGVisor: { .init(insideGVisor: false, explanation: "a reference model, not gVisor") })
    }

    /// `kcovctl trace --backend <backend> [--mode cmp] [--functions …] --format json -- /bin/true`.
    static func trace(
        _ backend: String, mode: CoverageMode, functions: [String], over backends: BackendSelection
    ) -> CoverageError? {
        let run = TraceRun(
            backend: backend, mode: mode, words: Scenarios.words, functions: FunctionSelection(patterns: functions), command: ["/bin/true"],
            standardOutput: nil, timeout: nil)
        var report: TraceReport?
        if let error = outcome({ () throws(CoverageError) in report = try run.collect(over: backends, note: { _ in }) }) { return error }
        guard let report else { return nil }
        // A report that claims success holds what /bin/true ran (see Scenarios.expectCoverage).
        let missing: [String]
        if let functions = report.functions {
            let probed = Set(functions.probed.map(\.name)), hit = Set(functions.hits.map(\.name))
            let skipped = Set(functions.skipped.map(\.name))
            missing = ["vfs_open", "ksys_read"].filter { probed.contains($0) ? !hit.contains($0) : !skipped.contains($0) }
        } else {
            missing = report.trace.pcs.isEmpty && report.trace.comparisons.isEmpty ? ["any entry"] : []
        }
        guard missing.isEmpty else {
            return CoverageError(.system, "silent partial result: the trace of /bin/true succeeded without \(missing.joined(separator: ", "))")
        }
        do {
            _ = try report.render(.json)
            return nil
        } catch {
            return CoverageError(.system, "the report of a collected trace could not be rendered: \(error)")
        }
    }

    static let systems = ["linux": "Linux", "netbsd": "NetBSD", "freebsd": "FreeBSD", "openbsd": "OpenBSD", "gvisor": "Linux"]

    static var scenarios: [FaultScenario] {
        var scenarios: [FaultScenario] = []
        for kind in Kernels.kcov {
            let system = systems[kind.name]!
            for mode in kind.modes {
                scenarios.append(FaultScenario("trace --backend \(kind.name) --mode \(mode.rawValue)", errnos: Errnos.kcov) { plan in
                    let world = kind.make(plan)
                    let backends = selection([.init(world.backend, systemName: system)], system: system)
                    return FaultRun(body: { world.onThread { trace(kind.name, mode: mode, functions: [], over: backends) } }, held: world.held)
                })
            }
        }
        scenarios.append(FaultScenario("trace --backend kprobe --functions", errnos: Errnos.kprobe) { plan in
            let (backend, held) = Kernels.kprobe(plan)
            let backends = selection([.init(backend, systemName: "Linux")], system: "Linux")
            return FaultRun(
                body: { POSIXThread.run { trace("kprobe", mode: .pc, functions: ["ksys_read", "vfs_*"], over: backends) } }, held: held)
        })
        // `auto` on Linux: the kcov device when it opens, else the kprobe backend, which then
        // needs functions; its error sums up why each backend was passed over.
        let both = Errnos.kprobe.merging(Errnos.kcov) { _, kcov in kcov }
        scenarios.append(FaultScenario("trace --backend auto", errnos: both, errorsNameTheCall: false) { plan in
            let world = Kernels.linux.make(plan)
            let (kprobe, probes) = Kernels.kprobe(plan)
            let backends = selection([.init(world.backend, systemName: "Linux"), .init(kprobe, systemName: "Linux")], system: "Linux")
            return FaultRun(
                body: { world.onThread { trace(BackendSelection.auto, mode: .pc, functions: [], over: backends) } },
                held: { world.held().merging(probes()) { $0 + $1 } })
        })
        return scenarios
    }

    @Test func everyFaultOfTheTracePathIsTypedAndLeaksNothing() {
        let total = FaultSweepTests.sweep(Self.scenarios)
        print("fault sweep kcovctl trace: \(total) runs in all")
    }
}
