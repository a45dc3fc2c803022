#define _GNU_SOURCE
#include "CBufferProtection.h"

#include <sys/mman.h>

int kbp_allocate_key(void) {
    return pkey_alloc(0, 0);
}

int kbp_assign_key(void *address, size_t length, int key) {
    return pkey_mprotect(address, length, PROT_READ | PROT_WRITE, key);
}

int kbp_free_key(int key) {
    return pkey_free(key);
}

int kbp_set_writable(int key, int writable) {
    return pkey_set(key, writable ? 0 : PKEY_DISABLE_WRITE);
}
