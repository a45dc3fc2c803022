#ifndef CBUFFERPROTECTION_H
#define CBUFFERPROTECTION_H

#include <stddef.h>

// Memory protection keys for a coverage buffer (Linux pkeys(7): x86 PKU, kernels built with
// CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS). Each call returns -1 with errno on failure.

/// pkey_alloc(0, 0): a new key, writable for the calling thread.
int kbp_allocate_key(void);

/// pkey_mprotect(address, length, PROT_READ | PROT_WRITE, key): tags the buffer's pages with `key`.
int kbp_assign_key(void *address, size_t length, int key);

/// pkey_free(key).
int kbp_free_key(int key);

/// Sets the calling thread's write access to pages tagged `key` (PKRU, a user-mode register:
/// no syscall). Reads stay allowed either way.
int kbp_set_writable(int key, int writable);

#endif
