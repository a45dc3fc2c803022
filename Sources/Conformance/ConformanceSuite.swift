public import CoverageAPI
import KernelSeam

/// The shared checks, and running them against any backend over any device, real or model.
public enum ConformanceSuite {
    /// Every shared check, in a stable order. They drive a kcov buffer; backends of function
    /// granularity, which have none, run ``FunctionChecks/all`` instead.
    public static let checks: [ConformanceCheck] =
        LifecycleChecks.all + IsolationChecks.all + CollectionChecks.all + ModeAndRemoteChecks.all

    /// Runs `checks` against `backend`, each on a fresh thread (coverage state is per thread, so
    /// one check cannot inherit another's).
    public static func run(on backend: any CoverageBackend, checks: [ConformanceCheck] = checks) -> [CheckResult] {
        checks.map { check in
            if let reason = check.notApplicable(backend.capabilities) {
                return CheckResult(id: check.id, status: .notApplicable, detail: reason)
            }
            let context = CheckContext(backend: backend)
            if check.drivesKcovBuffer && !context.drivesKcovBuffer {
                return CheckResult(
                    id: check.id, status: .fail,
                    detail: "the capabilities say \(backend.capabilities.granularity.rawValue) granularity, but the \(backend.name) backend is not a kcov driver with buffer rules")
            }
            do {
                try POSIXThread.run { try check.body(context) }
                return CheckResult(id: check.id, status: .pass, detail: "")
            } catch let skipped as ConformanceNotApplicable {
                return CheckResult(id: check.id, status: .notApplicable, detail: skipped.reason)
            } catch {
                return CheckResult(id: check.id, status: .fail, detail: String(describing: error))
            }
        }
    }
}
