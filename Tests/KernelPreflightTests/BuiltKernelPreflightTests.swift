import Foundation
@testable import KernelPreflight
import TestKernel
import TestSupport
import Testing

/// Debian's stock cloud kernel, unpacked into the kernel cache by Scripts/stock-kernel.sh.
struct StockKernel {
    var bzImage: String
    var config: String

    static func find() throws -> StockKernel {
        let folder = TestKernelBuilder.defaultCacheDirectory + "/debian-cloud-kernel"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        guard let image = files.first(where: { $0.hasPrefix("vmlinuz-") }), let config = files.first(where: { $0.hasPrefix("config-") }) else {
            throw ToolFailure(description: "no Debian cloud kernel in \(folder): run Scripts/setup.sh (it calls Scripts/stock-kernel.sh)")
        }
        return StockKernel(bzImage: folder + "/" + image, config: folder + "/" + config)
    }

    /// The options of `requirements` whose line in the .config is not `=y`, read with a plain
    /// line match (not the library's parser).
    func notBuiltIn(_ requirements: GuestRequirements) throws -> [String] {
        let lines = Set(try String(contentsOfFile: config, encoding: .utf8).split(separator: "\n").map(String.init))
        return requirements.options.map(\.option).filter { !lines.contains("CONFIG_\($0)=y") }
    }
}

/// The preflight on real kernels: the project's test kernel passes it; Debian's stock cloud kernel
/// (no 9p, no kcov, virtio PCI as a module, no embedded config) is refused naming what it lacks;
/// real files of the wrong kind are refused as such.
@Suite struct BuiltKernelPreflightTests {
    @Test("The test kernel passes for every guest use, its vmlinux matching by build id and its config read from the bzImage")
    func testKernelPasses() throws {
        let kernel = try TestKernelBuilder().build { print("test kernel: \($0)") }
        for requirements in [GuestRequirements.command, .kcov, .kprobe] {
            var notes: [String] = []
            let report = try Preflight.check(kernel: kernel.bzImage, vmlinux: kernel.vmlinux, requirements: requirements) { notes.append($0) }
            #expect(report.configurationSource == "the configuration embedded in \(kernel.bzImage)")
            #expect(report.vmlinuxMatch?.hasPrefix("build id ") == true, "\(String(describing: report.vmlinuxMatch))")
            #expect(report.image.compression == .xz, "tinyconfig's default compression")
            #expect(report.image.kernelVersion?.hasPrefix(kernel.source.rawValue + ".") == true)
            #expect(notes.isEmpty, "\(notes)")
        }
        // The banner agrees with the header as well (the fallback when a build id is missing).
        let vmlinux = try Vmlinux(path: kernel.vmlinux)
        let image = try BootImage(path: kernel.bzImage)
        #expect(Preflight.bannerMatches(vmlinux.banner, headerVersion: try #require(image.kernelVersion)))
        #expect(!Preflight.bannerMatches(vmlinux.banner, headerVersion: image.kernelVersion!.replacingOccurrences(of: "#1 ", with: "#2 ")))
        #expect(vmlinux.configuration != nil, "the vmlinux embeds the same configuration")
    }

    @Test("Debian's stock kernel: no embedded config is said as such; with its /boot config, every option it lacks is named")
    func stockKernelIsRefused() throws {
        let stock = try StockKernel.find()
        let noConfig = try #require(preflightError { _ = try Preflight.check(kernel: stock.bzImage, requirements: .command) })
        #expect(noConfig.code == .noConfiguration, "\(noConfig)")
        #expect(try BootImage(path: stock.bzImage).compression == .lz4, "Debian compresses with lz4")

        for requirements in [GuestRequirements.command, .kcov, .kprobe] {
            let error = try #require(preflightError { _ = try Preflight.check(kernel: stock.bzImage, configuration: stock.config, requirements: requirements) })
            #expect(error.code == .missingOptions)
            #expect(error.missing.map(\.requirement.option) == (try stock.notBuiltIn(requirements)))
            print(error)
        }
        let kcov = try #require(preflightError { _ = try Preflight.check(kernel: stock.bzImage, configuration: stock.config, requirements: .kcov) })
        let missing = Set(kcov.missing.map(\.requirement.option))
        #expect(missing.isSuperset(of: ["9P_FS", "NET_9P_VIRTIO", "KCOV"]), "Debian's cloud kernel has neither 9p nor kcov: \(missing)")
        #expect(kcov.missing.first { $0.requirement.option == "VIRTIO_PCI" }?.state == .module, "virtio PCI is a module there")
    }

