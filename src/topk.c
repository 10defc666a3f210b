/*
 * topk.c - per-query bounded min-heaps keyed by (score desc, row asc).
 *
 * A heap's root is its worst entry, so a candidate is compared once against
 * the root and usually rejected: merging a block costs about one comparison
 * per score.
 */
#include "topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 1 if (sa, ra) ranks strictly before (sb, rb). */
static inline int better(float sa, uint64_t ra, float sb, uint64_t rb)
{
    if (isnan(sa) || isnan(sb)) {
        if (isnan(sa) != isnan(sb))
            return isnan(sb);
        return ra < rb;
    }
    return sa > sb || (sa == sb && ra < rb);
}

int ms_topk_init(struct ms_topk *t, uint64_t n_queries, uint64_t k, struct ms_err *err)
{
    unsigned long long cells;

    memset(t, 0, sizeof *t);
    if (ms_mul_u64(n_queries, k, &cells) || cells > (1ull << 40))
        return ms_err_set(err, MS_ERR_INPUT, "top-k of %llu queries x k=%llu is too large",
                          (unsigned long long)n_queries, (unsigned long long)k);
    t->n_queries = n_queries;
    t->k = k;
    if (!(t->count = ms_calloc(n_queries, sizeof *t->count, err)) ||
        !(t->score = ms_malloc(cells * sizeof *t->score, err)) ||
        !(t->row = ms_malloc(cells * sizeof *t->row, err))) {
        ms_topk_release(t);
        return err->status;
    }
    return MS_OK;
}

void ms_topk_release(struct ms_topk *t)
{
    free(t->count);
    free(t->score);
    free(t->row);
    memset(t, 0, sizeof *t);
}

/* Restore the heap property below position i (worst entry at the root). */
static void sift_down(float *s, uint64_t *r, uint64_t n, uint64_t i)
{
    for (;;) {
        uint64_t worst = i;
        const uint64_t a = 2 * i + 1, b = a + 1;
        if (a < n && better(s[worst], r[worst], s[a], r[a]))
            worst = a;
        if (b < n && better(s[worst], r[worst], s[b], r[b]))
            worst = b;
        if (worst == i)
            return;
        const float ts = s[i];
        const uint64_t tr = r[i];
        s[i] = s[worst], r[i] = r[worst];
        s[worst] = ts, r[worst] = tr;
        i = worst;
    }
}

static void sift_up(float *s, uint64_t *r, uint64_t i)
{
    while (i > 0) {
        const uint64_t parent = (i - 1) / 2;
        if (!better(s[parent], r[parent], s[i], r[i]))
            return;
        const float ts = s[i];
        const uint64_t tr = r[i];
        s[i] = s[parent], r[i] = r[parent];
        s[parent] = ts, r[parent] = tr;
        i = parent;
    }
}

void ms_topk_push_one(struct ms_topk *t, uint64_t q, float score, uint64_t row)
{
    float *s = t->score + q * t->k;
    uint64_t *r = t->row + q * t->k;
    uint64_t *n = &t->count[q];

    if (t->k == 0)
        return;
    if (*n < t->k) {
        s[*n] = score;
        r[*n] = row;
        sift_up(s, r, (*n)++);
    } else if (better(score, row, s[0], r[0])) {
        s[0] = score;
        r[0] = row;
        sift_down(s, r, *n, 0);
    }
}

void ms_topk_push(struct ms_topk *t, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                  uint64_t n_docs, uint64_t first_row)
{
    for (uint64_t q = 0; q < nq; q++) {
        const float *row = scores + q * ld;
        for (uint64_t j = 0; j < n_docs; j++)
            ms_topk_push_one(t, q0 + q, row[j], first_row + j);
    }
}

int ms_topk_better(float sa, uint64_t ra, float sb, uint64_t rb)
{
    return better(sa, ra, sb, rb);
}

void ms_topk_finish(struct ms_topk *t)
{
    for (uint64_t q = 0; q < t->n_queries; q++) {
        float *s = t->score + q * t->k;
        uint64_t *r = t->row + q * t->k;
        /* heap sort: repeatedly move the worst entry to the end */
        for (uint64_t n = t->count[q]; n > 1; n--) {
            const float ts = s[0];
            const uint64_t tr = r[0];
            s[0] = s[n - 1], r[0] = r[n - 1];
            s[n - 1] = ts, r[n - 1] = tr;
            sift_down(s, r, n - 1, 0);
        }
    }
}
