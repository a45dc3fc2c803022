import CoverageAPI
import Foundation
import KernelSeam
import LinuxBackend
import ReferenceModels
import Synchronization
import TestSupport
import Testing

/// The collector's life across threads, over the Linux model: opened in one thread and enabled in
/// another through a handoff, and never enabled in one thread and used or dropped in another.
@Suite struct CollectorThreadTests {
    typealias Model = LinuxKcovModel

    @Test func aPreparedCollectorIsEnabledByTheWorkerThatTakesIt() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        let handoff = try CollectorHandoff(CoverageCollector(backend: backend, bufferWords: 512))
        let result = Mutex<(pcs: [UInt64], second: Bool, worker: Int32)?>(nil)
        POSIXThread.run {
            guard var collector = handoff.take() else { return }
            let trace = try? collector.collect { backend.probe() }
            result.withLock { $0 = (trace?.pcs ?? [], handoff.take() != nil, backend.currentThreadID()) }
        }
        let outcome = try #require(result.withLock { $0 })
        #expect(outcome.pcs == Model.probePCs, "the worker's own probe, exactly")
        #expect(!outcome.second, "a handoff gives its collector out once")
        #expect(outcome.worker != backend.currentThreadID())
        #expect(model.openDescriptorCount == 0 && model.liveMappingCount == 0, "the worker released the collector")
    }

    @Test func theParentsSyscallsAreNotInTheWorkersTrace() throws {
        let model = Model()
        let backend = LinuxKcovBackend(kernel: model)
        let handoff = try CollectorHandoff(CoverageCollector(backend: backend, bufferWords: 512))
        let enabled = DispatchSemaphore(value: 0)
        let parentDone = DispatchSemaphore(value: 0)
        let pcs = Mutex<[UInt64]?>(nil)
        let worker = Thread {
            guard var collector = handoff.take() else { return }
            try? collector.enable()
            enabled.signal()
            parentDone.wait()
            pcs.withLock { $0 = try? collector.read().pcs }
            try? collector.disable()
        }
        worker.start()
        enabled.wait()
        for _ in 0..<5 { backend.probe() }
        parentDone.signal()
        while pcs.withLock({ $0 }) == nil { usleep(1000) }
        #expect(pcs.withLock { $0 } == [], "the parent's probes were recorded for the worker")
    }

    @Test func anEnabledCollectorCannotBeHandedOverAndIsReleasedHere() throws {
        let model = Model()
        var collector = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), bufferWords: 512)
        try collector.enable()
        #expect(model.openDescriptorCount == 1)
        do {
            _ = try CollectorHandoff(collector)
            Issue.record("an enabled collector was handed over")
        } catch {
            #expect(error.code == .invalidState)
            #expect(error.message.contains("hand it over before enable()"))
        }
        #expect(model.openDescriptorCount == 0 && model.liveMappingCount == 0 && model.liveBufferCount == 0)
        // The thread is free again: it was disabled before the descriptor was closed.
        var again = try CoverageCollector(backend: LinuxKcovBackend(kernel: model), bufferWords: 512)
        try again.enable()
        try again.disable()
    }

    @Test func aHandoffNeverTakenReleasesItsCollector() throws {
        let model = Model()
        do {
            let handoff = try CollectorHandoff(CoverageCollector(backend: LinuxKcovBackend(kernel: model), bufferWords: 512))
            #expect(model.openDescriptorCount == 1)
            _ = handoff
        }
        #expect(model.openDescriptorCount == 0 && model.liveMappingCount == 0)
    }

    /// The type system is what keeps an enabled collector on its thread: capturing one in a
    /// `@Sendable` closure (a thread's body) does not compile, and the handoff does. The two
    /// snippets are type-checked against this build's CoverageAPI module.
    @Test func onlyTheHandoffCrossesThreadsAtCompileTime() throws {
        let good = """
            import CoverageAPI
            import Foundation
            func prepare(_ backend: any CoverageBackend) throws {
                let handoff = try CollectorHandoff(CoverageCollector(backend: backend))
                Thread { guard var collector = handoff.take() else { return }; try? collector.enable() }.start()
            }
            """
        let bad = """
            import CoverageAPI
            import Foundation
            func leak(_ backend: any CoverageBackend) throws {
                var collector = try CoverageCollector(backend: backend)
                try collector.enable()
                Thread { try? collector.disable() }.start()
            }
            """
        let goodResult = try typeCheck(good)
        #expect(goodResult.status == 0, "\(goodResult.output)")
        let badResult = try typeCheck(bad)
        #expect(badResult.status != 0)
        #expect(badResult.output.contains("non-Sendable type 'CoverageCollector'"), "\(badResult.output)")
    }

    /// `swiftc -typecheck` of `source` against the modules this test bundle was built with.
    func typeCheck(_ source: String) throws -> (status: Int32, output: String) {
        let modules = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("Modules")
        // Beside the test binary: any --scratch-path (Scripts/sanitize.sh builds in .build-<sanitizer>).
        let besideBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("Modules")
        let candidates = [modules.path, besideBinary.path, URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/debug/Modules").standardized.path]
        let moduleDirectory = try #require(candidates.first { FileManager.default.fileExists(atPath: $0 + "/CoverageAPI.swiftmodule") })
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("collector-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).swift")
        try source.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        // The C targets' module maps, which SwiftPM writes beside their objects: a client of
        // CoverageAPI loads its C dependency too.
        let buildDirectory = URL(fileURLWithPath: moduleDirectory).deletingLastPathComponent()
        let moduleMaps = try FileManager.default.contentsOfDirectory(atPath: buildDirectory.path)
            .filter { $0.hasSuffix(".build") }
            .map { buildDirectory.appendingPathComponent($0).appendingPathComponent("module.modulemap").path }
            .filter { FileManager.default.fileExists(atPath: $0) }
        let result = try runProgram(
            ["/usr/bin/env", "swiftc", "-typecheck", "-swift-version", "6", "-I", moduleDirectory]
                + moduleMaps.flatMap { ["-Xcc", "-fmodule-map-file=\($0)"] } + [file.path])
        return (result.status, result.output + result.errors)
    }
}

