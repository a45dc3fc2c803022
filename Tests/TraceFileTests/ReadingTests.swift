import CoverageAPI
import Foundation
import Testing
@testable import TraceFile

#if canImport(Glibc)
import Glibc
#endif

/// Standard input is swapped while these run: one at a time.
@Suite("Reading files and standard input", .serialized)
final class ReadingTests {
    let directory = NSTemporaryDirectory() + "trace-file-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init() throws { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: directory) }

    @Test("A file is read whole; errors name its path")
    func readsFiles() throws {
        let file = TraceFile(backend: "linux", trace: Trace(unit: .pc, mode: .pc, pcs: (0..<100_000).map { 0xffff_ffff_8100_0000 + $0 }))
        let path = directory + "/run.json"
        try file.jsonData().write(to: URL(fileURLWithPath: path))
        #expect(try TraceFile.read(path: path) == file)
        #expect {
            try TraceFile.read(path: directory + "/absent.json")
        } throws: { error in
            (error as? TraceFileError)?.description == "\(directory)/absent.json: cannot read the trace file: No such file or directory"
        }
        #expect {
            try TraceFile.read(path: directory)
        } throws: { error in
            (error as? TraceFileError)?.description == "\(directory): cannot read the trace file: Is a directory"
        }
        try Data("{\"mode\": 1}".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try TraceFile.read(path: path)
        } throws: { error in
            (error as? TraceFileError)?.description == "\(path): mode: expected one of pc, cmp, found 1"
        }
    }

    /// Runs `body` with descriptor 0 replaced by `replacement`, then puts the old one back.
    @discardableResult
    func withStandardInput<T>(_ replacement: Int32, _ body: () throws -> T) rethrows -> T {
        let saved = dup(0)
        dup2(replacement, 0)
        close(replacement)
        defer {
            dup2(saved, 0)
            close(saved)
        }
        return try body()
    }

    @Test("`-` reads standard input with read(2), named `standard input` in errors")
    func readsStandardInput() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let text = "0x10\n0x20\n"
        let written = text.withCString { write(ends[1], $0, strlen($0)) }
        #expect(written == text.utf8.count)
        close(ends[1])
        let file = try withStandardInput(ends[0]) { try TraceFile.read(path: "-") }
        #expect(file.pcs == [0x10, 0x20])
        // Standard input open for writing only: read(2) fails, and that is an error, not a trap.
        let writeOnly = open("/dev/null", O_WRONLY)
        #expect(writeOnly >= 0)
        withStandardInput(writeOnly) {
            #expect {
                try TraceFile.read(path: "-")
            } throws: { error in
                (error as? TraceFileError)?.description == "standard input: cannot read the trace file: Bad file descriptor"
            }
        }
    }
}
