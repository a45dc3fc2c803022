#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

// What the FreeBSD and OpenBSD models share: the shared buffer and its mappings, real threads
// whose exit the model sees, and the C conventions of a syscall's result.

/// A kcov buffer of `entries` 64-bit words: page-aligned, zero-filled memory of the page-rounded
/// size, bound once to `Atomic<UInt64>` (the model stores with relaxed atomics, clients load
/// them). Reference counted: the descriptor holds one reference and every user mapping one more,
/// so memory a mapping points at is never given back while mapped.
final class BSDKcovBuffer {
    /// Counts the buffers of one model that are not freed yet.
    final class Ledger {
        var live = 0
    }

    let base: UnsafeMutableRawPointer
    private let ledger: Ledger
    let entries: Int
    /// `roundup(entries * 8, PAGE_SIZE)`.
    let bytes: Int
    var references = 1
    private(set) var isFreed = false
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>

    /// `nil` when the memory cannot be had (the kernel's ENOMEM).
    init?(entries: Int, pageSize: Int, ledger: Ledger) {
        let (raw, overflow) = entries.multipliedReportingOverflow(by: 8)
        guard !overflow, raw <= Int.max - pageSize else { return nil }
        let bytes = (raw + pageSize - 1) / pageSize * pageSize
        guard let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              address != MAP_FAILED
        else { return nil }
        base = address
        self.entries = entries
        self.bytes = bytes
        slots = address.bindMemory(to: Atomic<UInt64>.self, capacity: bytes / 8)
        self.ledger = ledger
        ledger.live += 1
    }

    /// Words of memory behind the buffer (the page-rounded size).
    var words: Int { bytes / 8 }

    subscript(index: Int) -> UInt64 {
        get { slots[index].load(ordering: .relaxed) }
        set { slots[index].store(newValue, ordering: .relaxed) }
    }

    /// A compare-and-swap of the count word, as `atomic_cmpset_64` and `atomic_cas_ulong` do.
    func exchangeCount(expected: UInt64, desired: UInt64) -> Bool {
        slots[0].compareExchange(expected: expected, desired: desired, ordering: .relaxed).exchanged
    }

    /// Writes `value` at a kernel-computed index if it lies inside the memory; returns false for an
    /// index outside it, which the model counts instead of writing.
    func store(_ value: UInt64, at index: UInt64) -> Bool {
        guard index < UInt64(words) else { return false }
        self[Int(index)] = value
        return true
    }

    /// Drops one reference; the last frees the memory. Returns whether it did.
    @discardableResult
    func release() -> Bool {
        precondition(!isFreed && references > 0, "kcov buffer released after it was freed")
        references -= 1
        guard references == 0 else { return false }
        isFreed = true
        ledger.live -= 1
        _ = munmap(base, bytes)
        return true
    }

    /// Frees the memory whatever the count (the model itself is going away).
    func tearDown() {
        guard !isFreed else { return }
        isFreed = true
        references = 0
        _ = munmap(base, bytes)
    }
}

/// User mappings by start address and page-rounded length; each holds one buffer reference.
struct BSDKcovMappings {
    struct Key: Hashable {
        let address: UInt
        let bytes: Int
    }
    private(set) var entries: [Key: (buffer: BSDKcovBuffer, count: Int)] = [:]

    var count: Int { entries.values.reduce(0) { $0 + $1.count } }

    mutating func add(_ buffer: BSDKcovBuffer, at address: UnsafeMutableRawPointer, bytes: Int) {
        buffer.references += 1
        let key = Key(address: UInt(bitPattern: address), bytes: bytes)
        entries[key, default: (buffer, 0)].count += 1
    }

    /// Removes one mapping of exactly `address` and page-rounded `bytes`; EINVAL (the model cannot
    /// unmap part of a buffer) when there is none.
    mutating func remove(_ address: UInt, bytes: Int) -> CInt {
        let key = Key(address: address, bytes: bytes)
        guard var mapping = entries[key] else { return EINVAL }
        mapping.count -= 1
        entries[key] = mapping.count == 0 ? nil : mapping
        mapping.buffer.release()
        return 0
    }

