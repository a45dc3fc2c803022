#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam

// What the BSD models' generic ioctl layers share: how the caller passed the third argument, and
// the `copyin(9)` of an `IOC_IN` request's bytes from it.

/// How the caller passed the third ioctl argument.
enum ModelIoctlArgument {
    case value(UInt)
    case pointer(UnsafeMutableRawPointer)
}

/// Bytes copied in by the generic ioctl layer, read as the driver reads its argument.
struct ModelIoctlData {
    let bytes: [UInt8]

    func uint64(at offset: Int) -> UInt64 {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
    }

    func int32(at offset: Int) -> Int32 {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
    }
}

/// `copyin(9)` of `count` bytes: a pointer argument is the caller's memory (the seam's contract);
/// a value argument is an address too, checked by letting the host kernel copy it through a
/// pipe, so an unmapped or kernel address is EFAULT instead of a crash.
func copyIn(_ argument: ModelIoctlArgument, count: Int) -> Result<[UInt8], Errno> {
    switch argument {
    case .pointer(let pointer):
        return .success(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
    case .value(let address):
        guard let source = UnsafeRawPointer(bitPattern: address) else { return .failure(Errno(EFAULT)) }
        var ends: [CInt] = [-1, -1]
        guard pipe(&ends) == 0 else { return .failure(Errno(errno)) }
        defer {
            _ = Glibc.close(ends[0])
            _ = Glibc.close(ends[1])
        }
        guard write(ends[1], source, count) == count else { return .failure(Errno(EFAULT)) }
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { read(ends[0], $0.baseAddress, count) }
        guard got == count else { return .failure(Errno(EFAULT)) }
        return .success(bytes)
    }
}
