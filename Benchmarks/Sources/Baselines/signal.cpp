#include "Baselines.h"
#include <unordered_set>
#include <vector>

static inline uint32_t hash32(uint32_t a) {
    a = (a ^ 61) ^ (a >> 16);
    a = a + (a << 3);
    a = a ^ (a >> 4);
    a = a * 0x27d4eb2d;
    a = a ^ (a >> 15);
    return a;
}

static inline uint64_t edge(uint64_t pc, uint64_t previous) {
    return pc ^ (hash32((uint32_t)(previous & 0xfff)) & 0xfff);
}

uint64_t kcb_unordered_set_new_signals(const uint64_t *pcs, const size_t *starts, size_t calls, int passes) {
    std::unordered_set<uint64_t> seen;
    uint64_t fresh = 0;
    for (int pass = 0; pass < passes; pass++) {
        for (size_t call = 0; call < calls; call++) {
            uint64_t previous = 0;
            for (size_t i = starts[call]; i < starts[call + 1]; i++) {
                if (seen.insert(edge(pcs[i], previous)).second) fresh++;
                previous = pcs[i];
            }
        }
    }
    return fresh;
}

// syzkaller's executor: a fixed table, probed at 4 slots, the last one overwritten on a miss.
enum { kDedupTableSize = 8 << 10 };

static bool dedup(uint64_t *table, uint64_t sig) {
    for (unsigned i = 0; i < 4; i++) {
        unsigned pos = (unsigned)((sig + i) % kDedupTableSize);
        if (table[pos] == sig) return true;
        if (table[pos] == 0) {
            table[pos] = sig;
            return false;
        }
    }
    table[sig % kDedupTableSize] = sig;
    return false;
}

uint64_t kcb_dedup_table_signals(const uint64_t *pcs, const size_t *starts, size_t calls, int passes) {
    std::vector<uint64_t> table(kDedupTableSize);
    uint64_t through = 0;
    for (int pass = 0; pass < passes; pass++) {
        for (size_t call = 0; call < calls; call++) {
            uint64_t previous = 0;
            for (size_t i = starts[call]; i < starts[call + 1]; i++) {
                if (!dedup(table.data(), edge(pcs[i], previous))) through++;
                previous = pcs[i];
            }
        }
    }
    return through;
}

size_t kcb_unordered_set_merge(const uint64_t *pcs, const size_t *starts, size_t sets) {
    std::unordered_set<uint64_t> merged;
    for (size_t set = 0; set < sets; set++) {
        for (size_t i = starts[set]; i < starts[set + 1]; i++) merged.insert(pcs[i]);
    }
    return merged.size();
}