    @Test("A vmlinux of another build, a bzImage given as the vmlinux and the reverse, a module, a program and a stripped kernel are refused")
    func wrongFiles() throws {
        let kernel = try TestKernelBuilder().build { print("test kernel: \($0)") }
        let stock = try StockKernel.find()
        let other = try #require(preflightError { _ = try Preflight.check(kernel: stock.bzImage, vmlinux: kernel.vmlinux, configuration: stock.config, requirements: .command) })
        #expect(other.code == .mismatch && other.path == kernel.vmlinux && other.message.contains("is another build than \(stock.bzImage): its build id is"), "\(other)")

        let swapped = try #require(preflightError { _ = try Preflight.check(kernel: kernel.vmlinux, requirements: .command) })
        #expect(swapped.code == .notBootImage && swapped.message.contains("is an ELF file (a vmlinux?)"), "\(swapped)")
        let imageAsVmlinux = try #require(preflightError { _ = try Vmlinux(path: kernel.bzImage) })
        #expect(imageAsVmlinux.code == .notELF && imageAsVmlinux.message.contains("is a bzImage"), "\(imageAsVmlinux)")
        let module = try #require(preflightError { _ = try Vmlinux(path: kernel.testModule) })
        #expect(module.code == .notKernel && module.message.contains("a relocatable object (a kernel module?)"), "\(module)")
        let program = try #require(preflightError { _ = try Vmlinux(path: "/bin/true") })
        #expect(program.code == .notKernel && program.message.contains("a shared object or a program"), "\(program)")
        let text = try #require(preflightError { _ = try Vmlinux(path: stock.config) })
        #expect(text.code == .notELF && text.message.contains("is not an ELF file"), "\(text)")

        // A payload without a build id: the vmlinux's linux_banner is compared with the header's
        // kernel_version instead, and must name the same release, builder and build.
        let scratch0 = try Scratch()
        let unnoted = try scratch0.file("program", [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/bin/true"))))
        _ = try runTool("/usr/bin/objcopy", ["--remove-section", ".note.gnu.build-id", unnoted])
        let anonymous = [UInt8](try Data(contentsOf: URL(fileURLWithPath: unnoted)))
            + Array("IKCFG_ST".utf8) + (try scratch0.compress(Array(configText(allBuiltIn(.command)).utf8), .gzip)) + Array("IKCFG_ED".utf8)
        var sameBuild = SyntheticImage(payload: try scratch0.compress(anonymous, .gzip))
        sameBuild.kernelVersion = try BootImage(path: kernel.bzImage).kernelVersion
        let matched = try Preflight.check(kernel: try scratch0.file("same", sameBuild.bytes), vmlinux: kernel.vmlinux, requirements: .command)
        #expect(matched.vmlinuxMatch == "linux_banner")
        let otherBuild = try scratch0.file("other", SyntheticImage(payload: try scratch0.compress(anonymous, .gzip)).bytes)
        let banner = try #require(preflightError { _ = try Preflight.check(kernel: otherBuild, vmlinux: kernel.vmlinux, requirements: .command) })
        #expect(banner.code == .mismatch && banner.message.contains("its banner is \"Linux version \(kernel.source.rawValue)."), "\(banner)")
        #expect(banner.message.contains("the bzImage's header says \"6.99.0-synthetic (tester@host)"), "\(banner)")

        // The bzImage's payload is the kernel without its symbols: refused as a vmlinux.
        let scratch = try Scratch()
        let stripped = try scratch.file("vmlinux.bin", try BootImage(path: kernel.bzImage).decompressedPayload())
        let error = try #require(preflightError { _ = try Vmlinux(path: stripped) })
        #expect(error.code == .stripped && error.message.contains("has no symbol table"), "\(error)")
    }
}

/// kcovctl with `--kernel`: a kernel that cannot run the command is refused before QEMU starts,
/// with the options it lacks for that command; the flags' misuses are usage errors.
@Suite struct KernelOptionCLITests {
    @Test("A kernel lacking options is refused in seconds, naming what this command needs, with no guest booted")
    func refusedBeforeBooting() throws {
        let stock = try StockKernel.find()
        for (command, needs) in [
            (["vm", "run"], GuestRequirements.command), (["trace", "--vm"], .kcov), (["conformance", "--vm", "--backend", "kprobe"], .kprobe),
        ] {
            let started = Date()
            let result = try runKcovctl(command + ["--kernel", stock.bzImage, "--kernel-config", stock.config, "--boot-timeout", "3600"] + (command[0] == "conformance" ? [] : ["--", "true"]), timeLimit: 300)
            let seconds = Date().timeIntervalSince(started)
            #expect(result.status == 1, "\(command): \(result.errors)")
            #expect(result.errors.contains("kcovctl: error: \(stock.bzImage): cannot \(needs.purpose) in the guest"), "\(result.errors)")
            for option in try stock.notBuiltIn(needs) { #expect(result.errors.contains("CONFIG_\(option)"), "\(command): \(option)") }
            #expect(!result.errors.contains("guest ran"), "\(command): no guest ran")
            print("\(command.joined(separator: " ")): refused in \(String(format: "%.2f", seconds)) s")
        }
        let noConfig = try runKcovctl(["vm", "run", "--kernel", stock.bzImage, "--", "true"], timeLimit: 300)
        #expect(noConfig.status == 1 && noConfig.errors.contains("embeds no configuration") && noConfig.errors.contains("--kernel-config FILE"), "\(noConfig.errors)")
    }

    @Test("Without the payload's decompressor: an error naming the package, or, with a .config, the check goes on without the payload")
    func missingDecompressor() throws {
        let stock = try StockKernel.find()
        let kcovctl = try builtKcovctl()
        let bare = try runProgram(["/usr/bin/env", "PATH=/nonexistent", kcovctl, "vm", "run", "--kernel", stock.bzImage, "--", "true"])
        #expect(bare.status == 1)
        #expect(bare.errors.contains("its payload is lz4-compressed and `lz4` is not installed: run Scripts/setup.sh (apt-get install lz4)"), "\(bare.errors)")
        let configured = try runProgram(["/usr/bin/env", "PATH=/nonexistent", kcovctl, "vm", "run", "--kernel", stock.bzImage, "--kernel-config", stock.config, "--", "true"])
        #expect(configured.status == 1)
        #expect(configured.errors.contains("kcovctl: note: its payload is lz4-compressed and `lz4` is not installed: run Scripts/setup.sh (apt-get install lz4); checked without the payload"), "\(configured.errors)")
        #expect(configured.errors.contains("CONFIG_9P_FS is not set"), "\(configured.errors)")
    }

    @Test(arguments: [
        ["vm", "run", "--kernel", "/boot/none", "--source", "6.1", "--", "true"],
        ["vm", "run", "--vmlinux", "/boot/none", "--", "true"],
        ["vm", "run", "--kernel-config", "/boot/none", "--", "true"],
        ["conformance", "--backend", "linux", "--kernel", "/boot/none"],
    ])
    func misusedFlagsAreUsageErrors(arguments: [String]) throws {
        let result = try runKcovctl(arguments)
        #expect(result.status == 64, "\(result.errors)")
    }

    @Test func aBadKernelFileIsOneLineAndExit1() throws {
        let result = try runKcovctl(["vm", "run", "--kernel", "/bin/true", "--", "true"])
        #expect(result.status == 1)
        #expect(result.errors.contains("kcovctl: error: /bin/true: is an ELF file (a vmlinux?), not a bzImage"), "\(result.errors)")
    }
}