    /// Every mapping goes (the address space of an exiting process).
    mutating func removeAll() {
        for (_, mapping) in entries {
            for _ in 0..<mapping.count { mapping.buffer.release() }
        }
        entries = [:]
    }

    var buffers: [BSDKcovBuffer] { entries.values.map(\.buffer) }
}

/// A real thread as a new thread of the simulated process: `exited(tid)` runs on it after `body`
/// (the kernel's thread-exit path), `reaped(token)` after the join with what `exited` returned
/// (the kernel's reap path).
func startModelThread(
    _ body: @escaping @Sendable () -> Void, exited: @escaping @Sendable (CInt) -> Int,
    reaped: @escaping @Sendable (Int) -> Void
) -> @Sendable () -> Void {
    let token = Atomic<Int>(0)
    let thread = POSIXThread {
        let tid = SystemKernel().currentThreadID()
        body()
        token.store(exited(tid), ordering: .releasing)
    }
    return {
        thread.join()
        reaped(token.load(ordering: .acquiring))
    }
}

/// Runs `body` on a thread `start` starts (a model's `startThread`, whose exit path runs when
/// `body` returns), joins it and returns `body`'s result.
func runOnModelThread<T: Sendable>(
    _ start: (@escaping @Sendable () -> Void) -> @Sendable () -> Void, _ body: @escaping @Sendable () -> T
) -> T {
    let result = Mutex<T?>(nil)
    start { let value = body(); result.withLock { $0 = value } }()
    return result.withLock { $0! }
}

/// C convention for a kernel result: 0 or more is returned, `-errno` becomes -1 and errno.
func finishSyscall(_ result: CInt) -> CInt {
    guard result < 0 else { return result }
    errno = -result
    return -1
}

/// Rounds `length` bytes at page offset `pageOffset` up to whole pages; nil when it overflows.
func pageRounded(_ length: Int, pageOffset: Int = 0, pageSize: Int) -> Int? {
    guard length > 0, length <= Int.max - pageOffset - pageSize else { return nil }
    return (length + pageOffset + pageSize - 1) / pageSize * pageSize
}

/// A simulated kernel that records kernel paths for the thread running them.
protocol KernelPathRecorder: AnyObject {
    /// The hooks of `path` run on thread `tid`: recorded only where that thread traces.
    func record(_ path: KcovKernelPath, for tid: CInt)
}

/// A whole simulated kernel behind one lock, and the syscalls every BSD model makes the same way:
/// each runs its kernel work under the lock for the calling thread and leaves errno alone, so
/// only a failure's own errno is ever seen.
final class LockedKernel<Kernel: KernelPathRecorder>: @unchecked Sendable {
    private let state: Mutex<Kernel>

    init(_ kernel: sending Kernel) { state = Mutex(kernel) }

    /// Harness work under the lock, with no syscall semantics.
    func withKernel<T: Sendable>(_ body: (Kernel) -> T) -> T {
        state.withLock { body($0) }
    }

    /// One syscall's kernel work for the calling thread.
    func syscall<T: Sendable>(_ body: (Kernel, CInt) -> T) -> T {
        let saved = errno
        let tid = SystemKernel().currentThreadID()
        let result = state.withLock { body($0, tid) }
        errno = saved
        return result
    }

    /// A syscall that only runs `path` (gettid, the probe, a chosen path).
    func run(_ path: KcovKernelPath) {
        syscall { kernel, tid in kernel.record(path, for: tid) }
    }

    /// gettid(2), running `path`.
    func currentThreadID(running path: KcovKernelPath) -> CInt {
        syscall { kernel, tid in
            kernel.record(path, for: tid)
            return tid
        }
    }

    /// An mmap(2) whose kernel work `body` does: the address, or nil with its errno.
    func mmap(running path: KcovKernelPath, _ body: (Kernel) -> Result<UnsafeMutableRawPointer, Errno>) -> UnsafeMutableRawPointer? {
        let result: Result<UInt, Errno> = syscall { kernel, tid in
            kernel.record(path, for: tid)
            return body(kernel).map { UInt(bitPattern: $0) }
        }
        switch result {
        case .success(let address): return UnsafeMutableRawPointer(bitPattern: address)
        case .failure(let error):
            errno = error.code
            return nil
        }
    }
}
