#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// Helpers every model's tests use: read errno the C way, and look at a buffer as a client does.

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
