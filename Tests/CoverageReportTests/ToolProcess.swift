import Foundation
import TestKernel
import Testing

/// The test kernel's vmlinux; a missing kernel is a failure that says how to build it.
func testKernelImage() throws -> String {
    guard let kernel = try TestKernelBuilder().cached() else {
        Issue.record("the test kernel is not built: run `kcovctl vm build` (Scripts/test.sh does)")
        throw CancellationError()
    }
    return kernel.vmlinux
}

/// A fresh temporary directory.
func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
