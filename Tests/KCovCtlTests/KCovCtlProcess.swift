import Foundation

/// Runs the built `kcovctl` (next to this test binary) and captures what it printed.
struct KCovCtlProcess {
    var status: Int32
    var standardOutput: String
    var standardError: String

    /// `.build/<config>/kcovctl`, beside the test bundle.
    static var executable: String {
        get throws {
            let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            return URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("kcovctl").path
        }
    }

    static func run(_ arguments: [String]) throws -> KCovCtlProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        let errorData = Box()
        let reader = Thread { errorData.data = error.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errorData.data == nil { usleep(1000) }
        return KCovCtlProcess(
            status: process.terminationStatus, standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorData.data!, as: UTF8.self))
    }

    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Data?
        var data: Data? {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }
}

/// Lines of rawcover output that are not one `0x%016x` PC.
func malformedRawcoverLines(_ text: String) -> [Substring] {
    text.split(separator: "\n").filter { line in
        line.count != 18 || !line.hasPrefix("0x") || !line.dropFirst(2).allSatisfy(\.isHexDigit) || line.contains(where: \.isUppercase)
    }
}
