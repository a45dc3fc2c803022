#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs closures on new POSIX threads and joins them: coverage is per thread, so checks need real ones.
enum ThreadRunner {
    fileprivate final class Job {
        let body: () throws -> Void
        var error: (any Error)?
        init(_ body: @escaping () throws -> Void) { self.body = body }
    }

    /// Runs `body` on a new thread, waits for it, and returns what it threw.
    static func run(_ body: @escaping @Sendable () throws -> Void) -> (any Error)? {
        let job = Job(body)
        let context = Unmanaged.passRetained(job).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeUnretainedValue()
            do { try job.body() } catch { job.error = error }
            return nil
        }, context)
        precondition(created == 0, "pthread_create failed: \(created)")
        pthread_join(thread, nil)
        return Unmanaged<Job>.fromOpaque(context).takeRetainedValue().error
    }
}

extension ThreadRunner {
    /// A started thread, to pass to ``join(_:)``.
    struct Started {
        fileprivate let thread: pthread_t
        fileprivate let context: UnsafeMutableRawPointer
    }

    /// Starts `body` on a new thread without waiting for it.
    static func start(_ body: @escaping @Sendable () -> Void) -> Started {
        let job = Job(body)
        let context = Unmanaged.passRetained(job).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            try? Unmanaged<Job>.fromOpaque(raw!).takeUnretainedValue().body()
            return nil
        }, context)
        precondition(created == 0, "pthread_create failed: \(created)")
        return Started(thread: thread, context: context)
    }

    /// Waits for a thread from ``start(_:)``.
    static func join(_ started: Started) {
        pthread_join(started.thread, nil)
        Unmanaged<Job>.fromOpaque(started.context).release()
    }
}
