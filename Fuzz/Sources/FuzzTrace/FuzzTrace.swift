// libFuzzer harness: one input is one trace file's bytes (rawcover or trace JSON).
// A thrown TraceFileError is the right answer to bad input; a trap, a hang or running out of
// memory is a finding. What decodes must survive the writer: decode(jsonData(t)) == t.
import Foundation
import TraceFile

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTrace(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let file: TraceFile
    do {
        file = try TraceFile.decode(bytes: bytes, source: "fuzz")
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
        return 0
    }
    _ = (file.entryCount, file.uniquePCCount, file.pcs.count, file.functions.count, file.mergedTrace)
    // Written back (the trace's own format), it reads as the same trace.
    let written: Data
    do {
        written = try file.jsonData()
    } catch {
        return 0  // the writer refusing a value (a typed error) is not a crash
    }
    let again: TraceFile
    do {
        again = try TraceFile.decode(written, source: "fuzz (written back)")
    } catch {
        preconditionFailure("kcovctl cannot read the trace it wrote: \(error)\n\(String(decoding: written, as: UTF8.self))")
    }
    precondition(again == file, "the written trace reads back different:\n\(String(decoding: written, as: UTF8.self))")
    return 0
}
