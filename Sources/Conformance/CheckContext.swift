public import CoverageAPI
import KernelSeam

/// What a check works with: the backend under test and small helpers that turn surprises into
/// ``ConformanceFailure``s with a useful message. Every instance a check opens through
/// ``withInstance(words:map:_:)`` is closed, and every mapping unmapped, whatever happens.
public struct CheckContext: Sendable {
    /// The backend under test.
    public let subject: any CoverageBackend
    private let kcov: (any KcovDriver)?
    /// The buffer rules of a kcov driver.
    private let rules: BufferRules?

    /// A context for `subject`; ``ConformanceSuite/run(on:checks:)`` makes one per check.
    public init(backend subject: any CoverageBackend) {
        self.subject = subject
        if case .kcovBuffer(let driver) = subject.driver { kcov = driver } else { kcov = nil }
        rules = subject.capabilities.buffer
    }

    /// The kcov driver under test. ``ConformanceSuite/run(on:checks:)`` runs a check that drives a
    /// kcov buffer only on a backend that is a kcov driver with buffer rules.
    public var backend: any KcovDriver {
        guard let kcov else { preconditionFailure("a kcov check ran on \(subject.name), which is not a kcov driver") }
        return kcov
    }

    /// Whether ``backend`` and ``bufferRules`` can be used: a kcov driver with buffer rules.
    var drivesKcovBuffer: Bool { kcov != nil && rules != nil }

    public var capabilities: BackendCapabilities { subject.capabilities }

    /// The kcov driver's buffer size rules.
    public var bufferRules: BufferRules {
        guard let rules else { preconditionFailure("a kcov check ran on \(subject.name), which declares no buffer rules") }
        return rules
    }

    /// The smallest buffer the backend can map: the word multiple, raised to the lower bound.
    public var smallestMappableWords: Int {
        let multiple = bufferRules.wordMultiple
        return (bufferRules.words.lowerBound + multiple - 1) / multiple * multiple
    }

    /// Fails unless `condition` holds.
    public func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(message()) }
    }

    /// Fails unless `body` throws a ``CoverageError`` with `code` (and, if `beforeAnySyscall`,
    /// one raised by the backend itself rather than by the kernel).
    public func expectError(
        _ code: CoverageError.Code, _ what: String, beforeAnySyscall: Bool = false,
        _ body: () throws(CoverageError) -> Void
    ) throws {
        do {
            try body()
        } catch {
            guard error.code == code else {
                throw ConformanceFailure("\(what): expected \(code.rawValue), got \(error.code.rawValue) (\(error))")
            }
            if beforeAnySyscall && error.syscall != nil {
                throw ConformanceFailure("\(what): the backend asked the kernel (\(error)) instead of refusing from its capabilities")
            }
            return
        }
        throw ConformanceFailure("\(what): expected \(code.rawValue), but it succeeded")
    }

    /// Runs `body`, turning a ``CoverageError`` into a failure that says what was being done.
    public func must<T: ~Copyable>(_ what: String, _ body: () throws(CoverageError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw ConformanceFailure("\(what) failed: \(error)")
        }
    }

    /// An open instance: its descriptor, and its mapping once mapped.
    public struct Instance {
        public let fd: Int32
        public let words: Int
        public fileprivate(set) var mapping: UnsafeMutableRawPointer?

        /// The buffer over the mapping.
        public var buffer: CoverageBuffer? { mapping.map { CoverageBuffer(address: $0, wordCount: words) } }
    }

    /// Opens an instance, initialises it with `words` (if given) and maps it (if `map`), runs
    /// `body`, and releases everything.
    public func withInstance<T>(
        words: Int? = nil, map: Bool = true, _ body: (inout Instance) throws -> T
    ) throws -> T {
        let fd = try must("open") { () throws(CoverageError) in try backend.openDevice() }
        var instance = Instance(fd: fd, words: words ?? 0, mapping: nil)
        defer {
            if let mapping = instance.mapping { backend.unmapBuffer(mapping, words: instance.words) }
            backend.closeDevice(fd)
        }
        if let words {
            try must("initialize(\(words) words)") { () throws(CoverageError) in try backend.initialize(fd, words: words) }
            if map {
                instance.mapping = try must("map(\(words) words)") { () throws(CoverageError) in
                    try backend.mapBuffer(fd, words: words)
                }
            }
        }
        return try body(&instance)
    }

    /// Maps `instance` again (after a backend dropped the buffer at DISABLE), unmapping the old mapping.
    public func remap(_ instance: inout Instance) throws {
        let fresh = try must("map again") { () throws(CoverageError) in try backend.mapBuffer(instance.fd, words: instance.words) }
        if let old = instance.mapping { backend.unmapBuffer(old, words: instance.words) }
        instance.mapping = fresh
    }

    /// Enables `instance` in `mode` and empties its buffer.
    public func enable(_ instance: Instance, _ mode: CoverageMode = .pc) throws {
        try must("enable(\(mode.rawValue))") { () throws(CoverageError) in try backend.enable(instance.fd, mode: mode) }
        instance.buffer?.reset()
    }

    /// Disables `instance`.
    public func disable(_ instance: Instance) throws {
        try must("disable") { () throws(CoverageError) in try backend.disable(instance.fd) }
    }

    /// Runs `body` on a new thread and waits for it; its error, if any, is rethrown here.
    public func onAnotherThread(_ body: @escaping @Sendable () throws -> Void) throws {
        try POSIXThread.run(body)
    }
}
