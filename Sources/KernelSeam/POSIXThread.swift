#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A closure running on a new POSIX thread (its own kernel thread id), joined once: kcov state is
/// per thread, so checks, models and tests need real threads rather than tasks or queues.
package struct POSIXThread: @unchecked Sendable {
    private let thread: pthread_t

    /// Starts `body` on a new POSIX thread; ``join()`` waits for it.
    package init(_ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(created == 0, "pthread_create failed: \(created)")
        self.thread = thread
    }

    /// Waits for the thread to end; call it exactly once.
    package func join() {
        precondition(pthread_join(thread, nil) == 0, "pthread_join failed")
    }

    /// Runs `body` on a new POSIX thread, waits for it, and returns its result or rethrows its error.
    package static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) throws(E) -> T {
        let outcome = ThreadOutcome<T, E>()
        POSIXThread { outcome.result = Result(catching: body) }.join()
        return try outcome.result!.get()
    }
}

/// The closure a new thread runs, handed to `pthread_create` as its context.
private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// What a thread of ``POSIXThread/run(_:)`` produced: written before the join, read after it.
private final class ThreadOutcome<T, E: Error>: @unchecked Sendable {
    var result: Result<T, E>?
}

extension SystemKernel {
    /// Starts `body` on a real new thread; the returned closure joins it, after which the kernel
    /// has reaped the thread (the BSD backends' thread-exit paths run then).
    package func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        let thread = POSIXThread(body)
        return { thread.join() }
    }

    /// A real process cannot exit and go on running checks: always false (the BSD backends' process
    /// interfaces, which a model answers with a simulated exit).
    package func simulateProcessExit() -> Bool { false }
}
