// libFuzzer harness: one input is one signal set file's bytes (KCOVSET1).
// A thrown SignalSetError is the right answer to bad input; a trap, a hang or running out of memory
// is a finding. What decodes must encode to bytes that decode to the same set file.
import CoverageSignal

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSignalSet(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = SignalSetFile.isSetFile(bytes)
    let file: SignalSetFile
    do {
        file = try SignalSetFile.decode(bytes, source: "fuzz")
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
        return 0
    }
    let encoded = file.encoded()
    do {
        let again = try SignalSetFile.decode(encoded, source: "fuzz (encoded)")
        precondition(again == file, "the encoded set file decodes different")
    } catch {
        preconditionFailure("cannot decode the set file it encoded: \(error)")
    }
    return 0
}
