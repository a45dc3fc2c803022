// The baselines the benchmarks measure the package against, in C and C++, in the same process:
// the signal path (edge signal plus a new-signal check) and the per-syscall kcov loop.
#ifndef BASELINES_H
#define BASELINES_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

// Edge signals of each call (PCs `pcs[starts[i]] ..< pcs[starts[i+1]]`), checked against one
// std::unordered_set<uint64_t> of every signal seen so far, `passes` times over all calls.
// Returns how many signals were new.
uint64_t kcb_unordered_set_new_signals(const uint64_t *pcs, const size_t *starts, size_t calls, int passes);

// The same, deduplicated per call with syzkaller executor's lossy 8192-entry, 4-probe table
// instead of a set (a signal evicted from the table is reported again). Returns the signals it
// let through.
uint64_t kcb_dedup_table_signals(const uint64_t *pcs, const size_t *starts, size_t calls, int passes);

// The time-stamp counter: a clock that makes no syscall (the test kernel's clocksource is
// refined-jiffies, whose clock_gettime is a real syscall and would land in the trace).
static inline uint64_t kcb_rdtsc(void) {
    uint32_t low, high;
    __asm__ volatile("rdtsc" : "=a"(low), "=d"(high));
    return ((uint64_t)high << 32) | low;
}

// The union of `sets` sets of PCs (set i is `pcs[starts[i]] ..< pcs[starts[i+1]]`) in one
// std::unordered_set<uint64_t>; returns its size.
size_t kcb_unordered_set_merge(const uint64_t *pcs, const size_t *starts, size_t sets);

// Heap allocations the benchmark process has made so far (malloc, calloc, realloc and the aligned
// allocators are counted on their way to glibc's).
uint64_t kcb_allocation_count(void);

// The kcov documentation's loop in C, on its own kcov instance of `words` words: per round, store
// 0 to the count, read(-1, NULL, 0), load the count and copy the PCs out. Runs `rounds` rounds and
// writes each round's time-stamp-counter ticks to `ticks`. Returns 0, or the errno of the failing
// setup call (open, KCOV_INIT_TRACE, mmap, KCOV_ENABLE); everything is released before returning.
int kcb_kcov_loop(unsigned long words, int rounds, uint64_t *ticks, uint64_t *pcs_seen);

#ifdef __cplusplus
}
#endif
#endif
