import CoverageAPI
import Foundation
import LinuxBackend
import Synchronization
import Testing

/// These suites need a real kcov device; they run inside the test kernel, where
/// `GuestSuiteTests` boots them with `KCOV_GUEST=1`. On the host there is no device to test.
enum Guest {
    static let isGuest = ProcessInfo.processInfo.environment["KCOV_GUEST"] == "1"
}

/// The lowest address of the x86_64 kernel text mapping.
let kernelTextStart: UInt64 = 0xffff_ffff_8000_0000

/// Runs `body` on a new thread and waits for it to finish.
func onNewThread(_ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.start()
    done.wait()
}

/// A value handed from another thread back to the test.
final class Box<Value: Sendable>: Sendable {
    private let storage: Mutex<Value?> = Mutex(nil)
    func set(_ value: Value) { storage.withLock { $0 = value } }
    var value: Value? { storage.withLock { $0 } }
}

/// The calling thread's coverage error from `body`, if any.
func coverageError(_ body: () throws -> Void) -> CoverageError? {
    do {
        try body()
        return nil
    } catch let error as CoverageError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// Opens a fresh kcov fd for `body` and closes it after.
func withDevice(_ backend: LinuxKcovBackend, _ body: (Int32) throws -> Void) throws {
    let fd = try backend.openDevice()
    defer { backend.closeDevice(fd) }
    try body(fd)
}

/// Open descriptors and kcov mappings of this process, for leak checks.
func processResources() throws -> (fds: Int, kcovMappings: Int) {
    let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
    return (fds, maps.split(separator: "\n").count { $0.hasSuffix("/kcov") })
}
