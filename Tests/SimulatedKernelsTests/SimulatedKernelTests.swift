import CoverageAPI
import Foundation
import SimulatedKernels
import Synchronization
import Testing

/// The public simulated kernels, used as a downstream fuzzer would: a collector over each, the
/// same client code, coverage it chose, and nothing left held.
@Suite struct SimulatedKernelTests {
    @Test(arguments: ["linux", "netbsd", "freebsd", "openbsd", "gvisor", "kprobe"])
    func theProbeIsCollectedThroughTheFrontDoor(name: String) throws {
        let kernel = try #require([SimulatedKernel.linux(), .netbsd(), .freebsd(), .openbsd(), .gVisor(), .kprobe()].first { $0.backend.name == name })
        do {
            let functions = kernel.probeCoverage.unit == .function ? FunctionSelection(patterns: ["ksys_read", "vfs_read"]) : FunctionSelection()
            var collector = try CoverageCollector(backend: kernel.backend, bufferWords: 512, functions: functions)
            let trace = try collector.collect { kernel.probe() }
            #expect(trace.backend == name)
            #expect(trace.unit == kernel.probeCoverage.unit)
            #expect(trace.pcs == kernel.probeCoverage.pcs)
            #expect(trace.functions == kernel.probeCoverage.functions)
            #expect(kernel.resources.descriptors > 0)
        }
        #expect(kernel.resources == SimulatedKernel.Resources(descriptors: 0, mappings: 0), "the collector released everything")
    }

    @Test func eachCallGetsTheCoverageTheTestChose() throws {
        let kernel = SimulatedKernel.linux()
        var collector = try CoverageCollector(backend: kernel.backend, bufferWords: 512)
        try collector.enable()
        let paths: [[UInt64]] = [[0xffff_ffff_8100_0010, 0xffff_ffff_8100_0123], [0xffff_ffff_8100_0abc]]
        for path in paths {
            try collector.reset()
            try kernel.syscall(covering: path)
            #expect(try collector.read().pcs == path)
        }
        try collector.disable()
    }

    @Test(arguments: ["netbsd", "freebsd", "openbsd"])
    func comparisonsAreRecordedInCMPMode(name: String) throws {
        let kernel = try #require([SimulatedKernel.netbsd(), .freebsd(), .openbsd()].first { $0.backend.name == name })
        var collector = try CoverageCollector(backend: kernel.backend, mode: .comparisons, bufferWords: 512)
        let record = ComparisonRecord(type: 5, first: 7, second: 9, pc: 0xffff_ffff_8022_0001)
        let trace = try collector.collect { try? kernel.syscall(covering: [], comparisons: [record]) }
        #expect(trace.comparisons == [record])
    }

    @Test func anotherThreadsSyscallsAreNotRecorded() throws {
        let kernel = SimulatedKernel.linux()
        var collector = try CoverageCollector(backend: kernel.backend, bufferWords: 512)
        let trace = try collector.collect {
            let done = DispatchSemaphore(value: 0)
            Thread {
                try? kernel.syscall(covering: [0xffff_ffff_8100_0010])
                done.signal()
            }.start()
            done.wait()
        }
        #expect(trace.pcs.isEmpty)
    }

    @Test func modelsThatRecordTheirOwnPathsSaySo() {
        #expect(throws: CoverageError.self) { try SimulatedKernel.gVisor().syscall(covering: [1]) }
        #expect(throws: CoverageError.self) { try SimulatedKernel.linux().syscall(entering: ["vfs_read"]) }
        let kprobe = SimulatedKernel.kprobe()
        #expect(throws: Never.self) { try kprobe.syscall(entering: ["vfs_read"]) }
    }
}
