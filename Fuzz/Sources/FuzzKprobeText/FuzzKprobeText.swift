// libFuzzer harness: the text files the kprobe backend reads, through a whole KprobeSession on the
// kprobe PMU model. One input is six parts separated by NUL bytes: /proc/kallsyms, the kprobe
// blacklist, the PMU type file, perf_event_paranoid, a function list file (--functions-from), and
// the functions named on the command line (one a line). A missing part leaves the model's own
// file. A thrown CoverageError is the right answer to bad input; a trap, a hang or running out of
// memory is a finding; so is a probe left open after close().
import CoverageAPI
@testable import KernelSeam
@testable import KprobeBackend
@testable import ReferenceModels

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKprobeText(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let parts = UnsafeBufferPointer(start: data, count: size).split(separator: 0, maxSplits: 5, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    let model = KprobePMUModel()
    let paths = [KernelSymbols.kallsymsPath, KernelSymbols.blacklistPath, KprobePaths.pmuType, KprobePaths.paranoid, "/fuzz/functions"]
    for (path, text) in zip(paths, parts) { model.setFile(path, text) }
    let names = parts.count > 5 ? parts[5].split(separator: "\n").prefix(16).map(String.init) : ["vfs_*", "ksys_read"]
    let selection = FunctionSelection(patterns: names, files: parts.count > 4 ? ["/fuzz/functions"] : [])
    do {
        let session = try KprobeSession(backend: KprobeBackend(kernel: model), selection: selection)
        try session.enable()
        model.probeSyscall()
        try session.disable()
        _ = try session.read()
        session.close()
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
    }
    precondition(model.liveProbes == 0, "\(model.liveProbes) probes left open")
    return 0
}
