public import CoverageAPI

/// One named behaviour every backend must show, checked through its driver protocol alone
/// (``KcovDriver`` for the shared checks, ``FunctionCounterDriver`` for the `function.*` ones).
///
/// What a check expects comes from the backend's ``BackendCapabilities``, never from its name. A
/// check that cannot apply to some capabilities says which one in ``notApplicable``.
public struct ConformanceCheck: Sendable {
    /// A stable id such as `lifecycle.init-twice`: `area.behaviour`.
    public let id: String
    /// One sentence: the behaviour the check proves.
    public let summary: String
    /// Why the check does not apply to these capabilities (naming the capability), or `nil`.
    public let notApplicable: @Sendable (BackendCapabilities) -> String?
    /// Whether the check drives a kcov buffer through ``CheckContext/backend`` (most checks) or
    /// reaches function counters through ``CheckContext/subject``.
    public let drivesKcovBuffer: Bool
    /// Runs the check; throws ``ConformanceFailure`` when the backend misbehaves.
    public let body: @Sendable (CheckContext) throws -> Void

    public init(
        _ id: String, _ summary: String,
        notApplicable: @escaping @Sendable (BackendCapabilities) -> String? = { _ in nil },
        drivesKcovBuffer: Bool = true,
        body: @escaping @Sendable (CheckContext) throws -> Void
    ) {
        self.id = id
        self.summary = summary
        self.notApplicable = notApplicable
        self.drivesKcovBuffer = drivesKcovBuffer
        self.body = body
    }
}

/// A check's verdict on a backend.
public struct ConformanceFailure: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// The result of one check.
public struct CheckResult: Sendable, Hashable, Codable {
    public enum Status: String, Sendable, Hashable, Codable {
        case pass
        case fail
        case notApplicable = "not-applicable"
    }

    public var id: String
    public var status: Status
    /// Why it failed, or which capability makes it not applicable; empty on a pass.
    public var detail: String

    public init(id: String, status: Status, detail: String) {
        self.id = id
        self.status = status
        self.detail = detail
    }
}

/// Thrown by a check that finds, at run time, that the kernel lacks what it needs (for example
/// a kernel built without comparison mode): the check is not applicable, and says why.
public struct ConformanceNotApplicable: Error, Sendable {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }
}
