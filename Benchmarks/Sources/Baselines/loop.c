#include "Baselines.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define KCOV_INIT_TRACE _IOR('c', 1, unsigned long)
#define KCOV_ENABLE _IO('c', 100)
#define KCOV_DISABLE _IO('c', 101)

int kcb_kcov_loop(unsigned long words, int rounds, uint64_t *ticks, uint64_t *pcs_seen) {
    int fd = open("/sys/kernel/debug/kcov", O_RDWR);
    if (fd < 0) return errno;
    int error = 0;
    unsigned long *cover = MAP_FAILED;
    unsigned long *copy = malloc(words * sizeof(unsigned long));
    if (!copy) { error = ENOMEM; goto out; }
    if (ioctl(fd, KCOV_INIT_TRACE, words)) { error = errno; goto out; }
    cover = mmap(NULL, words * sizeof(unsigned long), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (cover == MAP_FAILED) { error = errno; goto out; }
    if (ioctl(fd, KCOV_ENABLE, 0)) { error = errno; goto out; }
    uint64_t seen = 0;
    for (int round = 0; round < rounds; round++) {
        uint64_t start = kcb_rdtsc();
        __atomic_store_n(&cover[0], 0, __ATOMIC_RELAXED);
        read(-1, NULL, 0);
        unsigned long n = __atomic_load_n(&cover[0], __ATOMIC_RELAXED);
        if (n > words - 1) n = words - 1;
        for (unsigned long i = 0; i < n; i++) copy[i] = __atomic_load_n(&cover[i + 1], __ATOMIC_RELAXED);
        ticks[round] = kcb_rdtsc() - start;
        seen += n;
    }
    *pcs_seen = seen;
    ioctl(fd, KCOV_DISABLE, 0);
out:
    if (cover != MAP_FAILED) munmap(cover, words * sizeof(unsigned long));
    free(copy);
    close(fd);
    return error;
}
