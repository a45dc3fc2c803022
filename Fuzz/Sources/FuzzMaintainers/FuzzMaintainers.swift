// libFuzzer harness: one input is a MAINTAINERS file. The first byte picks which paths count as
// directories; the rest is the text. A thrown CoverageInputError is the right answer to bad input;
// a trap, a hang or running out of memory is a finding. Lookups of paths taken from the input
// itself (every line, and the F:/X: values) must not fail either.
import CoverageReport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMaintainers(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = UnsafeBufferPointer(start: data, count: size)
    guard let first = buffer.first else { return 0 }
    let text = String(decoding: buffer.dropFirst(), as: UTF8.self)
    let directories = first
    let maintainers: Maintainers
    do {
        maintainers = try Maintainers(text: text, source: "fuzz") { path in
            directories & 1 == 1 ? !path.contains(".") : (directories & 2 == 2 && path.hasSuffix("s"))
        }
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
        return 0
    }
    precondition(!maintainers.sections.isEmpty, "a parsed MAINTAINERS without sections")
    var paths = ["", "/", "drivers/net/ethernet/intel/e1000/e1000_main.c", "kernel/sched/core.c", "include/linux/kcov.h", "a", "a/b/c"]
    for line in text.split(separator: "\n").prefix(64) {
        paths.append(String(line))
        if line.count > 3 { paths.append(String(line.dropFirst(3))) }
    }
    for path in paths {
        for name in maintainers.subsystems(of: path) {
            precondition(maintainers.sections.contains { $0.name == name }, "subsystems(of:) named a section the file does not have")
        }
    }
    return 0
}
