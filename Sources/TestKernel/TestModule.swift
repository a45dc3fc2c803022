public import Foundation

/// The project's out-of-tree test module (`TestModule/kcov_test_module.c`, a package resource): a
/// debugfs file, `/sys/kernel/debug/kcov_test_module/branch`, whose write handler takes a different
/// branch for each first byte written. ``TestKernelBuilder`` compiles it against each test kernel
/// with kcov's instrumentation; the guest loads it with `insmod`.
public enum TestModule {
    /// The module's name in `/proc/modules` and `/sys/module/`.
    public static let name = "kcov_test_module"
    /// The built object's file name.
    public static let objectName = name + ".ko"
    /// The debugfs file whose writes take the module's branches.
    public static let branchFile = "/sys/kernel/debug/kcov_test_module/branch"
    /// The files kbuild needs: the C source and its `Kbuild`.
    static let fileNames = ["kcov_test_module.c", "Kbuild"]

    /// The module's files with their text, from the package's resources. Throws if the resource
    /// bundle is missing (a kcovctl copied away from its build folder).
    public static func files() throws -> [(name: String, text: String)] {
        guard let folder = Bundle.module.resourceURL?.appendingPathComponent("TestModule") else {
            throw TestKernelError(description: "the test module's source is not beside this program (no resource bundle): run kcovctl from its build folder")
        }
        return try fileNames.map { name in
            let path = folder.appendingPathComponent(name).path
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw TestKernelError(description: "cannot read the test module's \(name) at \(path): run kcovctl from its build folder")
            }
            return (name, text)
        }
    }
}
