#if canImport(Glibc)
import Glibc
#endif
import KernelSeam
import ReferenceModels
import Synchronization

// Helpers every model's tests use: read errno the C way, look at a buffer as a client does, check
// that a model holds nothing, and drive the Linux ABI the Linux and gVisor models share.

/// 0 for a successful call, the errno for a failed one (read at once).
func errnoOf(_ result: CInt) -> CInt { result < 0 ? errno : 0 }

/// A buffer mapping read and written with relaxed atomics, like a client does.
struct Words: @unchecked Sendable {
    let base: UnsafeMutablePointer<Atomic<UInt64>>
    init(_ address: UnsafeMutableRawPointer) { base = address.assumingMemoryBound(to: Atomic<UInt64>.self) }
    init(bitPattern: UInt) { self.init(UnsafeMutableRawPointer(bitPattern: bitPattern)!) }
    subscript(index: Int) -> UInt64 {
        get { base[index].load(ordering: .relaxed) }
        nonmutating set { base[index].store(newValue, ordering: .relaxed) }
    }
    var count: UInt64 {
        get { self[0] }
        nonmutating set { self[0] = newValue }
    }
    func slice(_ range: Range<Int>) -> [UInt64] { range.map { self[$0] } }
    /// The PCs after the count word.
    func pcs() -> [UInt64] { slice(1..<(1 + Int(count))) }
    /// The comparison records' words after the count word.
    func records() -> [UInt64] { slice(1..<(1 + 4 * Int(count))) }
    var raw: UnsafeMutableRawPointer { UnsafeMutableRawPointer(base) }
    var address: UInt { UInt(bitPattern: base) }
}

/// A reference model whose leftovers the tests check: descriptors, mappings and buffers.
protocol AuditedModel: KernelInterface {
    var openDescriptorCount: Int { get }
    var liveMappingCount: Int { get }
    var liveBufferCount: Int { get }
    /// Nothing left open, mapped or allocated (a model may add what else it must have freed).
    var isClean: Bool { get }
}

extension LinuxKcovModel: AuditedModel {}
extension GVisorKcovModel: AuditedModel {}
extension NetBSDKcovModel: AuditedModel {}

extension AuditedModel {
    var isClean: Bool { openDescriptorCount == 0 && liveMappingCount == 0 && liveBufferCount == 0 }

    /// The calling thread's kernel thread id.
    var tid: CInt { SystemKernel().currentThreadID() }

    /// mmap of `fd`, shared and read-write unless told otherwise.
    func map(
        _ fd: CInt, bytes: Int, protection: CInt = PROT_READ | PROT_WRITE, flags: CInt = MAP_SHARED, offset: Int = 0
    ) -> UnsafeMutableRawPointer? {
        mmap(length: bytes, protection: protection, flags: flags, fd: fd, offset: offset)
    }
}

/// Linux's kcov file, which the Linux and gVisor models both answer.
let linuxKcovDevice = "/sys/kernel/debug/kcov"

/// The Linux and gVisor models: Linux's kcov file and ioctl numbers (each answers them its own way).
protocol LinuxABIModel: AuditedModel {
    /// The lowest fd the model hands out.
    static var firstDescriptor: CInt { get }
}

extension LinuxKcovModel: LinuxABIModel {
    static var firstDescriptor: CInt { 1000 }
}

extension GVisorKcovModel: LinuxABIModel {
    static var firstDescriptor: CInt { 3000 }
}

extension LinuxABIModel {
    /// Opens the kcov file; a failure stops the test.
    func openDevice(flags: CInt = O_RDWR) -> CInt {
        let fd = open(linuxKcovDevice, flags: flags)
        precondition(fd >= Self.firstDescriptor, "open failed: \(errno)")
        return fd
    }

    /// KCOV_INIT_TRACE: 0 or the errno.
    func initTrace(_ fd: CInt, _ words: UInt) -> CInt {
        errnoOf(ioctl(fd, LinuxKcovModel.Request.initTrace, value: words))
    }

    /// KCOV_ENABLE: 0 or the errno.
    func enable(_ fd: CInt, _ mode: UInt = 0) -> CInt {
        errnoOf(ioctl(fd, LinuxKcovModel.Request.enable, value: mode))
    }

    /// KCOV_DISABLE: 0 or the errno.
    func disable(_ fd: CInt, _ argument: UInt = 0) -> CInt {
        errnoOf(ioctl(fd, LinuxKcovModel.Request.disable, value: argument))
    }

    /// An open fd after INIT_TRACE(`words`).
    func initialized(words: Int, flags: CInt = O_RDWR) -> CInt {
        let fd = openDevice(flags: flags)
        precondition(initTrace(fd, UInt(words)) == 0)
        return fd
    }

    /// An open fd with a mapped buffer of `words` words (by default one 4096-byte page).
    func mapped(words: Int = 512) -> (fd: CInt, buffer: Words) {
        let fd = initialized(words: words)
        let address = map(fd, bytes: words * 8)!
        return (fd, Words(address))
    }
}
