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

/// What a finished process printed, and its exit status.
struct ToolResult {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs `executable` to the end, reading both pipes as it goes.
func runProcess(_ executable: String, _ arguments: [String]) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let errorData = ErrorCollector()
    let reader = Thread { errorData.finish(errors.fileHandleForReading.readDataToEndOfFile()) }
    reader.start()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolResult(
        status: process.terminationStatus, output: String(decoding: data, as: UTF8.self),
        errors: String(decoding: errorData.wait(), as: UTF8.self))
}

/// Runs a host tool that must succeed; returns its standard output.
func runTool(_ executable: String, _ arguments: [String]) throws -> String {
    let result = try runProcess(executable, arguments)
    try #require(result.status == 0, "\(executable) \(arguments.joined(separator: " ")) failed: \(result.errors)")
    return result.output
}

/// The built `kcovctl`, beside this test bundle.
func kcovctl(_ arguments: [String]) throws -> ToolResult {
    let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    return try runProcess(URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("kcovctl").path, arguments)
}

/// A fresh temporary directory.
func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Standard error read on another thread, handed over once.
private final class ErrorCollector: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    func finish(_ data: Data) {
        self.data = data
        done.signal()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
