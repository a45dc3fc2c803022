// libFuzzer harness: one input is a whole file, read the three ways `--kernel`'s preflight reads
// files (Docs/guest-kernels.md): as a bzImage's boot header (BootImage), as a vmlinux (Vmlinux:
// libelf, the build id, linux_banner, an embedded configuration), and as a .config's text. It is
// opened through the /proc/self/fd path of an unlinked file in /dev/shm, as `--kernel` would be.
// A thrown PreflightError is the right answer to bad input; a trap, a hang or running out of
// memory is a finding. The payload is not decompressed here (that runs a system tool per input).
import Glibc
@testable import KernelPreflight
import KprobeBackend
import LinuxBackend

/// What the two Linux backends need of a guest kernel, from their capabilities.
private let kcov = GuestRequirements(backend: "linux", capabilities: LinuxKcovBackend().capabilities)
private let kprobe = GuestRequirements(backend: "kprobe", capabilities: KprobeBackend().capabilities)

let inputFD: Int32 = {
    let path = "/dev/shm/kcov-fuzz-preflight-\(getpid())"
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
    unlink(path)
    return fd
}()

func store(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    precondition(ftruncate(inputFD, 0) == 0 && lseek(inputFD, 0, SEEK_SET) == 0)
    var written = 0
    while written < size {
        let result = write(inputFD, data! + written, size - written)
        precondition(result > 0, "write to the input file failed: \(String(cString: strerror(errno)))")
        written += result
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKernelPreflight(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    store(data, size)
    let path = "/proc/self/fd/\(inputFD)"
    do {
        let image = try BootImage(path: path)
        precondition(image.payload.lowerBound >= 0 && image.payload.upperBound <= size, "a payload outside the file")
        precondition(image.payload.count >= 8, "a payload too short for a magic and a size")
        precondition(image.kernelVersion.map { !$0.isEmpty && !$0.contains("\0") } ?? true, "a version string with a NUL")
        _ = image.protocolText
        if let version = image.kernelVersion {
            _ = Preflight.bannerMatches("Linux version \(version)", headerVersion: version)
        }
    } catch {
        precondition(!error.message.isEmpty, "an empty error message")
    }
    do {
        let vmlinux = try Vmlinux(path: path)
        precondition(vmlinux.banner.hasPrefix("Linux version "), "a vmlinux accepted without a banner")
        if let configuration = vmlinux.configuration {
            _ = kcov.missing(in: configuration)
        }
    } catch {
        precondition(!error.message.isEmpty, "an empty error message")
    }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let configuration = try KernelConfiguration(text: text, source: "input")
        for missing in kprobe.missing(in: configuration) {
            precondition(configuration.setting(missing.requirement.option) != .builtIn, "a built-in option named missing")
        }
    } catch {
        precondition(error.code == .notConfiguration, "a .config refused for another reason: \(error)")
    }
    return 0
}