/// The linux backend inside gVisor (the gVisor model answers Linux's ioctls at Linux's path).
@Suite struct LinuxBackendInsideGVisorTests {
    @Test func aCollectorIsRefusedWithWrongBackendBeforeOpening() {
        let model = GVisorKcovModel()
        let backend = LinuxKcovBackend(kernel: model)
        do {
            _ = try CoverageCollector(backend: backend, bufferWords: 512)
            Issue.record("the linux backend opened gVisor's kcov")
        } catch {
            #expect(error.code == .wrongBackend)
            #expect(error.message.contains("use the gvisor backend"))
            #expect(error.meansUnavailable)
        }
        #expect(model.openDescriptorCount == 0)
        let availability = backend.availability()
        #expect(!availability.available)
        #expect(availability.reason.contains("gvisor backend"))
    }

    @Test func aCustomDevicePathThatIsMissingIsNotBlamedOnDebugfs() {
        let backend = LinuxKcovBackend(kernel: LinuxKcovModel(debugfsMounted: false, deviceExists: false), devicePath: "/tmp/no-such-kcov")
        do {
            _ = try CoverageCollector(backend: backend, bufferWords: 512)
            Issue.record("opened a missing device")
        } catch {
            #expect(error.code == .deviceMissing)
            #expect(error.message.contains("/tmp/no-such-kcov does not exist: check the device path"))
            #expect(!error.message.contains("debugfs"))
        }
    }

    @Test func aRelativeProgramNameIsLookedUpOnPath() throws {
        #expect(try Command(path: "sh", arguments: ["sh"], environment: ["PATH=/nonexistent:/bin"]).resolvedPath() == "/bin/sh")
        do {
            _ = try Command(path: "no-such-tool-xyz", arguments: [], environment: ["PATH=/bin"]).resolvedPath()
            Issue.record("found a tool that does not exist")
        } catch {
            #expect(error.code == .commandFailed)
            #expect(error.message.contains("command not found: no-such-tool-xyz is on no directory of PATH (/bin)"))
        }
    }
}

/// The fuzzer's hot path over the Linux model: PCs read in place or into a reused array.
@Suite struct CollectorHotPathTests {
    @Test func inPlaceAndReusedReadsGiveWhatReadGives() throws {
        let model = LinuxKcovModel()
        let backend = LinuxKcovBackend(kernel: model)
        var collector = try CoverageCollector(backend: backend, bufferWords: 512)
        try collector.enable()
        var reused: [UInt64] = []
        reused.reserveCapacity(64)
        let capacity = reused.capacity
        for _ in 0..<3 {
            try collector.reset()
            backend.probe()
            let expected = try collector.read().pcs
            #expect(try collector.withPCs { Array($0) } == expected)
            #expect(try collector.withPCs { $0.truncated } == false)
            #expect(try collector.read(into: &reused) == false)
            #expect(reused == expected)
            #expect(reused.capacity == capacity, "the array was reallocated")
        }
        try collector.disable()
    }

    @Test func aFullBufferIsTruncatedInPlaceToo() throws {
        let backend = LinuxKcovBackend(kernel: LinuxKcovModel())
        var collector = try CoverageCollector(backend: backend, bufferWords: 512)
        try collector.enable()
        for _ in 0..<100 { backend.probe() }
        #expect(try collector.withPCs { ($0.count, $0.truncated) } == (511, true))
        try collector.disable()
    }

    @Test func comparisonModeAndCountersHaveNoPCsInPlace() throws {
        let collector = try CoverageCollector(backend: LinuxKcovBackend(kernel: LinuxKcovModel()), mode: .comparisons, bufferWords: 512)
        #expect(throws: CoverageError.self) { try collector.withPCs { $0.count } }
    }
}
