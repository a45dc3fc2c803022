import CoverageAPI
import Glibc
import LinuxBackend

// Collects the kernel coverage of one read(-1, NULL, 0) through the public API.
do {
    var session = try CoverageCollector(backend: LinuxKcovBackend(), mode: .pc, bufferWords: 1 << 16)
    let trace = try session.collect { _ = read(-1, nil, 0) }
    print("read(-1) covered \(trace.pcs.count) kernel PCs (\(Set(trace.pcs).count) unique)\(trace.truncated ? ", truncated" : "")")
    for pc in trace.pcs.prefix(5) { print("  0x" + String(pc, radix: 16)) }
} catch let error as CoverageError {
    print("trace-one-syscall: \(error)")
    exit(error.meansUnavailable ? 2 : 1)
}
