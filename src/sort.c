/*
 * sort.c - stable LSD radix sort of (key, value) pairs (sort.h).
 *
 * One pass over the keys counts all eight bytes at once; a byte whose count
 * puts every key in one bucket is skipped, the others are each one stable
 * scatter from one array into the other.
 */
#include "sort.h"

#include <string.h>

struct ms_kv *ms_kv_sort(struct ms_kv *items, struct ms_kv *tmp, uint64_t n)
{
    static const int bytes = 8;
    uint64_t count[8][256];
    struct ms_kv *src = items, *dst = tmp;

    memset(count, 0, sizeof count);
    for (uint64_t i = 0; i < n; i++)
        for (int b = 0; b < bytes; b++)
            count[b][(items[i].key >> (8 * b)) & 0xff]++;
    for (int b = 0; b < bytes; b++) {
        uint64_t *c = count[b], sum = 0;
        if (n == 0 || c[(items[0].key >> (8 * b)) & 0xff] == n)
            continue; /* every key has this byte: the order stays */
        for (int v = 0; v < 256; v++) {
            const uint64_t k = c[v];
            c[v] = sum;
            sum += k;
        }
        for (uint64_t i = 0; i < n; i++)
            dst[c[(src[i].key >> (8 * b)) & 0xff]++] = src[i];
        struct ms_kv *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

uint32_t ms_float_key_desc(float x)
{
    uint32_t u;

    if (x != x)
        return UINT32_MAX;
    if (x == 0.0f)
        x = 0.0f; /* -0 == +0 */
    memcpy(&u, &x, sizeof u);
    /* ascending order of the bits: negatives reversed and below the positives */
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
    return ~u;
}
