internal import CBufferProtection

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a collector keeps the code it traces from silently corrupting its kcov buffer, which is
/// ordinary writable user memory: a fuzzed call that scribbles on it invents "PCs" (syzkaller saw
/// values such as 0x80007000c0008 flood its signal). Whatever still gets through is dropped by
/// signal extraction as implausible, and counted.
public enum BufferProtection: String, Sendable, Hashable, CaseIterable {
    /// An inaccessible guard page on each side of the mapping: a write just before or past the
    /// buffer faults (SIGSEGV) instead of landing in other memory. Real kernels only: a reference
    /// model's buffer is its own memory.
    case guardPages
    /// Guard pages, and the buffer read-only to the enabling thread while coverage is enabled,
    /// through a memory protection key (Linux pkeys(7): `pkey_alloc(2)`, `pkey_mprotect(2)`; x86
    /// PKU and `CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS`). A stray write into the buffer faults
    /// (SIGSEGV, `si_code` SEGV_PKUERR). The collector opens writes only around its own reset (two
    /// writes of the PKRU register, no syscall). The kernel writes through its own mapping and is
    /// not affected. Other threads of the process keep write access.
    case writeProtected
}

/// The memory protection key tagging one kcov buffer (``BufferProtection/writeProtected``).
@usableFromInline struct BufferKey {
    let key: Int32

    /// pkey_alloc(2) a key that the calling thread may still write through.
    ///
    /// - Throws: `.unsupportedOperation` where the CPU or kernel has no protection keys,
    ///   `.busy` when the process has used all its keys.
    static func allocate() throws(CoverageError) -> BufferKey {
        let key = kbp_allocate_key()
        guard key >= 0 else {
            let code = errno
            switch code {
            case ENOSPC:
                throw CoverageError(
                    .busy, "every memory protection key of this process is taken: release other write-protected collectors, or use guard pages",
                    syscall: "pkey_alloc", errno: code)
            case EINVAL, ENOSYS:
                throw CoverageError(
                    .unsupportedOperation,
                    "memory protection keys are unavailable here: the CPU lacks PKU or the kernel was built without CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS; use BufferProtection.guardPages",
                    syscall: "pkey_alloc", errno: code)
            default:
                throw CoverageError(.system, "pkey_alloc failed: \(String(cString: strerror(code)))", syscall: "pkey_alloc", errno: code)
            }
        }
        return BufferKey(key: key)
    }

    /// pkey_mprotect(2): tags the `bytes` at `address` (a whole mapping) with the key.
    func assign(to address: UnsafeMutableRawPointer, bytes: Int) throws(CoverageError) {
        guard kbp_assign_key(address, bytes, key) == 0 else {
            let code = errno
            throw CoverageError(
                .system, "pkey_mprotect of the kcov buffer failed: \(String(cString: strerror(code)))", syscall: "pkey_mprotect", errno: code)
        }
    }

    /// Sets the calling thread's write access to the buffer (PKRU; no syscall). Cannot fail for
    /// a key ``allocate()`` returned.
    @usableFromInline func setWritable(_ writable: Bool) {
        let result = kbp_set_writable(key, writable ? 1 : 0)
        precondition(result == 0, "pkey_set(\(key)) failed for a key pkey_alloc returned: errno \(errno)")
    }

    /// pkey_free(2), after the buffer is unmapped.
    func free() {
        _ = kbp_free_key(key)
    }
}
