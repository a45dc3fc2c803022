import Synchronization

/// Carries a ``CoverageCollector`` that is opened but not enabled to another thread, which takes
/// it and enables it there: syzkaller's pattern of opening and mapping in the parent and enabling
/// in each worker, type-checked.
///
/// ```swift
/// let handoff = try CollectorHandoff(CoverageCollector(backend: LinuxKcovBackend()))
/// Thread {
///     guard var collector = handoff.take() else { return }
///     try? collector.enable()   // coverage of this worker thread
/// }.start()
/// ```
///
/// The collector is `sending`: the handing thread cannot use it afterwards. ``take()`` gives it
/// out once. A collector never taken is released when the handoff is.
public final class CollectorHandoff: Sendable {
    private let slot: Mutex<CoverageCollector?>

    /// Takes `collector` for another thread.
    ///
    /// - Throws: `.invalidState` when `collector` is enabled: coverage is bound to the thread that
    ///   enabled it, so the collector is disabled and released on this thread instead.
    public init(_ collector: consuming sending CoverageCollector) throws(CoverageError) {
        guard !collector.isEnabled else {
            throw CoverageError(
                .invalidState,
                "an enabled collector cannot change threads (coverage is bound to the thread that enabled it): hand it over before enable(); it was disabled and released")
        }
        slot = Mutex(Optional(consume collector))
    }

    /// The collector, the first time; `nil` after that.
    public func take() -> CoverageCollector? {
        slot.withLock { $0.take() }
    }
}
