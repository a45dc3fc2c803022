package import CoverageAPI
import KernelSeam

/// A misuse, written once against the shared API, to compare backends: the same misuse must give
/// the same ``CoverageError/Code`` on every kcov backend, whatever errno its kernel answers with.
package struct Misuse: Sendable, CustomStringConvertible {
    package var description: String
    package var run: @Sendable (any KcovDriver) throws(CoverageError) -> Void

    package init(_ description: String, run: @escaping @Sendable (any KcovDriver) throws(CoverageError) -> Void) {
        self.description = description
        self.run = run
    }

    /// The error a misuse fails with (nil if it succeeds), on a fresh thread.
    package func error(on backend: any KcovDriver) -> CoverageError? {
        POSIXThread.run {
            do throws(CoverageError) {
                try run(backend)
                return nil
            } catch {
                return error
            }
        }
    }

    static let words = 512

    /// The misuses every kcov kernel has: sizes, order, ownership, an unknown request, a remote
    /// target the backend lacks.
    package static let shared: [Misuse] = [
        Misuse("initialize twice") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: words)
            try b.initialize(fd, words: words)
        },
        Misuse("initialize below the range") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: b.capabilities.buffer!.words.lowerBound - 1)
        },
        Misuse("initialize above the range") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: b.capabilities.buffer!.words.upperBound + 1)
        },
        Misuse("enable before initialize") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.enable(fd, mode: .pc)
        },
        Misuse("map before initialize") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            let address = try b.mapBuffer(fd, words: words)
            b.unmapBuffer(address, words: words)
        },
        Misuse("enable twice") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: words)
            try b.enable(fd, mode: .pc); defer { try? b.disable(fd) }
            try b.enable(fd, mode: .pc)
        },
        Misuse("a second fd on the same thread") { b throws(CoverageError) in
            let first = try b.openDevice(); defer { b.closeDevice(first) }
            let second = try b.openDevice(); defer { b.closeDevice(second) }
            try b.initialize(first, words: words)
            try b.initialize(second, words: words)
            try b.enable(first, mode: .pc); defer { try? b.disable(first) }
            try b.enable(second, mode: .pc)
        },
        Misuse("initialize while enabled") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: words)
            try b.enable(fd, mode: .pc); defer { try? b.disable(fd) }
            try b.initialize(fd, words: words)
        },
        Misuse("disable without enable") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: words)
            try b.disable(fd)
        },
        Misuse("disable from a thread that did not enable") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: words)
            try b.enable(fd, mode: .pc); defer { try? b.disable(fd) }
            try POSIXThread.run { () throws(CoverageError) in try b.disable(fd) }
        },
        Misuse("an undefined request") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.sendUndefinedRequest(fd)
        },
        Misuse("remote enable of an unsupported target kind") { b throws(CoverageError) in
            let fd = try b.openDevice(); defer { b.closeDevice(fd) }
            try b.initialize(fd, words: words)
            let target: RemoteRequest.Target = b.capabilities.remote.contains(.vhciPort) ? .usbBus(1) : .vhciPort(bus: 0, port: 1)
            try b.enableRemote(fd, mode: .pc, RemoteRequest(targets: [target], sectionWords: words))
        },
    ]
}
