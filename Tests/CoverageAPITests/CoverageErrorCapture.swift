import CoverageAPI
import Testing

/// The CoverageError `body` threw, or `nil` when it threw nothing; any other error is a test failure.
func coverageError(_ body: () throws -> Void) -> CoverageError? {
    do {
        try body()
    } catch let error as CoverageError {
        return error
    } catch {
        Issue.record("unexpected \(error)")
    }
    return nil
}
