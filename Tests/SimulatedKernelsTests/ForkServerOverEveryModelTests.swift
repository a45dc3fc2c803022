import CoverageAPI
import SimulatedKernels
import Testing

/// The fork server (``CoverageCollector/runForked(timeout:_:)``) through the front door of every
/// kcov model: the child enables its inherited descriptor, the body's syscall is in the trace, its
/// status comes back, and its exit frees the descriptor for the next fork.
@Suite struct ForkServerOverEveryModelTests {
    static let kernels: [(String, @Sendable () -> SimulatedKernel)] = [
        ("linux", SimulatedKernel.linux), ("netbsd", SimulatedKernel.netbsd), ("freebsd", SimulatedKernel.freebsd),
        ("openbsd", SimulatedKernel.openbsd), ("gvisor", SimulatedKernel.gVisor),
    ]

    @Test(arguments: kernels.map(\.0))
    func eachForkTracesItsChildAndReleasesTheDescriptor(name: String) throws {
        let kernel = try #require(Self.kernels.first { $0.0 == name }).1()
        do {
            var collector = try CoverageCollector(backend: kernel.backend, bufferWords: 4096)
            for round in 1...3 {
                let result = try collector.runForked {
                    kernel.probe()
                    return Int32(round)
                }
                #expect(result.child.exit == .exited(Int32(round)), "round \(round)")
                let probed = Set(kernel.probeCoverage.pcs)
                #expect(probed.isSubset(of: Set(result.trace.pcs)), "round \(round): the child's probe is in its trace")
            }
        }
        #expect(kernel.resources == .init(descriptors: 0, mappings: 0), "nothing held after the collector is gone")
    }
}
