// libFuzzer harness: one input is a whole ELF file (a stand-in for a vmlinux), opened through the
// /proc/self/fd path of an unlinked file in /dev/shm, as `--vmlinux` would be. A thrown KernelImageError is the right answer
// to bad input; a trap, a hang (quadratic scans included) or running out of memory is a finding.
// What opens must give sorted functions, a lookup that agrees with them, and a coverable-PC scan.
import Glibc
import KernelImage

let imageFD: Int32 = {
    // memfd_create is not in Swift's Glibc module: an unlinked tmpfs file is the same thing.
    let path = "/dev/shm/kcov-fuzz-vmlinux-\(getpid())"
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
    unlink(path)
    return fd
}()

func store(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    precondition(ftruncate(imageFD, 0) == 0 && lseek(imageFD, 0, SEEK_SET) == 0)
    var written = 0
    while written < size {
        let result = write(imageFD, data! + written, size - written)
        precondition(result > 0, "write to the image file failed: \(String(cString: strerror(errno)))")
        written += result
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKernelImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    store(data, size)
    let image: KernelImage
    do {
        image = try KernelImage(path: "/proc/self/fd/\(imageFD)")
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
        return 0
    }
    let functions = image.functions
    for index in functions.indices.dropFirst() {
        precondition(functions[index - 1].address <= functions[index].address, "functions not sorted by address")
    }
    for function in functions.prefix(256) {
        precondition(image.function(containing: function.address) != nil, "a function's own address is in no function")
        precondition(image.address(of: function.name) != nil, "a function's name has no address")
        _ = image.function(containing: function.address &+ function.size)
        _ = image.function(containing: function.address &- 1)
    }
    _ = image.function(containing: 0)
    _ = image.function(containing: .max)
    for section in image.executableSections {
        _ = image.followsIndirectCall(section.address)
        _ = image.followsIndirectCall(section.address &+ UInt64(section.bytes.count))
    }
    let coverable: CoverablePCs
    do {
        coverable = try image.coverablePCs()
    } catch {
        return 0
    }
    for sites in [coverable.pc, coverable.comparisons] {
        for pc in sites.all.prefix(1024) {
            precondition(sites.contains(pc), "a coverable PC is not contained in its own sites")
            _ = image.followsIndirectCall(pc)
        }
        precondition(zip(sites.all, sites.all.dropFirst()).allSatisfy { $0 < $1 }, "sites not sorted and unique")
    }
    return 0
}
