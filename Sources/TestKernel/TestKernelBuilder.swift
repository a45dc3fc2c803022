public import Foundation

/// A built test kernel in the cache.
public struct TestKernel: Sendable, Hashable {
    /// The bootable image.
    public var bzImage: String
    /// The unstripped kernel, for symbolization.
    public var vmlinux: String
    /// The kernel's build tree (sources and `.config`).
    public var buildTree: String
    /// The project's test module (``TestModule``) built against this kernel: `kcov_test_module.ko`,
    /// with its source beside it.
    public var testModule: String
    /// Which Debian kernel source it was built from.
    public var source: KernelSource
}

/// The Debian kernel sources the project builds test kernels from: `linux-source-VERSION`, whose
/// tarball is `/usr/src/linux-source-VERSION.tar.xz`.
public enum KernelSource: String, Sendable, CaseIterable, Hashable {
    /// Linux 6.12, the default test kernel.
    case v6_12 = "6.12"
    /// Linux 6.1, the second kernel version the conformance and real-kernel suites run on.
    case v6_1 = "6.1"

    /// The tarball Debian's `linux-source-VERSION` package installs.
    public var tarball: String { "/usr/src/linux-source-\(rawValue).tar.xz" }
}

/// Why the test kernel could not be built.
public struct TestKernelError: Error, CustomStringConvertible {
    public var description: String
}

/// Builds a test kernel from Debian's `linux-source-VERSION` with ``KernelConfig/fragment(for:)``,
/// and the project's test module against it, into a cache keyed by the version, the fragment, the
/// module's source and the source tarball, and reuses it while none of them changes.
public struct TestKernelBuilder: Sendable {
    /// Which kernel version.
    public var source: KernelSource
    /// The tarball Debian's `linux-source-VERSION` package installs.
    public var sourceTarball: String
    /// Where built kernels are kept, one folder per key.
    public var cacheDirectory: String
    /// Parallel make jobs.
    public var jobs: Int

    public init(
        source: KernelSource = .v6_12,
        cacheDirectory: String = TestKernelBuilder.defaultCacheDirectory,
        jobs: Int = ProcessInfo.processInfo.activeProcessorCount + 1
    ) {
        self.source = source
        self.sourceTarball = source.tarball
        self.cacheDirectory = cacheDirectory
        self.jobs = jobs
    }

