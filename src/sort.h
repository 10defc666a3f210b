/*
 * sort.h - a stable radix sort of (key, value) pairs.
 *
 * rerank sorts a million candidate pairs three times (by query and document
 * when the run is read, by document to fetch each document once, by query and
 * score to write the run); qsort with a comparison function spent more time
 * there than the device spent scoring. Keys of 64 bits, sorted a byte a pass
 * from the lowest; the bytes that every key shares are skipped, so row
 * numbers below 65,536 cost two passes.
 */
#ifndef MS_SORT_H
#define MS_SORT_H

#include <stdint.h>

struct ms_kv {
    uint64_t key, val;
};

/* Sort items[0, n) by key, keeping the order of equal keys; tmp has room for n items. Returns
 * where the sorted items are: items or tmp. */
struct ms_kv *ms_kv_sort(struct ms_kv *items, struct ms_kv *tmp, uint64_t n);

/* A float's key in descending order (highest first): -0 and +0 are one key, as they compare
 * equal; NaN sorts last. */
uint32_t ms_float_key_desc(float x);

#endif
