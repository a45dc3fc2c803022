import Conformance
import Foundation
import LinuxBackend
import ReferenceModels
import TestKernel
import TestSupport
import Testing

/// `--kernel`: a kernel given as a file, checked and booted the way a user's would be; the test
/// kernel stands in for the user's, as the one kernel here known to run the guest.
@Suite struct UserKernelGuestTests {
    @Test("vm run --kernel BZIMAGE --vmlinux VMLINUX checks the kernel, boots it and runs the command", .timeLimit(.minutes(20)))
    func givenKernelRunsTheCommand() throws {
        let kernel = try TestKernelBuilder().build { print("test kernel: \($0)") }
        let result = try runKcovctl(["vm", "run", "--kernel", kernel.bzImage, "--vmlinux", kernel.vmlinux, "--", "uname", "-r"])
        #expect(result.status == 0, "\(result.errors)")
        let release = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(release.hasPrefix(kernel.source.rawValue + "."), "the guest ran the given kernel: \(release)")
        #expect(result.errors.contains("kcovctl: checked \(kernel.bzImage) (\(release) "), "the preflight names the release it read: \(result.errors)")
        #expect(result.errors.contains("it can run a command (config: the configuration embedded in \(kernel.bzImage); --vmlinux matches it by build id "))
    }

    /// Issue 16's end-to-end check: the kcov conformance suite passes on each test kernel given as
    /// a user's kernel would be (`--kernel`, `--vmlinux`), 6.1 and 6.12 alike.
    @Test(.timeLimit(.minutes(20)), arguments: KernelSource.allCases)
    func conformancePassesOnAGivenKernel(source: KernelSource) throws {
        let kernel = try TestKernelBuilder(source: source).build { print("test kernel \(source.rawValue): \($0)") }
        let result = try runKcovctl([
            "conformance", "--backend", "linux", "--vm", "--kernel", kernel.bzImage, "--vmlinux", kernel.vmlinux, "--format", "json",
        ])
        #expect(result.status == 0, "\(source.rawValue): \(result.errors.suffix(2000))")
        let report = try JSONDecoder().decode(ConformanceReport.self, from: result.standardOutput)
        #expect(report.device == .real && report.backend == "linux")
        #expect(report.checks.count == ConformanceSuite.run(on: LinuxKcovBackend(kernel: LinuxKcovModel())).count, "\(source.rawValue): the whole suite ran")
        #expect(report.passed, "\(source.rawValue): \(report.text())")
    }
}