    /// `$KCOV_CACHE_DIR`, else `$XDG_CACHE_HOME/kernel-coverage`, else `~/.cache/kernel-coverage`.
    public static var defaultCacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["KCOV_CACHE_DIR"], !explicit.isEmpty { return explicit }
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() + "/.cache")
        return base + "/kernel-coverage"
    }

    /// The kernel's cache key: the fragment, this recipe's version, and the tarball's size and mtime.
    public func cacheKey() throws -> String {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: sourceTarball) else {
            throw TestKernelError(description:
                "\(sourceTarball) is missing: install Debian's linux-source-\(source.rawValue) (Scripts/setup.sh does)")
        }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return Self.hash("recipe 2\n\(KernelConfig.fragment(for: source))\n\(size) \(Int64(modified))")
    }

    /// The test module's key, within its kernel's folder: its files' names and text.
    public func moduleKey() throws -> String {
        Self.hash(try TestModule.files().map { "\($0.name)\n\($0.text)" }.joined(separator: "\n"))
    }

    /// FNV-1a of `text`, in hex.
    private static func hash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// The folder for this key: `kernel-VERSION-KEY`.
    public func directory() throws -> String {
        cacheDirectory + "/kernel-\(source.rawValue)-" + (try cacheKey())
    }

    /// The cached kernel for the current key with the test module for the current module source,
    /// if both were built completely.
    public func cached() throws -> TestKernel? {
        let folder = try directory()
        let moduleFolder = folder + "/module-" + (try moduleKey())
        guard FileManager.default.fileExists(atPath: folder + "/complete"),
              FileManager.default.fileExists(atPath: moduleFolder + "/" + TestModule.objectName)
        else { return nil }
        return kernel(in: folder, module: moduleFolder)
    }

    private func kernel(in folder: String, module: String) -> TestKernel {
        TestKernel(
            bzImage: folder + "/bzImage", vmlinux: folder + "/vmlinux", buildTree: folder + "/src",
            testModule: module + "/" + TestModule.objectName, source: source)
    }

    /// Returns the cached kernel, building it first if needed. `progress` receives a line now and
    /// then while the build runs (it takes minutes). Concurrent callers wait for one build.
    public func build(progress: @escaping @Sendable (String) -> Void) throws -> TestKernel {
        let folder = try directory()
        // A built kernel is used without the lock, which a build of another version holds for minutes.
        if let kernel = try cached() { return kernel }
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let lock = open(cacheDirectory + "/kernel.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw TestKernelError(description: "cannot create a lock in \(cacheDirectory): errno \(errno)") }
        defer { close(lock) }
        flock(lock, LOCK_EX)
        if let kernel = try cached() { return kernel }
        if FileManager.default.fileExists(atPath: folder + "/complete") {
            // The kernel is current; only the test module's source changed.
            return try buildModule(in: folder, progress: progress)
        }

        let started = Date()
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let log = folder + "/build.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? logHandle.close() }
        let fragment = folder + "/kcov.config"
        try KernelConfig.fragment(for: source).write(toFile: fragment, atomically: true, encoding: .utf8)

        progress("unpacking \(sourceTarball)")
        try run(["tar", "-xf", sourceTarball, "-C", folder], in: folder, log: logHandle, progress: progress)
        let unpacked = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("linux-source") }
        guard let top = unpacked.first else { throw TestKernelError(description: "\(sourceTarball) held no linux-source folder") }
        try FileManager.default.moveItem(atPath: folder + "/" + top, toPath: folder + "/src")
        let tree = folder + "/src"

        progress("configuring: tinyconfig + \(fragment)")
        try run(["make", "ARCH=x86_64", "tinyconfig"], in: tree, log: logHandle, progress: progress)
        try run(["./scripts/kconfig/merge_config.sh", "-m", ".config", fragment], in: tree, log: logHandle, progress: progress)
        try run(["make", "ARCH=x86_64", "olddefconfig"], in: tree, log: logHandle, progress: progress)
        let config = try String(contentsOfFile: tree + "/.config", encoding: .utf8)
        let lines = Set(config.split(separator: "\n").map(String.init))
        let missing = KernelConfig.required(for: source).filter { !lines.contains($0) }
        guard missing.isEmpty else {
            throw TestKernelError(description: "the merged .config lacks \(missing.joined(separator: ", ")); see \(log)")
        }

        progress("compiling with make -j\(jobs) (about 5–7 minutes on 2 cores); log: \(log)")
        // `modules` too: it writes Module.symvers, which an out-of-tree module is linked against.
        try run(["make", "ARCH=x86_64", "-j\(jobs)", "bzImage", "modules"], in: tree, log: logHandle, progress: progress, countCompiles: true)
        try FileManager.default.copyItem(atPath: tree + "/arch/x86/boot/bzImage", toPath: folder + "/bzImage")
        try FileManager.default.copyItem(atPath: tree + "/vmlinux", toPath: folder + "/vmlinux")
        _ = FileManager.default.createFile(atPath: folder + "/complete", contents: Data())
        progress(String(format: "built in %.0f s", Date().timeIntervalSince(started)))
        removeStaleKernels(keeping: folder)
        return try buildModule(in: folder, progress: progress)
    }

    /// Builds the test module against the kernel in `folder` into `module-KEY` (replacing the
    /// modules of other keys): seconds, not the kernel's minutes.
    private func buildModule(in folder: String, progress: @escaping @Sendable (String) -> Void) throws -> TestKernel {
        progress("building the test module against it")
        let module = folder + "/module-" + (try moduleKey())
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where entry.hasPrefix("module") {
            try? FileManager.default.removeItem(atPath: folder + "/" + entry)
        }
        try FileManager.default.createDirectory(atPath: module, withIntermediateDirectories: true)
        for file in try TestModule.files() {
            try file.text.write(toFile: module + "/" + file.name, atomically: true, encoding: .utf8)
        }
        let log = folder + "/module-build.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? logHandle.close() }
        let tree = folder + "/src"
        try run(["make", "ARCH=x86_64", "-C", tree, "M=\(module)", "modules"], in: tree, log: logHandle, progress: progress)
        guard FileManager.default.fileExists(atPath: module + "/" + TestModule.objectName) else {
            throw TestKernelError(description: "the test module's build wrote no \(TestModule.objectName); see \(log)")
        }
        return kernel(in: folder, module: module)
    }

    /// Deletes this version's kernels built for other keys (each keeps a build tree of about
    /// 1.5 GB), and those of the cache's first layout (`kernel-KEY`, no version); other versions'
    /// kernels stay.
    private func removeStaleKernels(keeping folder: String) {
        let current = URL(fileURLWithPath: folder).lastPathComponent
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory)) ?? []
        for entry in entries where entry != current && entry != "kernel.lock" {
            let unversioned = entry.hasPrefix("kernel-") && entry.dropFirst("kernel-".count).allSatisfy(\.isHexDigit)
            if unversioned || entry.hasPrefix("kernel-\(source.rawValue)-") {
                try? FileManager.default.removeItem(atPath: cacheDirectory + "/" + entry)
            }
        }
    }

    /// Runs a build step, appending its output to the log; with `countCompiles`, reports how many
    /// files were compiled every 20 seconds.
    private func run(
        _ arguments: [String], in directory: String, log: FileHandle,
        progress: @escaping @Sendable (String) -> Void, countCompiles: Bool = false
    ) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            throw TestKernelError(description: "cannot run \(arguments[0]): \(error); run Scripts/setup.sh to install the kernel build tools")
        }
        let reader = pipe.fileHandleForReading
        var compiled = 0
        var lastReport = Date()
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            log.write(chunk)
            guard countCompiles else { continue }
            compiled += String(decoding: chunk, as: UTF8.self).split(separator: "\n").count { $0.hasPrefix("  CC ") }
            if Date().timeIntervalSince(lastReport) >= 20 {
                progress("compiling: \(compiled) files so far")
                lastReport = Date()
            }
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestKernelError(description:
                "`\(arguments.joined(separator: " "))` failed with status \(process.terminationStatus); see \(directory)/../build.log")
        }
    }
}
