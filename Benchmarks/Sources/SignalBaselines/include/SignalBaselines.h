// The baselines the signal benchmark measures CoverageSignal against, in C and C++, run over the
// same calls in the same process: edge signal (syzkaller's formula) plus a new-signal check.
#ifndef SIGNAL_BASELINES_H
#define SIGNAL_BASELINES_H
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

#ifdef __cplusplus
}
#endif
#endif
