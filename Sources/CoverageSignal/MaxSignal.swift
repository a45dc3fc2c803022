import Synchronization

/// The signal every worker has seen so far, shared by worker threads: each asks which of its
/// call's signals are new, and is told once per signal, whichever worker saw it first.
///
/// Concurrency: ``Worker/newSignals(_:)`` first filters against the worker's own copy of what it
/// has seen, with no lock and no atomic (the common case in a long fuzzing run is that nothing is
/// new); only signals new to that worker take the global lock, once per call. Observers registered
/// with ``onNewSignal(_:)`` run under that lock, in the order signals become known.
public final class MaxSignal: Sendable {
    private struct State {
        var seen = PCSet()
        var observers: [@Sendable ([UInt64]) -> Void] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Signals known so far.
    public var count: Int { state.withLock { $0.seen.count } }

    /// A copy of every known signal.
    public var snapshot: PCSet { state.withLock { $0.seen } }

    /// Calls `observer` with each batch of signals that becomes known (the seed's "new path
    /// notify"): one call per worker call that found anything new.
    public func onNewSignal(_ observer: @escaping @Sendable ([UInt64]) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    /// Adds `candidates` and returns those that were not known, in their order.
    @usableFromInline func admit(_ candidates: [UInt64]) -> [UInt64] {
        state.withLock { state in
            var fresh: [UInt64] = []
            for signal in candidates where state.seen.insert(signal) { fresh.append(signal) }
            if !fresh.isEmpty { for observer in state.observers { observer(fresh) } }
            return fresh
        }
    }

    /// One worker's view: its own seen set in front of the shared one. Not `Sendable`: one per thread.
    public struct Worker {
        public let shared: MaxSignal
        @usableFromInline var local = PCSet()
        @usableFromInline var candidates: [UInt64] = []

        public init(_ shared: MaxSignal) { self.shared = shared }

        /// The signals of one call (any order, repeats allowed) that no worker has seen before;
        /// they become known to all. Signals this worker has already seen cost no lock.
        @inlinable
        public mutating func newSignals<Signals: Sequence>(_ signals: Signals) -> [UInt64] where Signals.Element == UInt64 {
            candidates.removeAll(keepingCapacity: true)
            local.insertNew(signals, appendingTo: &candidates)
            guard !candidates.isEmpty else { return [] }
            return shared.admit(candidates)
        }
    }
}
