import Conformance
import Foundation
import LinuxBackend
import ReferenceModels
import TestKernel
import TestSupport
import Testing
import VirtualMachine

/// Boots each of the project's test kernels (``KernelSource``: 6.12 and 6.1) under QEMU and runs
/// the real-kernel suites and the conformance suite inside it, from this very test binary. Never
/// skipped: a missing QEMU or kernel source fails here.
@Suite(.serialized) struct GuestSuiteTests {
    /// The suites that need the real device; the host test command skips `RealKernel*` by name and
    /// this test runs the same pattern in the guest, so no such suite can be skipped on both sides.
    static let guestSuites = [
        "RealKernelCollectionTests", "RealKernelMisuseTests", "RealKernelCLITests", "RealKernelKprobeTests", "RealKernelKprobeCLITests",
        "RealKernelSignalTests", "RealKernelProtectionTests", "RealKernelForkServerTests", "RealKernelStressTests",
    ]

    /// Builds (or reuses) the test kernel of `source` and runs `command` in a fresh guest of it.
    static func runInGuest(
        _ source: KernelSource, _ command: [String], environment: [String: String] = [:]
    ) throws -> GuestResult {
        let builder = TestKernelBuilder(source: source)
        let kernel = try builder.build { print("test kernel \(source.rawValue): \($0)") }
        let machine = VirtualMachine(kernelImage: kernel.bzImage, workDirectory: builder.cacheDirectory + "/vm")
        return try machine.run(command, environment: environment)
    }

    @Test(.timeLimit(.minutes(30)), arguments: KernelSource.allCases)
    func realKernelSuitesPassInTheTestKernel(source: KernelSource) throws {
        // This process's test binary, visible to the guest through the read-only 9p root.
        let binary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        // One test at a time: the suites measure this process's own threads.
        let command = [binary, "--testing-library", "swift-testing", "--no-parallel", "--filter", "RealKernel"]
        // The suites check that the kernel they run on is this one (its release).
        let result = try Self.runInGuest(source, command, environment: ["KCOV_TEST_KERNEL": source.rawValue])
        // Swift Testing reports on standard error.
        let output = String(decoding: result.standardOutput + result.standardError, as: UTF8.self)
        print(output)
        print("guest run on \(source.rawValue): \(String(format: "%.1f", result.seconds)) s, boot included")
        #expect(result.exitStatus == 0, "the real-kernel suites failed in the \(source.rawValue) guest")
        // Every guest suite ran (none was skipped for want of the device) and passed.
        for suite in Self.guestSuites {
            #expect(output.contains("Suite \(suite) passed"), "\(suite) did not run and pass in the guest")
        }
        #expect(!output.contains("skipped"), "a real-kernel test was skipped inside the guest")
        #expect(output.contains("tests in \(Self.guestSuites.count) suites passed"), "a RealKernel suite is missing from guestSuites")
    }

    /// The Linux model is worth what its fidelity is: the conformance suite on the real kernel (in
    /// the guest) and on the model configured for that kernel's release must give identical
    /// per-check statuses.
    @Test(.timeLimit(.minutes(30)), arguments: KernelSource.allCases)
    func realKernelAndLinuxModelGiveIdenticalConformanceResults(source: KernelSource) throws {
        let version = try #require(LinuxKcovModel.KernelVersion(release: source.rawValue), "the Linux model has no data for \(source.rawValue)")
        let kcovctl = try builtKcovctl()
        let result = try Self.runInGuest(source, [kcovctl, "conformance", "--backend", "linux", "--format", "json"])
        #expect(result.exitStatus == 0, "\(String(decoding: result.standardError, as: UTF8.self))")
        let real = try JSONDecoder().decode(ConformanceReport.self, from: result.standardOutput)
        #expect(real.device == .real && real.backend == "linux")
        print("guest run on \(source.rawValue): \(String(format: "%.1f", result.seconds)) s, boot included")
        let model = ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel(version: version)))
        #expect(real.checks.map(\.id) == model.map(\.id))
        for (kernelResult, modelResult) in zip(real.checks, model) where kernelResult.status != modelResult.status {
            Issue.record("\(kernelResult.id): kernel \(kernelResult.status.rawValue) (\(kernelResult.detail)), model \(modelResult.status.rawValue) (\(modelResult.detail))")
        }
        print(real.text())
    }
}
